// nats.js's JetStream advisories (jsm.advisories()) as an independent peer for
// tests/test_advisories.py.
//   node advisories.js URL  -> prints "ready", then one JSON line per advisory
//                              ({kind, data}) until stdin closes
"use strict";
const { connect } = require("@nats-io/transport-node");
const { jetstreamManager } = require("@nats-io/jetstream");

async function main(url) {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  const iter = jsm.advisories();
  await nc.flush();
  process.stdout.write("ready\n");
  process.stdin.resume();
  process.stdin.on("end", async () => {
    await nc.close();
    process.exit(0);
  });
  for await (const a of iter) {
    process.stdout.write(JSON.stringify({ kind: a.kind, data: a.data }) + "\n");
  }
}

main(process.argv[2]).catch((err) => {
  process.stderr.write(String(err) + "\n");
  process.exit(1);
});
