"""Structures shared between the I/O thread, dispatcher threads and the caller: no race
kills a thread, and every snapshot of the counters adds up."""

from __future__ import annotations

import sys
import threading
import time

import natsbook
from natsbook import LocalServer
from natsbook.capture._store import CaptureStore
from tests.support.waiting import wait_for


def _flood(url: str, subject: str, stop: threading.Event, size: int = 64) -> threading.Thread:
    def run() -> None:
        with natsbook.connect(url, name="flood") as pub:
            payload = b"x" * size
            while not stop.is_set():
                for _ in range(2_000):
                    pub.publish(subject, payload)
                pub.flush(10)

    t = threading.Thread(target=run, daemon=True, name="flood")
    t.start()
    return t


def test_subscribe_churn_while_the_budget_is_enforced(server: LocalServer, subject: str) -> None:
    """Captures made and ended from the caller's thread while the I/O thread enforces the
    joint budget on a flooded capture: before the fix the I/O thread died within moments
    ('Set changed size during iteration'), the connection reconnected and recorded a gap."""
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: make the race show at once
    with natsbook.connect(server.url, capture_budget=300_000) as c:
        flood = c.subscribe(f"{subject}.flood")
        flood.store.seal_rows = 256  # seal (and so enforce the budget) often
        stop = threading.Event()
        t = _flood(server.url, f"{subject}.flood", stop)
        try:
            wait_for(lambda: flood.stats.evicted > 0, what="the budget evicts")
            deadline = time.monotonic() + 3.0
            n = 0
            more: list[CaptureStore] = []
            while time.monotonic() < deadline:
                s = c.subscribe(f"{subject}.churn.{n}")
                s.unsubscribe()
                n += 1
                # What subscribe() does first, without its round trip: many more
                # registrations in the same time, so the race shows on every run.
                more.extend(CaptureStore(budget=c.capture_budget) for _ in range(20))
        finally:
            sys.setswitchinterval(old_interval)
            stop.set()
            t.join(10)
        c.flush()
        assert not [e for _, e in c.errors if "internal error" in e], list(c.errors)
        assert c.gaps().empty
        assert c.stats["reconnects"] == 0
        st = flood.stats
        assert st.received == st.stored + st.evicted


def test_stats_snapshots_always_add_up(server: LocalServer, subject: str) -> None:
    """Snapshots taken from another thread under load: before the fix thousands of them
    broke received == delivered + pending + dropped."""
    with natsbook.connect(server.url) as c:
        seen = [0]

        def slow(msg: natsbook.Msg) -> None:
            seen[0] += 1

        sub = c.subscribe(subject, callback=slow, max_rows=5_000, pending_msgs=3_000)
        stop = threading.Event()
        t = _flood(server.url, subject, stop)
        bad: list[natsbook.SubStats] = []
        snapshots = 0
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                st = sub.stats
                snapshots += 1
                if (st.received != st.delivered + st.pending + st.dropped
                        or st.received != st.stored + st.evicted):
                    bad.append(st)
        finally:
            stop.set()
            t.join(10)
        assert snapshots > 1_000
        assert sub.stats.received > 10_000
        assert not bad, f"{len(bad)} of {snapshots} snapshots did not add up, e.g. {bad[0]}"
        assert sub.wait_pending(10)
        st = sub.stats
        assert st.delivered == seen[0] and st.pending == 0


def test_limit_lowered_below_what_arrived_keeps_nothing_more(conn: natsbook.Connection,
                                                              subject: str) -> None:
    """unsubscribe(max_msgs=N) races with the I/O thread: when N ends up below what arrived
    meanwhile, the next batch is late, all of it (a negative slice kept all but its last
    rows, counted twice)."""
    sub = conn.subscribe(subject)
    row = (subject.encode(), None, None, b"x")
    assert sub._deliver([row] * 5, time.time(), time.time_ns())
    sub.max_msgs = 3  # what a racing unsubscribe(max_msgs=3) could leave behind
    assert not sub._deliver([row] * 10, time.time(), time.time_ns())
    st = sub.stats
    assert (st.received, st.stored, st.late) == (5, 5, 10)
