"""Benchmark ``natsbook record`` and reading what it writes.

1. Recording: N stored messages recorded from the start of a stream into Parquet by
   ``natsbook.jetstream.Recorder`` (what ``natsbook record --once`` runs: a durable pull
   consumer, explicit acks after each part is on disk). Baseline, same server and stream, same
   run: a ``nats sub --dump``-style JSON-lines dumper written with nats-py (a durable pull
   consumer, ``fetch`` in batches, one JSON line per message with subject, sequence, time
   and the payload, an explicit ack per message). Each repeat uses a new durable name.
2. Reading: a dataset of ROWS rows spread over 24 hours (written directly with the part
   writer), then one hour of it read with ``read_capture(since=, until=)`` and counted with
   ``natsbook.sql(..., since=, until=)`` and with a plain ``WHERE time`` in the SQL. Baseline:
   pyarrow reading the whole dataset and filtering it.

Run: ``python bench/record.py [N] [ROWS] [REPEATS]`` (defaults 200000, 10000000, 3).
Not a test: prints medians of the repeats and the ratios.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

import natsbook
from natsbook import jetstream as js
from natsbook.capture import DATASET_SCHEMA, PartWriter

STREAM = "BENCH_RECORD"


def fill(conn: natsbook.Connection, n: int) -> None:
    js.add_stream(conn, STREAM, ["rec.>"], storage="file")
    for i in range(n):
        conn.publish(f"rec.dev{i % 16}", b'{"i": %d, "temp": 21.5, "ok": true}' % i)
        if i % 10_000 == 0:
            conn.flush()
    conn.flush()
    deadline = time.monotonic() + 120
    while js.stream_info(conn, STREAM)["state"]["messages"] < n:
        if time.monotonic() > deadline:
            raise SystemExit("the stream did not store every message within 120 s")
        time.sleep(0.05)


def natsbook_record(conn: natsbook.Connection, n: int, out: Path, durable: str) -> float:
    start = time.perf_counter()
    rec = js.Recorder(conn, STREAM, str(out), durable=durable)
    stats = rec.run(threading.Event(), once=True)
    elapsed = time.perf_counter() - start
    assert stats.written == n and stats.acked == n, stats
    return elapsed


async def _jsonl_dump(url: str, n: int, out: Path, durable: str) -> float:
    import nats

    nc = await nats.connect(url)
    try:
        start = time.perf_counter()
        jsc = nc.jetstream()
        sub = await jsc.pull_subscribe("rec.>", durable=durable, stream=STREAM)
        got = 0
        with out.open("w") as f:
            while got < n:
                try:
                    msgs = await sub.fetch(1000, timeout=2)
                except nats.errors.TimeoutError:
                    break
                for m in msgs:
                    md = m.metadata
                    f.write(json.dumps({
                        "subject": m.subject, "seq": md.sequence.stream,
                        "time": md.timestamp.isoformat(),
                        "data": base64.b64encode(m.data).decode()}) + "\n")
                    await m.ack()
                got += len(msgs)
            f.flush()
        elapsed = time.perf_counter() - start
        assert got == n, got
        return elapsed
    finally:
        await nc.close()


def write_dataset(root: Path, rows: int) -> pd.Timestamp:
    """`rows` messages over 24 hours from T0, in parts of 250k rows."""
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    step = 24 * 3_600_000_000_000 // rows
    writer = PartWriter(root, stream=STREAM, decode="json")
    part = 250_000
    for first in range(0, rows, part):
        k = min(part, rows - first)
        seq = np.arange(first + 1, first + k + 1, dtype=np.int64)
        payload = [b'{"i": %d, "temp": 21.5}' % s for s in seq]
        writer.write(pa.table({
            "time": pa.array(t0.value + (seq - 1) * step, pa.timestamp("ns", tz="UTC")),
            "subject": pa.array([f"rec.dev{s % 16}" for s in seq.tolist()], pa.string()),
            "reply": pa.nulls(k, pa.string()), "headers": pa.nulls(k, pa.binary()),
            "payload": pa.array(payload, pa.binary()), "stream_seq": seq,
        }, schema=DATASET_SCHEMA))
    return t0


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    tmp = Path(tempfile.mkdtemp(prefix="natsbook-bench-record-"))
    try:
        with natsbook.local_server(store_dir=tmp / "js") as srv, \
                natsbook.connect(srv.url) as conn:
            fill(conn, n)
            ours, base = [], []
            for r in range(repeats):
                ours.append(natsbook_record(conn, n, tmp / f"ds{r}", f"nb{r}"))
                base.append(asyncio.run(_jsonl_dump(srv.url, n, tmp / f"dump{r}.jsonl",
                                                    f"py{r}")))
            size = sum(f.stat().st_size for f in (tmp / "ds0").rglob("*.parquet"))
            jsize = (tmp / "dump0.jsonl").stat().st_size
            o, b = statistics.median(ours), statistics.median(base)
            print(f"recording {n} messages (median of {repeats}):")
            print(f"  natsbook record (Parquet, zstd): {o:.2f} s = {n / o:,.0f} msg/s, "
                  f"{size / 1e6:.1f} MB")
            print(f"  JSON-lines dump (nats-py)      : {b:.2f} s = {n / b:,.0f} msg/s, "
                  f"{jsize / 1e6:.1f} MB")
            print(f"  ratio (natsbook / baseline throughput): {b / o:.2f}x")
        root = tmp / "big"
        start = time.perf_counter()
        t0 = write_dataset(root, rows)
        print(f"\nreading: wrote {rows:,} rows over 24 h in {time.perf_counter() - start:.1f} s")
        since, until = t0 + pd.Timedelta(hours=12), t0 + pd.Timedelta(hours=13)
        lo, hi = pa.scalar(since.value, pa.timestamp("ns", tz="UTC")), \
            pa.scalar(until.value, pa.timestamp("ns", tz="UTC"))
        files = [str(p) for p in root.rglob("part-*.parquet")]
        runs: dict[str, list[float]] = {}
        q = "SELECT count(*) AS n, sum(size) AS b FROM messages"
        qw = (f"{q} WHERE time >= '{since.isoformat()}'::TIMESTAMPTZ "
              f"AND time < '{until.isoformat()}'::TIMESTAMPTZ")
        frames: list[pd.DataFrame] = []
        cases = {
            "read_capture(since, until), decode=bytes": lambda: frames.append(
                natsbook.read_capture(root, "bytes", since=since, until=until)),
            "sql(count, since=, until=)": lambda: natsbook.sql(q, root, since=since,
                                                               until=until),
            "sql(count WHERE time ...) (no since/until)": lambda: natsbook.sql(qw, root),
            "baseline: pyarrow whole dataset, then filter": lambda: ds.dataset(
                files, schema=DATASET_SCHEMA).to_table().filter(
                    (ds.field("time") >= lo) & (ds.field("time") < hi)),
        }
        for _ in range(repeats):
            for name, fn in cases.items():
                runs.setdefault(name, []).append(timed(fn))
        want = len(frames[0])
        baseline = statistics.median(runs["baseline: pyarrow whole dataset, then filter"])
        print(f"one hour of 24 ({want:,} rows), median of {repeats}:")
        for name, t in runs.items():
            med = statistics.median(t)
            print(f"  {name:48s} {med:7.3f} s  ({baseline / med:5.1f}x the baseline)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
