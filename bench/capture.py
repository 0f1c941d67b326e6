"""Capture benchmark: natsbook vs nats-py, measured side by side in one run.

    python bench/capture.py                 # full run (~5-6 minutes on 2 cores)
    python bench/capture.py --quick         # smaller counts, one repeat
    python bench/capture.py --dataframes-only   # only the 1M-row DataFrame build times
    python bench/capture.py --transports tcp  # skip the WebSocket subscribers

Starts the embedded nats-server, then for each client runs a subscriber in its own process and
floods it from another process with pre-built PUB frames (raw socket). Reports, as medians over
the repeats: capture rate at full speed, messages lost, loss at a sustained paced rate, the
kernel thread's wake-up latency while capturing, then (in this process) the time and peak memory
to build DataFrames of 1M captured rows with and without JSON flattening, and bytes per stored
row. Prints the natsbook / nats-py ratios. Then the same capture with the subscriber on the
server's WebSocket listener (ws://, the flood still arrives over TCP): natsbook next to its TCP
rate, and nats-py over WebSocket when aiohttp is installed (nats-py needs it for ws://).
Not a test: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
PAYLOAD = b"0123456789abcdef"  # 16 bytes
SUBJECT = b"bench.capture"


# ----------------------------------------------------------------------------- flooder
def flood(url: str, count: int, rate: float | None, varied: bool = False) -> dict[str, float]:
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.recv(65536)  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
    buf = b""
    while b"PONG" not in buf:
        buf += s.recv(4096)
    frame = b"PUB %b %d\r\n%b\r\n" % (SUBJECT, len(PAYLOAD), PAYLOAD)
    batch = 5000
    if varied:
        # 100 subjects, payloads of 8..47 bytes: no two consecutive frames alike.
        frames = [b"PUB %b.%d %d\r\n%b\r\n" % (SUBJECT, i % 100, 8 + i % 40, b"x" * (8 + i % 40))
                  for i in range(batch)]
        chunk = b"".join(frames)
    else:
        frames = [frame] * batch
        chunk = frame * batch
    start = time.perf_counter()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        s.sendall(chunk if n == batch else b"".join(frames[:n]))
        sent += n
        if rate:
            due = start + sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    s.sendall(b"PING\r\n")
    buf = b""
    s.settimeout(60)
    while b"PONG" not in buf:
        buf += s.recv(4096)
    elapsed = time.perf_counter() - start
    s.close()
    return {"sent": sent, "elapsed": elapsed, "rate": sent / elapsed}


# ----------------------------------------------------------------------------- subscribers
def _watch(count_fn, expected: int, idle: float = 2.0, limit: float = 120.0) -> dict[str, float]:
    """Poll a counter: first/last change times; also the main thread's wake-up latency."""
    first = last = None
    prev = 0
    lat: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        time.sleep(0.002)
        now = time.perf_counter()
        n = count_fn()
        if n and first is None:
            first = now
        if n != prev:
            last = now
            prev = n
            lat.append(now - t0 - 0.002)
        if n >= expected or (first is not None and now - (last or now) > idle) \
                or now - start > limit:
            break
    span = (last - first) if first is not None and last is not None and last > first else 0.0
    lat.sort()
    return {
        "received": prev, "span": span, "rate": prev / span if span else 0.0,
        "lat_p50_ms": 1000 * lat[len(lat) // 2] if lat else 0.0,
        "lat_p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else 0.0,
        "lat_max_ms": 1000 * lat[-1] if lat else 0.0,
    }


def sub_natsbook(url: str, expected: int) -> dict[str, float]:
    import natsbook

    conn = natsbook.connect(url)
    sub = conn.subscribe("bench.>", max_bytes=None)
    print("READY", flush=True)
    out = _watch(lambda: sub.received, expected)
    out["gaps"] = len(conn.gaps())
    st = sub.store.stats if sub.store else None
    if st and st.stored:
        out["bytes_per_row_over_payload"] = st.bytes / st.stored - len(PAYLOAD)
    conn.close()
    return out


def sub_natspy(url: str, expected: int) -> dict[str, float]:
    import nats

    got: list = []
    errors: list[str] = []
    result: dict[str, float] = {}

    async def main() -> None:
        async def err_cb(e: Exception) -> None:
            errors.append(type(e).__name__)

        async def disc_cb() -> None:
            errors.append("disconnected")

        nc = await nats.connect(url, error_cb=err_cb, disconnected_cb=disc_cb,
                                max_reconnect_attempts=0)

        async def cb(msg) -> None:
            got.append(msg)

        await nc.subscribe("bench.>", cb=cb)
        await nc.flush()
        print("READY", flush=True)
        done = threading.Event()

        def watcher() -> None:
            result.update(_watch(lambda: len(got), expected))
            done.set()

        threading.Thread(target=watcher, daemon=True).start()
        while not done.is_set():
            await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(nc.close(), 5)
        except Exception:
            pass

    asyncio.run(main())
    result["gaps"] = float(bool(errors))
    result["errors"] = len(errors)
    return result


# ----------------------------------------------------------------------------- driver
def run_pair(url: str, client: str, count: int, rate: float | None,
             varied: bool = False, flood_url: str | None = None) -> dict[str, float]:
    sub = subprocess.Popen([sys.executable, str(HERE), "--role", client, "--url", url,
                            "--count", str(count)], stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    line = sub.stdout.readline()
    if "READY" not in line:
        sub.kill()
        raise RuntimeError(f"{client} subscriber did not start: {line!r}")
    flooder = subprocess.run([sys.executable, str(HERE), "--role", "flood", "--url",
                              flood_url or url,
                              "--count", str(count)] + (["--rate", str(rate)] if rate else [])
                             + (["--varied"] if varied else []),
                             capture_output=True, text=True, timeout=300, check=True)
    out, _ = sub.communicate(timeout=300)
    res = json.loads(out.strip().splitlines()[-1])
    res["flood_rate"] = json.loads(flooder.stdout.strip().splitlines()[-1])["rate"]
    res["lost"] = count - res["received"]
    return res


def dataframe_bench(rows: int) -> dict[str, float]:
    import pyarrow as pa

    from natsbook.capture._frames import to_frame
    from natsbook.capture._store import CaptureStore

    out: dict[str, float] = {}
    for label, payload_fn in (
        ("text", lambda i: PAYLOAD),
        ("json", lambda i: b'{"device":"d%d","temp":%d.5,"hum":%d,"ok":true,"site":"s1"}'
         % (i % 100, i % 40, i % 90)),
    ):
        store = CaptureStore(max_bytes=None)
        batch = 10_000
        for k in range(0, rows, batch):
            store.append([(b"telemetry.s1.d%d" % (i % 100), None, None, payload_fn(i))
                          for i in range(k, k + batch)])
        if label == "text":
            st = store.stats
            out["bytes_per_row_over_payload"] = st.bytes / st.stored - len(PAYLOAD)
        table = store.table()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pa0 = pa.total_allocated_bytes()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            df = to_frame(table, label)
            times.append(time.perf_counter() - t0)
            del df
        out[f"df_{label}_s"] = statistics.median(times)
        out[f"df_{label}_peak_rss_mb"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        out[f"df_{label}_arrow_mb"] = (pa.total_allocated_bytes() - pa0) / 2**20
        del table, store
    return out


def print_dataframe_bench(rows: int) -> None:
    df = dataframe_bench(rows)
    print(f"DataFrame of {rows:,} captured rows (median of 3):")
    print(f"  text (no flattening): {df['df_text_s']:.3f} s  (+{df['df_text_arrow_mb']:.0f} MB "
          f"arrow, peak RSS +{df['df_text_peak_rss_mb']:.0f} MB)")
    print(f"  JSON flattened      : {df['df_json_s']:.3f} s  (+{df['df_json_arrow_mb']:.0f} MB "
          f"arrow, peak RSS +{df['df_json_peak_rss_mb']:.0f} MB)")
    print(f"bytes per stored row beyond the payload: {df['bytes_per_row_over_payload']:.1f}")
def ws_summary(results: dict[str, dict[str, list[float]]], args: argparse.Namespace,
               natspy_ws: bool) -> None:
    def med(client: str, key: str) -> float:
        return statistics.median(results[client][key])

    print(f"over WebSocket (subscriber on ws://, the flood over TCP; median of {args.repeat}):")
    for kind, what in (("full", "full speed"), ("varied", "varied subjects/sizes")):
        nb = med("natsbook/ws", f"{kind}_rate")
        line = (f"  {what:22s}: natsbook {nb:>10,.0f} msg/s lost "
                f"{med('natsbook/ws', f'{kind}_lost'):,.0f}")
        if "natsbook" in results:
            line += f"  (x{nb / med('natsbook', f'{kind}_rate'):.2f} of natsbook over TCP)"
        if natspy_ws:
            py = med("nats-py/ws", f"{kind}_rate")
            line += (f" | nats-py {py:>9,.0f} msg/s lost {med('nats-py/ws', f'{kind}_lost'):,.0f}"
                     f"  ratio natsbook/nats-py {nb / py if py else float('inf'):.2f}x")
        print(line)
    paced = f"  sustained {args.sustained_rate:,.0f} msg/s: natsbook lost " \
            f"{med('natsbook/ws', 'paced_lost'):,.0f}"
    if natspy_ws:
        paced += f", nats-py lost {med('nats-py/ws', 'paced_lost'):,.0f}"
    print(paced)
    if not natspy_ws:
        print("  nats-py over WebSocket: not measured (it needs aiohttp: pip install aiohttp)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", default="driver")
    ap.add_argument("--url")
    ap.add_argument("--count", type=int, default=2_000_000)
    ap.add_argument("--rate", type=float)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--varied", action="store_true", help="flood role: varied subjects/sizes")
    ap.add_argument("--sustained-rate", type=float, default=300_000)
    ap.add_argument("--sustained-seconds", type=float, default=10)
    ap.add_argument("--df-rows", type=int, default=1_000_000)
    ap.add_argument("--dataframes-only", action="store_true",
                    help="only the DataFrame build times (no server, no floods)")
    ap.add_argument("--transports", default="tcp,ws",
                    help="subscriber transports: tcp, ws or tcp,ws")
    args = ap.parse_args()
    if args.dataframes_only:
        print_dataframe_bench(args.df_rows)
        return
    if args.role == "flood":
        print(json.dumps(flood(args.url, args.count, args.rate, args.varied)))
        return
    if args.role == "natsbook":
        print(json.dumps(sub_natsbook(args.url, args.count)))
        return
    if args.role == "nats-py":
        print(json.dumps(sub_natspy(args.url, args.count)))
        return

    import natsbook

    if args.quick:
        args.count, args.repeat, args.sustained_seconds, args.df_rows = 500_000, 1, 3, 300_000
    print(f"# natsbook capture benchmark  (cpus={os.cpu_count()}, python "
          f"{sys.version.split()[0]}, natsbook {natsbook.__version__})")
    transports = [t for t in args.transports.split(",") if t]
    runs = [(c, t) for t in transports for c in ("natsbook", "nats-py")]
    natspy_ws = importlib.util.find_spec("aiohttp") is not None
    if not natspy_ws and ("nats-py", "ws") in runs:
        runs.remove(("nats-py", "ws"))
    results: dict[str, dict[str, list[float]]] = {
        (c if t == "tcp" else f"{c}/ws"): {} for c, t in runs}
    sustained_n = int(args.sustained_rate * args.sustained_seconds)
    with natsbook.local_server(jetstream=False, websocket=True) as srv:
        assert srv.ws_url
        for r in range(args.repeat):
            for client, transport in runs:
                # The subscriber on TCP or WebSocket; the flood always comes over TCP.
                url = srv.url if transport == "tcp" else srv.ws_url
                full = run_pair(url, client, args.count, None, flood_url=srv.url)
                varied = run_pair(url, client, args.count, None, varied=True,
                                  flood_url=srv.url)
                paced = run_pair(url, client, sustained_n, args.sustained_rate,
                                 flood_url=srv.url)
                label = client if transport == "tcp" else f"{client}/ws"
                bucket = results[label]
                for k, v in full.items():
                    bucket.setdefault(f"full_{k}", []).append(v)
                for k, v in varied.items():
                    bucket.setdefault(f"varied_{k}", []).append(v)
                for k, v in paced.items():
                    bucket.setdefault(f"paced_{k}", []).append(v)
                print(f"  run {r + 1} {label:11s}: full {full['rate']:>10,.0f} msg/s "
                      f"lost {full['lost']:>9,}  | varied {varied['rate']:>10,.0f} msg/s "
                      f"lost {varied['lost']:>9,} | paced {paced['flood_rate']:>9,.0f} msg/s "
                      f"lost {paced['lost']:>9,}  kernel wake p99 "
                      f"{paced['lat_p99_ms']:.1f} ms max {full['lat_max_ms']:.1f} ms",
                      flush=True)

    def med(client: str, key: str) -> float:
        return statistics.median(results[client][key])

    if "tcp" not in transports:
        ws_summary(results, args, natspy_ws)
        return
    nb_rate, py_rate = med("natsbook", "full_rate"), med("nats-py", "full_rate")
    print(f"\nflood of {args.count:,} x {len(PAYLOAD)}-byte messages at full speed "
          f"(median of {args.repeat}):")
    print(f"  natsbook capture rate : {nb_rate:>12,.0f} msg/s   lost "
          f"{med('natsbook', 'full_lost'):,.0f}")
    print(f"  nats-py  capture rate : {py_rate:>12,.0f} msg/s   lost "
          f"{med('nats-py', 'full_lost'):,.0f}")
    print(f"  ratio natsbook/nats-py: {nb_rate / py_rate if py_rate else float('inf'):.2f}x")
    nbv, pyv = med("natsbook", "varied_rate"), med("nats-py", "varied_rate")
    print("same flood with 100 subjects and 8..47-byte payloads (no two frames alike):")
    print(f"  natsbook capture rate : {nbv:>12,.0f} msg/s   lost "
          f"{med('natsbook', 'varied_lost'):,.0f}")
    print(f"  nats-py  capture rate : {pyv:>12,.0f} msg/s   lost "
          f"{med('nats-py', 'varied_lost'):,.0f}")
    print(f"  ratio natsbook/nats-py: {nbv / pyv if pyv else float('inf'):.2f}x")
    print(f"sustained {args.sustained_rate:,.0f} msg/s for {args.sustained_seconds:g} s "
          f"({sustained_n:,} msgs):")
    for c in ("natsbook", "nats-py"):
        print(f"  {c:8s} lost {med(c, 'paced_lost'):>10,.0f}  (achieved flood "
              f"{med(c, 'paced_flood_rate'):,.0f} msg/s)")
    print("kernel-thread wake-up latency while capturing (natsbook, full speed / paced): "
          f"p99 {med('natsbook', 'full_lat_p99_ms'):.1f} / "
          f"{med('natsbook', 'paced_lat_p99_ms'):.1f} ms, max "
          f"{med('natsbook', 'full_lat_max_ms'):.1f} / "
          f"{med('natsbook', 'paced_lat_max_ms'):.1f} ms")
    if "ws" in transports:
        ws_summary(results, args, natspy_ws)
    print_dataframe_bench(args.df_rows)

if __name__ == "__main__":
    main()
