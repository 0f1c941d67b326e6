"""Soak: captures flooded while other threads subscribe, unsubscribe, read JetStream history,
snapshot stats and call to_pandas, for NATSBOOK_THREADS_SOAK_SECONDS (30 by default).

No thread may die, no gap may be recorded, every counter must add up in every snapshot, and
every history read must come back complete.
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

DURATION = float(os.environ.get("NATSBOOK_THREADS_SOAK_SECONDS", "30"))
FLOOD_RATE = 20_000  # messages per second into the flooded captures (bounded)
HISTORY = 20_000  # messages stored in the stream the readers read again and again
KEYS = 300


class Worker(threading.Thread):
    """Runs `step` until stopped; keeps the first exception (with its traceback)."""

    def __init__(self, name: str, step: Callable[[], Any], stop: threading.Event) -> None:
        super().__init__(daemon=True, name=name)
        self.step = step
        self.stop = stop
        self.runs = 0
        self.failure: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
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
@pytest.mark.timeout(DURATION + 180)
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
            workers.append(Worker(name, step, stop))
        for w in workers:
            w.start()
        stop.wait(DURATION)
        stop.set()
        for w in workers:
            w.join(60)
        failures = [f"{w.name}:\n{w.failure}" for w in workers if w.failure]
        assert not failures, "\n".join(failures)
        assert not [w.name for w in workers if w.is_alive()]
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
        assert set(conn._subs) == {both.sid, plain.sid, batched.sid}
        print(f"soak: {DURATION:g}s, {total} flooded, {len(churned)} churned, reads {reads}, "
              f"{snapshots[0]} snapshots, to_pandas {workers[-1].runs}")
        assert reads["direct"] and reads["consumer"] and reads["kv"] and snapshots[0] > 1_000
        assert len(churned) > 100
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        pub.close()
        conn.close()
