"""Request/reply and publish benchmark: natsbook vs nats-py, side by side in one run.

    python bench/reqreply.py              # full run: 3 repeats (~1 minute on 2 cores)
    python bench/reqreply.py --quick      # smaller counts, one repeat
    python bench/reqreply.py --repeats 5

Starts the embedded nats-server and ONE nats-py echo responder in a process of its own (both
clients talk to the same responder), then measures, alternating which client goes first:

- sequential requests (16-byte payloads): p50 and p99 latency;
- 100 requests in flight: natsbook ``request_batch(concurrency=100)`` vs nats-py
  ``asyncio.gather`` of requests under a ``Semaphore(100)``, requests per second;
- a loop of ``publish`` calls then one ``flush``: messages per second.

Prints the median of the repeats for each, the natsbook / nats-py ratio of those medians and
the median of the per-repeat ratios ("paired"; > 1 means natsbook is better: lower latency,
higher rate). On a shared, busy machine trust the paired column and more repeats. Not a test:
nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nats

import natsbook

HERE = Path(__file__).resolve()
PAYLOAD = b"0123456789abcdef"  # 16 bytes
SUBJECT = "bench.echo"


# ----------------------------------------------------------------------------- responder
async def _respond(url: str) -> None:
    nc = await nats.connect(url)

    async def echo(msg: nats.aio.msg.Msg) -> None:
        await nc.publish(msg.reply, msg.data)

    await nc.subscribe(SUBJECT, cb=echo)
    await nc.flush()
    print("ready", flush=True)
    # Runs until the parent closes our stdin.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await nc.close()


# ----------------------------------------------------------------------------- natsbook
def nb_sequential(conn: natsbook.Connection, n: int) -> list[float]:
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request(SUBJECT, PAYLOAD, timeout=5.0)
        lat.append(time.perf_counter() - t)
    return lat


def nb_batch(conn: natsbook.Connection, n: int) -> float:
    payloads = [PAYLOAD] * n
    t = time.perf_counter()
    df = conn.request_batch(SUBJECT, payloads, concurrency=100, timeout=10.0, progress=False)
    elapsed = time.perf_counter() - t
    bad = int(df["error"].notna().sum())
    if bad:
        print(f"  (natsbook batch: {bad} errors)", file=sys.stderr)
    return n / elapsed


def nb_publish(conn: natsbook.Connection, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        conn.publish("bench.sink", PAYLOAD)
    conn.flush()
    return n / (time.perf_counter() - t)


# ----------------------------------------------------------------------------- nats-py
async def _py_all(url: str, n_seq: int, n_batch: int, n_pub: int) -> tuple[list[float], float,
                                                                            float]:
    nc = await nats.connect(url)
    await nc.request(SUBJECT, PAYLOAD, timeout=5.0)  # warm the inbox subscription
    lat = []
    for _ in range(n_seq):
        t = time.perf_counter()
        await nc.request(SUBJECT, PAYLOAD, timeout=5.0)
        lat.append(time.perf_counter() - t)

    sem = asyncio.Semaphore(100)

    async def one() -> None:
        async with sem:
            await nc.request(SUBJECT, PAYLOAD, timeout=10.0)

    t = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n_batch)))
    batch_rate = n_batch / (time.perf_counter() - t)

    t = time.perf_counter()
    for _ in range(n_pub):
        await nc.publish("bench.sink", PAYLOAD)
    await nc.flush()
    pub_rate = n_pub / (time.perf_counter() - t)
    await nc.close()
    return lat, batch_rate, pub_rate


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts, one repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--respond", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.respond:
        asyncio.run(_respond(args.respond))
        return
    n_seq, n_batch, n_pub = (1000, 5000, 50_000) if args.quick else (3000, 20_000, 200_000)
    repeats = 1 if args.quick else args.repeats
    with natsbook.local_server(jetstream=False, monitor=False) as srv:
        responder = subprocess.Popen([sys.executable, str(HERE), "--respond", srv.url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert responder.stdout is not None
            if responder.stdout.readline().strip() != b"ready":
                raise SystemExit("the nats-py responder did not start")
            conn = natsbook.connect(srv.url)
            conn.request(SUBJECT, PAYLOAD)  # warm the inbox subscription
            res: dict[str, list[float]] = {k: [] for k in (
                "nb p50", "nb p99", "py p50", "py p99", "nb batch", "py batch", "nb pub",
                "py pub")}
            print(f"nats-server {conn.server_info.get('version')}; {repeats} repeat(s); "
                  f"{n_seq} sequential requests, {n_batch} batched, {n_pub} publishes")
            for r in range(repeats):
                order = ["nb", "py"] if r % 2 == 0 else ["py", "nb"]
                for who in order:
                    if who == "nb":
                        lat = nb_sequential(conn, n_seq)
                        res["nb p50"].append(pct(lat, 0.5))
                        res["nb p99"].append(pct(lat, 0.99))
                        res["nb batch"].append(nb_batch(conn, n_batch))
                        res["nb pub"].append(nb_publish(conn, n_pub))
                    else:
                        lat, b, p = asyncio.run(_py_all(srv.url, n_seq, n_batch, n_pub))
                        res["py p50"].append(pct(lat, 0.5))
                        res["py p99"].append(pct(lat, 0.99))
                        res["py batch"].append(b)
                        res["py pub"].append(p)
                print(f"  repeat {r + 1}: " + ", ".join(
                    f"{k} {v[-1] * 1e6:.0f}us" if k.endswith(("p50", "p99"))
                    else f"{k} {v[-1]:,.0f}/s" for k, v in res.items()), flush=True)
            conn.close()
        finally:
            if responder.stdin is not None:
                responder.stdin.close()
            try:
                responder.wait(10)
            except subprocess.TimeoutExpired:
                responder.kill()
                responder.wait()
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"\nmedians of {repeats} (ratio > 1: natsbook better)")
    print(f"{'measure':<34}{'nats-py':>12}{'natsbook':>12}{'ratio':>8}{'paired':>9}")
    rows = [
        ("sequential request p50 (us)", "p50", 1e6, True),
        ("sequential request p99 (us)", "p99", 1e6, True),
        ("100 in flight (req/s)", "batch", 1, False),
        ("publish loop + flush (msg/s)", "pub", 1, False),
    ]
    for name, key, scale, lower_better in rows:
        py, nb = med[f"py {key}"] * scale, med[f"nb {key}"] * scale
        ratio = py / nb if lower_better else nb / py
        # Median of the per-repeat ratios: each pair ran back to back, so a busy moment on a
        # shared machine hits both sides of a pair.
        pairs = [(p / n if lower_better else n / p)
                 for p, n in zip(res[f"py {key}"], res[f"nb {key}"], strict=True)]
        print(f"{name:<34}{py:>12,.0f}{nb:>12,.0f}{ratio:>7.2f}x"
              f"{statistics.median(pairs):>8.2f}x")
    print("goals: p50/p99 >= 1.0x, 100 in flight >= 1.5x, publish >= 1.2x")


if __name__ == "__main__":
    main()
