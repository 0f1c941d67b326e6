"""Benchmark: read 100k stored messages into a DataFrame, natsbook vs nats-py.

natsbook: ``stream_history`` with its default method (a pull consumer into one capture
subscription, headers parsed column-wise). Baseline, measured in the same run against the same
server and stream: nats-py's ordered push consumer (flow control + heartbeats) with a callback
collecting (seq, time, subject, data), then one ``pd.DataFrame``. Both sides keep payloads as
bytes (``decode="bytes"``) so the comparison is the transport and framing, not JSON parsing;
natsbook's JSON-flattening read and its batched direct-get path (``method="direct"``, the
former default) are printed too, so the choice of default stays visible.

Run: ``python bench/history.py [N] [REPEATS]``. Not a test: prints medians and the ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import nats
import pandas as pd

import natsbook
from natsbook import jetstream as js

STREAM = "BENCH_HISTORY"


def fill(conn: natsbook.Connection, n: int) -> None:
    js.add_stream(conn, STREAM, ["bench.>"], storage="file")
    for i in range(n):
        conn.publish(f"bench.dev{i % 16}", b'{"i": %d, "temp": 21.5, "ok": true}' % i)
        if i % 10_000 == 0:
            conn.flush()
    conn.flush()
    deadline = time.monotonic() + 60
    while js.stream_info(conn, STREAM)["state"]["messages"] < n:
        if time.monotonic() > deadline:
            raise SystemExit("stream did not store every message within 60 s")
        time.sleep(0.05)


def natsbook_read(conn: natsbook.Connection, n: int, decode: str = "bytes",
                  method: str = "auto") -> float:
    start = time.perf_counter()
    frame = js.stream_history(conn, STREAM, decode=decode, method=method, progress=False)
    elapsed = time.perf_counter() - start
    assert len(frame) == n, len(frame)
    return elapsed


async def _natspy_read(url: str, n: int) -> float:
    nc = await nats.connect(url)
    try:
        jsc = nc.jetstream()
        rows: list[tuple[int, object, str, bytes]] = []
        done = asyncio.Event()

        async def on_msg(msg: nats.aio.msg.Msg) -> None:
            md = msg.metadata
            rows.append((md.sequence.stream, md.timestamp, msg.subject, msg.data))
            if len(rows) >= n:
                done.set()

        start = time.perf_counter()
        sub = await jsc.subscribe("bench.>", cb=on_msg, ordered_consumer=True,
                                  stream=STREAM)
        await asyncio.wait_for(done.wait(), timeout=300)
        frame = pd.DataFrame(rows, columns=["seq", "time", "subject", "data"])
        elapsed = time.perf_counter() - start
        await sub.unsubscribe()
        assert len(frame) == n and frame["seq"].is_monotonic_increasing
        return elapsed
    finally:
        await nc.close()


def natspy_read(url: str, n: int) -> float:
    return asyncio.run(_natspy_read(url, n))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with natsbook.local_server() as srv, natsbook.connect(srv.url) as conn:
        print(f"nats-server {conn.server_info.get('version')}; storing {n:,} messages...")
        fill(conn, n)
        # One untimed read each, so the file store's blocks are cached for both sides.
        natsbook_read(conn, n)
        natspy_read(srv.url, n)
        results: dict[str, list[float]] = {"natsbook": [], "natsbook json": [],
                                           "natsbook direct": [], "nats-py": []}
        for r in range(repeats):
            # Alternate the order so neither side always runs on a warmer server cache.
            order = ["natsbook", "nats-py"] if r % 2 == 0 else ["nats-py", "natsbook"]
            for name in order:
                if name == "natsbook":
                    results[name].append(natsbook_read(conn, n))
                else:
                    results[name].append(natspy_read(srv.url, n))
            results["natsbook json"].append(natsbook_read(conn, n, "json"))
            results["natsbook direct"].append(natsbook_read(conn, n, method="direct"))
        med = {k: statistics.median(v) for k, v in results.items()}
        for k, v in results.items():
            runs = ", ".join(f"{x:.3f}" for x in v)
            print(f"{k:>14}: median {med[k]:.3f} s = {n / med[k]:>10,.0f} msgs/s  ({runs})")
        print(f"ratio natsbook / nats-py ordered consumer (bytes): "
              f"{med['nats-py'] / med['natsbook']:.1f}x faster")
        print(f"ratio natsbook with JSON flattening / nats-py (bytes): "
              f"{med['nats-py'] / med['natsbook json']:.1f}x faster")


if __name__ == "__main__":
    main()
