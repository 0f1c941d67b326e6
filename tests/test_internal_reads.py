"""JetStream history reads, follow and KV reads run on internal readers: outside the user's
captures and the connection's capture budget, complete or raising, gone when the read ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.errors import JetStreamError
from natsbook.jetstream import _jsread
from natsbook.jetstream import _kv as natskv
from tests.support.waiting import wait_for

METHODS = ["direct", "consumer"]


@pytest.fixture
def small_budget(server: natsbook.LocalServer) -> Iterator[natsbook.Connection]:
    """A connection whose joint capture budget is 2 MB."""
    with natsbook.connect(server.url, capture_budget=2_000_000) as c:
        yield c


def _fill_stream(conn: natsbook.Connection, name: str, n: int) -> None:
    js.add_stream(conn, name, [f"{name}.>"], storage="memory")
    for i in range(n):
        conn.publish(f"{name}.{i % 7}", b'{"i":%d,"pad":"%s"}' % (i, b"p" * 80))
    conn.flush()
    wait_for(lambda: js.stream_info(conn, name)["state"]["messages"] >= n, what=f"{n} stored")


def _user_capture(c, subject):
    """The user's own 1.3 MB capture (10,000 rows), sealed: it counts against the budget in
    full."""
    user = c.subscribe(f"{subject}.user")
    for _ in range(10_000):
        c.publish(f"{subject}.user", b"u" * 100)
    c.flush()
    wait_for(lambda: user.stats.received == 10_000, what="user capture filled")
    user.to_pandas()  # seal
    return user


@pytest.mark.parametrize("method", METHODS)
def test_history_read_is_complete_and_leaves_the_budget_alone(small_budget, subject, method):
    """A 3 MB history read on a connection with a 2 MB budget: every message comes back, the
    user's own 1.3 MB capture is not touched (before the fix it ended fully evicted and the
    read came back short)."""
    c = small_budget
    user = _user_capture(c, subject)
    before = user.stats
    assert (before.stored, before.evicted) == (10_000, 0)
    used = c.capture_budget.used

    name = f"S{subject}"
    _fill_stream(c, name, 30_000)
    try:
        frame = c.stream_history(name, method=method)
        assert frame["seq"].tolist() == list(range(1, 30_001))
        assert user.stats == before, "the user's capture lost rows to an internal read"
        assert c.capture_budget.used == used
        last = c.stream_history(name, method=method, last=12_345)
        assert last["seq"].tolist() == list(range(30_001 - 12_345, 30_001))
        assert user.stats == before
    finally:
        js.delete_stream(c, name)


def test_kv_reads_leave_the_budget_alone(small_budget, subject):
    c = small_budget
    user = _user_capture(c, subject)
    before = user.stats
    bucket = natskv.create_kv(c, subject, history=5, storage="memory")
    try:
        for i in range(4_000):
            c.publish(f"$KV.{subject}.k{i % 2000}", b"v" * 300)
        c.flush()
        wait_for(lambda: js.stream_info(c, bucket.stream)["state"]["messages"] >= 4_000,
                 what="bucket filled")
        frame = bucket.to_pandas()
        assert len(frame) == 2_000
        assert len(bucket.history("k7")) == 2
        assert user.stats == before
    finally:
        js.delete_stream(c, bucket.stream)


def test_internal_readers_leave_nothing_behind(conn, subject):
    """No internal subscription outlives its read, and none shows in conn.to_pandas() (before
    the fix every raw reply, status messages included, stayed there under _INBOX.*)."""
    mine = conn.subscribe(f"{subject}.mine")
    conn.publish(f"{subject}.mine", b"hello")
    name = f"S{subject}"
    _fill_stream(conn, name, 500)
    bucket = natskv.create_kv(conn, subject, storage="memory")
    try:
        bucket.put("a", b"1")
        sids = set(conn._engine._subs)
        for method in METHODS:
            assert len(conn.stream_history(name, method=method)) == 500
        assert len(bucket.to_pandas()) == 1
        assert len(bucket.history("a")) == 1
        with bucket.watch() as w:
            wait_for(lambda: len(w.to_pandas()) == 1, what="watch sees the key")
            f = conn.follow(name)
            conn.publish(f"{name}.x", b"live")
            wait_for(lambda: len(f.to_pandas()) == 501, what="follow goes live")
            # While they run: internal, not listed, not in the connection's frame.
            assert conn.subscriptions == [mine]
            assert set(conn.to_pandas()["sub"]) == {f"{subject}.mine"}
            f.stop()
        assert set(conn._engine._subs) == sids
        frame = conn.to_pandas()
        assert frame["subject"].tolist() == [f"{subject}.mine"]
        assert conn.capture_budget.used <= mine.stats.bytes
        assert not conn._engine._resp_map
    finally:
        js.delete_stream(conn, name)
        js.delete_stream(conn, bucket.stream)


def test_read_that_would_be_short_raises(conn, subject, monkeypatch):
    """A reader whose buffer overflows raises; it never returns a truncated table."""
    name = f"S{subject}"
    _fill_stream(conn, name, 2_000)
    try:
        monkeypatch.setattr(_jsread, "READ_BUFFER", 10_000)
        with pytest.raises(JetStreamError, match="nothing was returned"):
            conn.stream_history(name, method="direct")
        assert not [s for s in conn._engine._subs.values() if s.internal]
    finally:
        js.delete_stream(conn, name)
