"""``natsbook record``: a headless recorder of a JetStream stream into a Parquet dataset.

Exit codes: 0 after a clean stop (SIGTERM / Ctrl-C: the open part written and acked; or
``--once`` done), 1 on an error (the output not writable, the stream or server missing, ...:
the message says what to do; nothing unwritten was acked), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import natsbook
from natsbook.jetstream import Recorder, RecorderStats

from ..errors import NatsbookError
from ._run import Stopper

__all__ = ["add_record_parser", "cmd_record"]


def add_record_parser(sub: Any) -> None:
    rec = sub.add_parser(
        "record", help="record a JetStream stream into a hive-partitioned Parquet dataset",
        description="Read a stream through a durable pull consumer and write Parquet parts "
                    "(date=YYYY-MM-DD/hour=HH/part-<first>-<last>-<writer>.parquet, zstd), "
                    "acking each message only once its part is on disk. Run several with "
                    "the same --durable to share the work. SIGTERM: write, ack, exit 0.")
    rec.add_argument("--url", help="server URL (default: $NATS_URL or nats://127.0.0.1:4222)")
    rec.add_argument("--stream", required=True, help="the stream to record")
    rec.add_argument("--subjects", default=None,
                     help="filter subject of a new consumer (default: the whole stream)")
    rec.add_argument("--out", required=True,
                     help="dataset folder or object-store URL (s3://bucket/prefix)")
    rec.add_argument("--durable", default="natsbook-record",
                     help="durable consumer name, shared by recorders (default natsbook-record)")
    rec.add_argument("--decode", default=None,
                     help="the decode readers get by default (json, text, bytes, auto, ...); "
                          "payloads are stored raw")
    rec.add_argument("--part-rows", type=int, default=250_000,
                     help="rotate a part at this many messages (default 250000)")
    rec.add_argument("--part-mb", type=float, default=64.0,
                     help="... or at this many MiB of payload (default 64)")
    rec.add_argument("--part-seconds", type=float, default=60.0,
                     help="... or when it is this old (default 60)")
    rec.add_argument("--ack-wait", type=float, default=None,
                     help="ack wait of a new consumer, seconds (default 2*part-seconds+30)")
    rec.add_argument("--once", action="store_true",
                     help="record what the consumer has now, then exit")
    rec.add_argument("--progress", type=float, nargs="?", const=5.0, default=None,
                     metavar="S", help="print progress and lag to stderr every S s (5)")


def _line(st: RecorderStats, t0: float) -> str:
    rate = st.written / max(time.monotonic() - t0, 1e-9)
    return (f"natsbook record: {st.received} received, {st.written} written ({rate:,.0f}/s), "
            f"{st.acked} acked, "
            f"{st.parts} parts, lag {st.lag}, last seq {st.last_seq}")


def cmd_record(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"
    t0 = time.monotonic()
    with Stopper() as stopper:
        try:
            conn = natsbook.connect(url, name=f"natsbook-record-{args.durable}")
        except NatsbookError as exc:
            print(f"{exc}\n(start a server with `natsbook server`, or pass --url)",
                  file=sys.stderr)
            return 1
        try:
            rec = Recorder(conn, args.stream, args.out, durable=args.durable,
                           subjects=args.subjects, decode=args.decode,
                           part_rows=args.part_rows, part_bytes=int(args.part_mb * 2**20),
                           part_age=args.part_seconds, ack_wait=args.ack_wait)
            report = None
            if args.progress is not None:
                def report(st: RecorderStats) -> None:
                    print(_line(st, t0), file=sys.stderr, flush=True)
            st = rec.run(stopper.event, once=args.once, report=report,
                         every=args.progress or 5.0)
        except NatsbookError as exc:
            print(str(exc), file=sys.stderr, flush=True)
            return 1
        finally:
            conn.close()
    print(_line(st, t0), file=sys.stderr, flush=True)
    return 0
