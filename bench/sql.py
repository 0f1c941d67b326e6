"""SQL benchmark: per-subject count and mean of a JSON field over a large capture, DuckDB
(``sub.sql``) vs ``to_pandas(decode="json")`` + ``groupby`` on the same capture.

    python bench/sql.py                    # 10M rows, 3 repeats (~5 minutes on 2 cores)
    python bench/sql.py --rows 1000000     # smaller

The capture is a real subscription of a connection to the embedded nats-server, but its store
is filled directly, in reader-sized batches (8,192 rows per append), as ``bench/capture.py``
does for its DataFrame numbers: pushing 10M messages through a socket would measure the
network path (``bench/capture.py`` does that), not the analysis. Payloads are ~60-byte JSON
telemetry objects on 100 subjects.

Each method runs ``--repeat`` times, alternating; time is the median, memory the peak
resident-set growth over the process's size just before the run (sampled every 5 ms from
/proc/self/statm, with freed memory handed back to the OS between runs). Not a test: nothing
here asserts on speed.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa

SQL = """
SELECT subject, count(*) AS n, avg((data::JSON ->> 'temp')::DOUBLE) AS temp_mean
FROM messages GROUP BY subject
"""
# The same without the JSON cast: ->> on text parses it as JSON too, without first
# validating and copying each document into a JSON value.
SQL_TEXT = """
SELECT subject, count(*) AS n, avg((data ->> 'temp')::DOUBLE) AS temp_mean
FROM messages GROUP BY subject
"""
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _release() -> None:
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak RSS growth in MB) of one call."""
    _release()
    base = _rss()
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _rss())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t0
    done.set()
    t.join()
    peak = max(peak, _rss())
    return result, elapsed, (peak - base) / 2**20


def fill(sub: Any, rows: int) -> float:
    """Fill the capture with `rows` telemetry messages; returns the mean payload size."""
    subjects = [b"telemetry.s%d.d%02d" % (i % 10, i) for i in range(100)]
    batch = 8192
    t_ns = time.time_ns()
    total = 0
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        chunk = [(subjects[i % 100], None, None,
                  b'{"site":"s%d","dev":"d%02d","temp":%d.%02d,"hum":%d,"ok":true}'
                  % (i % 10, i % 100, 15 + i % 17, i % 100, 30 + i % 50))
                 for i in range(start, start + n)]
        total += sum(len(r[3]) for r in chunk)
        sub.store.append(chunk, t_ns + start)
    return total / rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import duckdb

    import natsbook

    print(f"# natsbook SQL benchmark  (cpus={os.cpu_count()}, python {sys.version.split()[0]}, "
          f"duckdb {duckdb.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__})")
    with natsbook.local_server(jetstream=False) as srv, \
            natsbook.connect(srv.url, capture_budget=None) as conn:
        sub = conn.subscribe("telemetry.>", max_bytes=None)
        t0 = time.perf_counter()
        size = fill(sub, args.rows)
        st = sub.stats
        print(f"capture: {st.stored:,} rows, mean payload {size:.1f} bytes, "
              f"{st.bytes / 2**20:,.0f} MB in the store (filled in "
              f"{time.perf_counter() - t0:.1f} s)", flush=True)

        def with_duckdb() -> pd.DataFrame:
            return sub.sql(SQL).set_index("subject").sort_index()

        def with_duckdb_text() -> pd.DataFrame:
            return sub.sql(SQL_TEXT).set_index("subject").sort_index()

        def with_pandas() -> pd.DataFrame:
            df = sub.to_pandas(decode="json")
            out = df.groupby("subject").agg(n=("temp", "size"), temp_mean=("temp", "mean"))
            del df
            return out.sort_index()

        methods = (("duckdb", with_duckdb), ("duckdb2", with_duckdb_text),
                   ("pandas", with_pandas))
        runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in methods}
        results: dict[str, pd.DataFrame] = {}
        for r in range(args.repeat):
            for label, fn in methods:
                res, secs, mb = measure(fn)
                results[label] = res
                runs[label].append((secs, mb))
                print(f"  run {r + 1} {label:7s}: {secs:7.2f} s  peak RSS +{mb:,.0f} MB",
                      flush=True)
                del res
        b = results["pandas"]
        agree = all(
            a.index.tolist() == b.index.astype(str).tolist()
            and (a["n"].to_numpy() == b["n"].to_numpy()).all()
            and ((a["temp_mean"] - b["temp_mean"]).abs() < 1e-9).all()
            for a in (results["duckdb"], results["duckdb2"]))
        a = results["duckdb"]
        print(f"results agree: {bool(agree)} ({len(a)} subjects, {int(a['n'].sum()):,} rows)")

    def med(label: str, i: int) -> float:
        return statistics.median(x[i] for x in runs[label])

    d_s, d2_s, p_s = med("duckdb", 0), med("duckdb2", 0), med("pandas", 0)
    print(f"\nper-subject count + mean of a JSON field over {args.rows:,} rows "
          f"(median of {args.repeat}):")
    print(f"  DuckDB  sub.sql(...) data::JSON ->> 'temp' : {d_s:7.2f} s   peak RSS "
          f"+{med('duckdb', 1):,.0f} MB   ({p_s / d_s:.1f}x)")
    print(f"  DuckDB  sub.sql(...) data ->> 'temp'       : {d2_s:7.2f} s   peak RSS "
          f"+{med('duckdb2', 1):,.0f} MB   ({p_s / d2_s:.1f}x)")
    print(f"  pandas  to_pandas(decode='json') + groupby : {p_s:7.2f} s   peak RSS "
          f"+{med('pandas', 1):,.0f} MB")


if __name__ == "__main__":
    main()
