"""Slow consumers: client-side drops are counted exactly; a server-side kick is visible."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import natsbook
from natsbook import LocalServer

from .helpers import monitor, wait_for

KICK_CONFIG = 'write_deadline: "1s"\nmax_pending: 256KB\nmax_payload: 64KB\n'


def _closed_reason(srv: LocalServer, name: str) -> str | None:
    connz = monitor(srv, "/connz?state=closed&limit=1024")
    for c in connz.get("connections") or []:
        if c.get("name") == name:
            return str(c.get("reason"))
    return None


def test_slow_callback_drops_are_counted(own_server: LocalServer, subject: str) -> None:
    conn = natsbook.connect(own_server.url)
    pub = natsbook.connect(own_server.url)
    release = threading.Event()
    try:
        def slow(msg: natsbook.Msg) -> None:
            release.wait(10)

        sub = conn.subscribe(subject, callback=slow, pending_msgs=50)
        total = 2000
        for i in range(total):
            pub.publish(subject, {"n": i})
        pub.flush()
        conn.flush()  # PONG is a barrier: everything published is in the reader's hands
        st = sub.stats
        assert st.received == total, "the reader kept reading while the callback was stuck"
        assert st.stored == total, "the capture has every message even though callbacks drop"
        # Up to 50 queued (+ 1 inside the callback) are pending; everything else was dropped.
        assert st.delivered == 0 and 50 <= st.pending <= 51
        assert st.received == st.delivered + st.pending + st.dropped
        release.set()
        assert sub.wait_pending(10)
        after = sub.stats
        assert after.pending == 0
        assert (after.delivered, after.dropped) == (st.pending, st.dropped), "exact counts"
        st = after
        # The server never had to cut us: same connection, no gap, no slow consumer there.
        assert conn.is_connected and conn.gaps().empty
        assert monitor(own_server, "/varz")["slow_consumers"] == 0
        pub.publish(subject, {"n": total})
        pub.flush()
        wait_for(lambda: sub.stats.received == total + 1, timeout=5)
        assert sub.wait_pending(5) and sub.stats.delivered == st.delivered + 1
    finally:
        release.set()
        pub.close()
        conn.close()


def _flood(url: str, subject: str, stop: Callable[[], bool], limit: int = 2000) -> int:
    """Publish 60 kB messages until `stop()` or `limit` messages; returns how many."""
    pub = natsbook.connect(url, name="flooder")
    blob = b"x" * 60000
    n = 0
    try:
        while n < limit and not stop():
            pub.publish(subject, blob)
            n += 1
            if n % 50 == 0:
                pub.flush(10)
        pub.flush(10)
    finally:
        pub.close()
    return n


def test_server_kicks_a_peer_that_stops_reading(server_factory: Callable[..., LocalServer],
                                                subject: str) -> None:
    srv = server_factory(KICK_CONFIG)
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.recv(4096)  # INFO
        raw.sendall(b'CONNECT {"verbose":false,"name":"stuck-peer"}\r\n'
                    + f"SUB {subject} 1\r\nPING\r\n".encode())
        got = b""
        while b"PONG" not in got:
            got += raw.recv(4096)
        # ... and never read again.
        _flood(srv.url, subject, lambda: _closed_reason(srv, "stuck-peer") is not None)
        reason = wait_for(lambda: _closed_reason(srv, "stuck-peer"), timeout=10)
        assert "Slow Consumer" in reason
        assert monitor(srv, "/varz")["slow_consumers"] >= 1
    finally:
        raw.close()


def test_natsbook_kicked_while_its_reader_is_blocked(server_factory: Callable[..., LocalServer],
                                                     subject: str) -> None:
    srv = server_factory(KICK_CONFIG)
    conn = natsbook.connect(srv.url, name="blocked-reader", reconnect_wait=0.02)
    try:
        sub = conn.subscribe(subject)
        assert sub.store is not None
        # Block natsbook's reader thread: the next append waits for the store's lock.
        sub.store._lock.acquire()
        try:
            _flood(srv.url, subject, lambda: _closed_reason(srv, "blocked-reader") is not None)
            reason = wait_for(lambda: _closed_reason(srv, "blocked-reader"), timeout=10)
        finally:
            sub.store._lock.release()
        assert "Slow Consumer" in reason
        # natsbook notices the cut, records the gap, reconnects and resubscribes.
        wait_for(lambda: len(conn.gaps()) == 1, timeout=10)
        wait_for(lambda: conn.is_connected, timeout=5)
        gap = conn.gaps().iloc[0]
        assert "closed" in gap["reason"] or "error" in gap["reason"]
        before = sub.stats.received
        pub = natsbook.connect(srv.url)
        pub.publish(subject, b"after")
        pub.flush()
        pub.close()
        wait_for(lambda: sub.stats.received == before + 1, timeout=5)
        st = sub.stats
        assert st.received == st.stored + st.evicted
    finally:
        conn.close()
