// nats.js's service library as an independent peer for tests/test_services_js.py.
//   node micro.js discover URL NAME  -> prints {"ping": [...], "info": [...], "stats": [...]}
//   node micro.js serve URL NAME SUBJECT -> runs a service; prints "ready <id>", stops on stdin EOF
"use strict";
const { connect } = require("@nats-io/transport-node");
const { ServiceError, Svcm } = require("@nats-io/services");

async function discover(url, name) {
  const nc = await connect({ servers: url });
  const client = new Svcm(nc).client({ maxWait: 1000 });
  const out = {};
  for (const verb of ["ping", "info", "stats"]) {
    out[verb] = [];
    for await (const answer of await client[verb](name)) {
      out[verb].push(answer);
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  await nc.close();
}

async function serve(url, name, subject) {
  const nc = await connect({ servers: url });
  const srv = await new Svcm(nc).add({
    name, version: "2.0.0", description: "nats.js", metadata: { lang: "js" },
  });
  srv.addEndpoint("upper", {
    subject: `${subject}.upper`,
    handler: (err, msg) => { msg.respond(msg.string().toUpperCase()); },
  });
  srv.addEndpoint("fail", {
    subject: `${subject}.fail`,
    handler: () => { throw new ServiceError(409, "conflict"); },  // counted as an error
  });
  await nc.flush();
  process.stdout.write(`ready ${srv.info().id}\n`);
  process.stdin.resume();
  process.stdin.on("end", async () => { await srv.stop(); await nc.close(); });
}

const [cmd, ...args] = process.argv.slice(2);
(cmd === "discover" ? discover(...args) : serve(...args)).catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
