"""Soak: captures flooded while other threads subscribe, unsubscribe, read JetStream history,
snapshot stats and call to_pandas.

Each worker does a fixed amount of work (NATSBOOK_THREADS_SOAK_WORK scales it; 1 by default)
and the flood goes on until they have all done theirs, so what is asserted never depends on
how fast the machine is: no thread may die, no gap may be recorded, every counter must add up
in every snapshot, and every history read must come back complete. The only clock is a
generous deadline that tells a hang from slowness.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

import natsbook
from natsbook import LocalServer
from natsbook import jetstream as js
from natsbook.jetstream import _kv as natskv

from .helpers import wait_for

WORK = float(os.environ.get("NATSBOOK_THREADS_SOAK_WORK", "1"))
#: How many steps each worker takes. The flood (500 messages a step: at least 200,000, more
#: than `both` keeps, so its bound is exercised), the stats snapshots and the frames go on
#: past theirs until the others are done, so that every step overlaps them.
QUOTA = {name: max(1, int(n * WORK)) for name, n in (
    ("churn", 400), ("history", 10), ("follow", 10), ("flood", 400), ("snapshot", 1_000),
    ("frames", 60))}
BACKGROUND = ("flood", "snapshot", "frames")
DEADLINE = 300.0 * max(WORK, 1.0)  # a hang, not a slow machine: the work is fixed
FLOOD_RATE = 20_000  # messages per second into the flooded captures (bounded)
HISTORY = 20_000  # messages stored in the stream the readers read again and again
KEYS = 300


class Worker(threading.Thread):
    """Runs `step` `quota` times (a background worker: at least that many, until stopped);
    keeps the first exception (with its traceback) and stops the others."""

    def __init__(self, name: str, step: Callable[[], Any], stop: threading.Event,
                 quota: int, background: bool = False) -> None:
        super().__init__(daemon=True, name=name)
        self.step = step
        self.stop = stop
        self.quota = quota
        self.background = background
        self.runs = 0
        self.failure: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set() and (self.background or self.runs < self.quota):
                self.step()
                self.runs += 1
        except BaseException:  # reported by the test, with where it happened
            self.failure = traceback.format_exc()
            self.stop.set()


def adds_up(st: natsbook.SubStats, capture: bool, callback: bool) -> bool:
    ok = st.stored >= st.spilled >= 0 and st.late >= 0
    if capture:
        ok = ok and st.received == st.stored + st.evicted
    if callback:
        ok = ok and st.received == st.delivered + st.pending + st.dropped
    return ok and st.pending >= 0 and st.delivered >= 0


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE + 240)
def test_soak_threads(server_factory: Callable[..., LocalServer], subject: str) -> None:
    srv = server_factory(jetstream=True)
    conn = natsbook.connect(srv.url, name="soak-threads", capture_budget=8_000_000)
    pub = natsbook.connect(srv.url, name="soak-flood")
    stop = threading.Event()
    workers: list[Worker] = []
    try:
        stream = f"S{subject}"
        js.add_stream(conn, stream, [f"{subject}.hist.>"], storage="memory")
        for i in range(HISTORY):
            pub.publish(f"{subject}.hist.{i % 11}", b'{"i":%d}' % i)
        bucket = natskv.create_kv(conn, subject, storage="memory")
        for i in range(KEYS):
            pub.publish(f"$KV.{subject}.k{i}", b"v%d" % i)
        pub.flush(30)
        wait_for(lambda: js.stream_info(conn, stream)["state"]["messages"] == HISTORY, 30)
        wait_for(lambda: js.stream_info(conn, bucket.stream)["state"]["messages"] == KEYS, 30)

        handled = [0]

        def count(msg: natsbook.Msg) -> None:
            handled[0] += 1

        both = conn.subscribe(f"{subject}.flood.>", callback=count, max_rows=50_000,
                              pending_msgs=20_000)
        plain = conn.subscribe(f"{subject}.flood.>")
        batched = conn.subscribe(f"{subject}.flood.>", capture=False,
                                 batch_callback=lambda rows, t: None)
        watched: list[tuple[natsbook.Subscription, bool, bool]] = [
            (both, True, True), (plain, True, False), (batched, False, True)]
        published = [0]

        def flood() -> None:
            for _ in range(500):
                pub.publish(f"{subject}.flood.{published[0] % 3}", b"x" * 60)
                published[0] += 1
            pub.flush(10)
            ahead = published[0] / FLOOD_RATE - (time.monotonic() - flood_start)
            if ahead > 0:
                stop.wait(ahead)

        churned: list[natsbook.Subscription] = []

        def churn() -> None:
            n = len(churned)
            kind = n % 4
            if kind == 0:
                s = conn.subscribe(f"{subject}.churn.{n}")
            elif kind == 1:
                s = conn.subscribe(f"{subject}.flood.>", max_msgs=200)
            elif kind == 2:
                s = conn.subscribe(f"{subject}.flood.>", capture=False, callback=count)
            else:
                s = conn.subscribe(f"{subject}.flood.>", max_rows=1_000)
            churned.append(s)
            time.sleep(0.005)
            s.unsubscribe()

        reads = {"direct": 0, "consumer": 0, "kv": 0}

        def history() -> None:
            for method in ("direct", "consumer"):
                frame = conn.stream_history(stream, method=method, decode="bytes")
                assert frame["seq"].tolist() == list(range(1, HISTORY + 1)), method
                reads[method] += 1
            assert len(bucket.to_pandas()) == KEYS
            reads["kv"] += 1

        def follow() -> None:
            with conn.follow(stream, last=100) as f:
                assert len(f.to_pandas()) == 100
            with bucket.watch() as w:
                wait_for(lambda: len(w.to_pandas()) == KEYS, 10)

        snapshots = [0]
        bad: list[str] = []

        def snapshot() -> None:
            for sub, capture, callback in watched + [
                    (s, s.store is not None, s.callback is not None) for s in churned[-5:]]:
                st = sub.stats
                snapshots[0] += 1
                if not adds_up(st, capture, callback):
                    bad.append(f"{sub.subject}: {st}")
            conn.stats  # noqa: B018
            time.sleep(0.0005)

        def frames() -> None:
            frame = conn.to_pandas(last=2_000)
            assert not frame["sub"].str.startswith("_INBOX").any()
            both.to_pandas(last=100)
            time.sleep(0.05)

        flood_start = time.monotonic()
        for name, step in (("flood", flood), ("churn", churn), ("history", history),
                           ("follow", follow), ("snapshot", snapshot), ("frames", frames)):
            workers.append(Worker(name, step, stop, QUOTA[name], name in BACKGROUND))
        for w in workers:
            w.start()
        deadline = time.monotonic() + DEADLINE
        for w in workers:
            if not w.background:
                w.join(max(deadline - time.monotonic(), 0.0))
        while (time.monotonic() < deadline and not stop.is_set()
               and any(w.runs < w.quota for w in workers)):
            stop.wait(0.05)
        stop.set()
        for w in workers:
            w.join(60)
        unfinished = [f"{w.name} {w.runs}/{w.quota}" for w in workers if w.runs < w.quota]
        failures = [f"{w.name}:\n{w.failure}" for w in workers if w.failure]
        assert not failures, "\n".join(failures)
        assert not [w.name for w in workers if w.is_alive()]
        assert not unfinished, f"a hang, not slowness: work left after {DEADLINE:g}s: " \
            f"{unfinished}"
        assert not bad, f"{len(bad)} of {snapshots[0]} snapshots did not add up: {bad[:3]}"
        assert conn.gaps().empty, conn.gaps()
        assert conn.stats["reconnects"] == 0
        assert not [e for _, e in conn.errors if "internal error" in e], list(conn.errors)

        conn.flush(10)
        pub.flush(10)
        total = published[0]
        wait_for(lambda: plain.stats.received == total, 20)
        for sub, capture, callback in watched:
            assert sub.wait_pending(20)
            st = sub.stats
            assert st.received == total, (sub.subject, st, total)
            assert adds_up(st, capture, callback) and st.pending == 0
        assert both.stats.evicted > 0, "the budget / bounds were exercised"
        assert set(conn._engine._subs) == {both.sid, plain.sid, batched.sid}
        print(f"soak: {time.monotonic() - flood_start:.1f}s, {total} flooded, "
              f"{len(churned)} churned, reads {reads}, {snapshots[0]} snapshots, "
              f"to_pandas {workers[-1].runs}")
        assert workers[-1].runs >= QUOTA["frames"]
        # The fixed work was all done (counted, not timed).
        assert reads == {"direct": QUOTA["history"], "consumer": QUOTA["history"],
                         "kv": QUOTA["history"]}
        assert len(churned) == QUOTA["churn"]
        assert snapshots[0] >= QUOTA["snapshot"] * len(watched)
        assert total >= QUOTA["flood"] * 500
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        pub.close()
        conn.close()
