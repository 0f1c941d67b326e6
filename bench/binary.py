"""Binary payloads into a DataFrame: 1M small MessagePack objects through
``to_frame(decode="msgpack")``, against ``msgpack.unpackb`` per payload + ``pandas.json_normalize``
(the baseline a notebook would write) and against natsbook's JSON path on the same objects.

    python bench/binary.py                 # 1M rows, 5 repeats
    python bench/binary.py --rows 200000   # smaller
    python bench/binary.py --cbor          # CBOR too

The payloads sit in a capture table as the store holds them (Arrow binary column), so this
measures decoding, not the network (``bench/capture.py`` measures that). Objects are ~90-byte
telemetry readings of a few shapes: a nested object, an int, floats, a bool, a string, a
key some rows miss. Each method runs ``--repeat`` times, alternating; the time quoted is the
median. The goal of issue 27: natsbook at least 3x the baseline, and within 2x of its JSON
path. Not a test: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import cbor2
import msgpack
import orjson
import pandas as pd
import pyarrow as pa

from natsbook.capture import SCHEMA, to_frame


def objects(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(27)
    out = []
    for i in range(n):
        o: dict[str, Any] = {"sensor": f"s{i % 100}", "seq": i, "temp": round(rnd.gauss(21, 3), 2),
                             "hum": rnd.randint(20, 80), "ok": i % 7 != 0,
                             "loc": {"lat": 52.0 + rnd.random(), "lon": 4.0 + rnd.random()}}
        if i % 5 == 0:
            o["alarm"] = "high"
        out.append(o)
    return out


def table(payloads: list[bytes]) -> pa.Table:
    n = len(payloads)
    return pa.table({
        "time": pa.array(range(n), pa.int64()).cast(SCHEMA.field("time").type),
        "subject": pa.array(["telemetry.bin"] * n, pa.string()),
        "reply": pa.nulls(n, pa.string()),
        "headers": pa.nulls(n, pa.binary()),
        "payload": pa.array(payloads, pa.binary()),
    }, schema=SCHEMA)


def baseline(t: pa.Table) -> pd.DataFrame:
    return pd.json_normalize([msgpack.unpackb(p) for p in t["payload"].to_pylist()])


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cbor", action="store_true", help="also time decode='cbor'")
    args = ap.parse_args()
    objs = objects(args.rows)
    tables = {"msgpack": table([msgpack.packb(o) for o in objs]),
              "json": table([orjson.dumps(o) for o in objs])}
    if args.cbor:
        tables["cbor"] = table([cbor2.dumps(o) for o in objs])
    del objs
    methods: dict[str, Callable[[], Any]] = {
        "baseline: unpackb + json_normalize": lambda: baseline(tables["msgpack"]),
        "natsbook decode='msgpack'": lambda: to_frame(tables["msgpack"], "msgpack"),
        "natsbook decode='json' (same objects)": lambda: to_frame(tables["json"], "json"),
    }
    if args.cbor:
        methods["natsbook decode='cbor'"] = lambda: to_frame(tables["cbor"], "cbor")
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(args.repeat):
        for name, fn in methods.items():
            times[name].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["baseline: unpackb + json_normalize"]
    mp = med["natsbook decode='msgpack'"]
    js = med["natsbook decode='json' (same objects)"]
    print(f"{args.rows:,} rows, median of {args.repeat} runs")
    for name, t in med.items():
        print(f"  {name:40s} {t:7.3f} s  {args.rows / t / 1e6:6.2f} M rows/s")
    print(f"msgpack vs baseline: {base / mp:.2f}x faster (goal >= 3x)")
    print(f"msgpack vs json path: {mp / js:.2f}x the time (goal <= 2x)")


if __name__ == "__main__":
    main()
