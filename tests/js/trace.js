// nats.js as an independent peer for tests/test_trace.py: it publishes a traced message
// itself (Nats-Trace-Dest, ADR-41), collects the servers' trace events on the destination and
// prints its own reading of them, one JSON line per event:
//   node trace.js URL SUBJECT DEST [USER PASS]  -> {"server", "hop", "type", "kind", "acc", "subject",
//                                       "stream", "name", "next_hop"} lines, then "done"
"use strict";
const { connect, headers } = require("@nats-io/transport-node");

async function main(url, subject, dest, user, pass) {
  const opts = { servers: url, name: "js-tracer" };
  if (user) {
    opts.user = user;
    opts.pass = pass;
  }
  const nc = await connect(opts);
  const sub = nc.subscribe(dest);
  await nc.flush();
  const h = headers();
  h.set("Nats-Trace-Dest", dest);
  h.set("Nats-Trace-Only", "true");
  nc.publish(subject, "from nats.js", { headers: h });
  let expected = 1;
  let got = 0;
  const timer = setTimeout(() => sub.unsubscribe(), 5000);
  for await (const m of sub) {
    const e = m.json();
    got += 1;
    expected += e.hops || 0;
    const hop = (e.request.header && e.request.header["Nats-Trace-Hop"]) || [""];
    for (const ev of e.events) {
      process.stdout.write(JSON.stringify({
        server: e.server.name, hop: hop[0], type: ev.type, kind: ev.kind === undefined ? null : ev.kind,
        acc: ev.acc || null, subject: ev.subj || ev.sub || ev.subject || null,
        stream: ev.stream || null, name: ev.name || null, next_hop: ev.hop || null,
      }) + "\n");
    }
    if (got >= expected) {
      break;
    }
  }
  clearTimeout(timer);
  process.stdout.write("done\n");
  await nc.close();
}

main(...process.argv.slice(2, 7)).catch((err) => {
  process.stderr.write(String(err) + "\n");
  process.exit(1);
});
