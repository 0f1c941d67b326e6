"""Ctrl-C during a blocking call leaves the connection clean: no orphan capture, no waiter
left registered, no internal reader left subscribed.

The interrupt is a real SIGINT sent to the main thread (where pytest runs the test) while
the call waits on a server frozen with SIGSTOP, or in the middle of a long history read.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import natsbook
from natsbook import LocalServer
from natsbook import jetstream as js

from .helpers import wait_for


@contextmanager
def ctrl_c(after: float | Callable[[], bool]) -> Iterator[None]:
    """Expect a KeyboardInterrupt: SIGINT to the main thread after `after` seconds, or as soon
    as the predicate `after` holds."""
    assert threading.current_thread() is threading.main_thread()
    main = threading.main_thread().ident
    assert main is not None
    done = threading.Event()

    def fire() -> None:
        if callable(after):
            while not done.is_set() and not after():
                done.wait(0.0005)
        elif done.wait(after):
            return
        if not done.is_set():
            signal.pthread_kill(main, signal.SIGINT)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        done.set()
        t.join(5)


def assert_clean(conn: natsbook.Connection) -> None:
    with conn._engine._lock:
        owed = conn._engine._pings._owed
        assert all(w is None for w in owed), "an abandoned flush still registered"
        assert not conn._engine._resp_map, "an abandoned request still registered"
        left = [s for s in conn._engine._subs.values() if s.subject.startswith("_INBOX.")]
        assert not left, "internal reader left subscribed"


def freeze(srv: LocalServer) -> None:
    """SIGSTOP the server and wait until the kernel has really stopped it."""
    srv.signal(signal.SIGSTOP)
    pid = srv.pid
    assert pid is not None

    def stopped() -> bool:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"

    wait_for(stopped, timeout=5)


@pytest.fixture
def frozen(own_server: LocalServer) -> Iterator[tuple[LocalServer, natsbook.Connection]]:
    conn = natsbook.connect(own_server.url, name="interrupted", ping_interval=60)
    conn.flush()
    freeze(own_server)
    try:
        yield own_server, conn
    finally:
        own_server.signal(signal.SIGCONT)
        conn.close()


def test_ctrl_c_in_subscribe_leaves_no_orphan_capture(frozen, subject):
    """Before the fix the capture stayed registered and kept receiving, with no handle."""
    srv, conn = frozen
    with ctrl_c(0.3):
        conn.subscribe(subject, timeout=10)
    assert conn.subscriptions == []
    assert len(conn._engine._subs) == 0 and conn._engine._history == []
    srv.signal(signal.SIGCONT)
    conn.publish(subject, b"after")
    conn.flush(10)
    assert len(conn.to_pandas()) == 0
    assert_clean(conn)


@pytest.mark.parametrize("call", ["flush", "request"])
def test_ctrl_c_in_flush_or_request(frozen, subject, call):
    srv, conn = frozen
    if call == "request":
        srv.signal(signal.SIGCONT)
        conn._engine._ensure_resp_sub(5)  # the reply inbox exists: the request itself waits
        freeze(srv)
    with ctrl_c(0.3):
        if call == "flush":
            conn.flush(10)
        else:
            conn.request(subject, b"q", timeout=10)
    assert_clean(conn)
    srv.signal(signal.SIGCONT)
    assert conn.flush(10) >= 0  # still usable
    assert_clean(conn)


def test_ctrl_c_in_drain_closes(frozen, subject):
    """An interrupted drain closes the connection, as close() would; before the fix the
    subscriptions it had taken off the list stayed active underneath."""
    srv, conn = frozen
    srv.signal(signal.SIGCONT)
    sub = conn.subscribe(subject)
    freeze(srv)
    with ctrl_c(0.3):
        conn.drain(10)
    assert conn.is_closed
    assert not sub.active
    assert_clean(conn)


@pytest.mark.parametrize("method", ["direct", "consumer"])
def test_ctrl_c_in_a_history_read(server_factory: Callable[..., LocalServer], subject: str,
                                  method: str) -> None:
    """Interrupted in the middle of a long read: the reader's subscription is gone, nothing
    shows in conn.to_pandas(), the read's consumer is deleted."""
    server = server_factory(jetstream=True)
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"], storage="memory")
        try:
            for i in range(150_000):
                conn.publish(f"{subject}.{i % 5}", b"x" * 50)
            conn.flush(30)
            wait_for(lambda: js.stream_info(conn, subject)["state"]["messages"] >= 150_000,
                     timeout=30)

            def reading() -> Any:
                return [s for s in list(conn._engine._subs.values())
                        if s.subject.startswith("_INBOX.") and s.received]

            with ctrl_c(reading):
                conn.stream_history(subject, method=method)
            assert_clean(conn)
            assert len(conn.to_pandas()) == 0
            assert conn.capture_budget.used == 0
            wait_for(lambda: js.stream_info(conn, subject)["state"]["consumer_count"] == 0,
                     timeout=10)
            # The connection is still good for the next read.
            assert len(conn.stream_history(subject, method=method, last=10)) == 10
        finally:
            js.delete_stream(conn, subject)
