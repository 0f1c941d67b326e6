"""The engine against a scripted fake server (mutation testing of natsbook/core/_ioloop.py,
issue 18): what it does when a server misbehaves on cue - refuses, goes silent, sends -ERR,
unknown sids, garbage, a new INFO - and the texts of the reasons a connection ends.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable

import pytest

import natsbook
from natsbook.errors import ConnectionClosedError, RequestTimeout, WebSocketUpgradeError
from tests.support.fake_scripts import answers_then_reads
from tests.support.fake_server import (
    INFO,
    FakeServer,
    hello,
    keep_open,
    read_until,
)
from tests.support.waiting import wait_for
from tests.support.ws_peers import FaultyWebSocketServer


def test_server_close_after_err_names_the_error(fake: Callable[..., FakeServer]) -> None:
    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(b"-ERR 'Maximum Connections Exceeded'\r\n")
        time.sleep(0.1)
        peer.shutdown(socket.SHUT_RDWR)
        peer.close()

    srv = fake(script)
    c = natsbook.connect(srv.url, reconnect=False)
    try:
        assert wait_for(lambda: c.is_closed, 5)
        reason = c.gaps()["reason"].iloc[0]
        assert reason == ("server closed the connection after -ERR "
                          "'Maximum Connections Exceeded'"), reason
        with pytest.raises(ConnectionClosedError, match=r"\(disconnected and reconnect=False\)"):
            c.publish("a", b"")
    finally:
        c.close()


def test_stale_connection_reason_counts_the_pings(fake: Callable[..., FakeServer]) -> None:
    """No PONG to max_outstanding_pings PINGs: the connection is dropped, and says so."""
    srv = fake(lambda p: (hello(p), keep_open(p, 5)))
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=0.2, max_outstanding_pings=3)
    try:
        start = time.monotonic()
        assert wait_for(lambda: c.is_closed, 5)
        took = time.monotonic() - start
        assert c.gaps()["reason"].iloc[0] == "stale connection: no PONG to 3 PINGs over 0.6s"
        assert 0.7 <= took < 3.0, took  # 4 ping intervals: 3 unanswered, then noticed
    finally:
        c.close()


def test_server_ping_is_answered(fake: Callable[..., FakeServer]) -> None:
    got: list[bytes] = []
    # Right behind the handshake's PONG: an unasked-for PONG (ignored) and a PING.
    srv = fake(answers_then_reads(b"PONG\r\nPONG\r\nPING\r\n", got))
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        assert wait_for(lambda: bool(got), 5)
        assert got[0] == b"PONG\r\n"
        assert c.status == "connected" and len(c.gaps()) == 0
    finally:
        c.close()


def test_info_updates_max_payload_and_pool(fake: Callable[..., FakeServer]) -> None:
    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(b'INFO {"max_payload":2048,"connect_urls":["127.0.0.1:1"]}\r\n')
        time.sleep(0.1)
        peer.sendall(b'INFO {"x":1}\r\n')  # no max_payload, no connect_urls: both kept
        keep_open(peer, 5)

    srv = fake(script)
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        assert wait_for(lambda: c.max_payload == 2048, 5)
        assert c.server_info["server_id"] == "FAKE"  # merged, not replaced
        assert c.servers == [srv.url, "nats://127.0.0.1:1"]
        assert c._engine._parser.max_payload == 2048 + 64 * 1024
        c.publish("a", b"x" * 2048)
        with pytest.raises(natsbook.errors.MaxPayloadError):
            c.publish("a", b"x" * 2049)
        assert wait_for(lambda: c.server_info.get("x") == 1, 5)
        assert c.max_payload == 2048 and c.servers == [srv.url, "nats://127.0.0.1:1"]
        assert c.status == "connected"
    finally:
        c.close()


def test_no_discovery_keeps_the_pool(fake: Callable[..., FakeServer]) -> None:
    def script(peer: socket.socket) -> None:
        peer.sendall(INFO.replace(b'"port":4222', b'"port":4222,"connect_urls":["127.0.0.1:1"]'))
        read_until(peer, b"PING\r\n")
        peer.sendall(b"PONG\r\n")
        keep_open(peer, 5)

    srv = fake(script)
    c = natsbook.connect(srv.url, reconnect=False, discovery=False, ping_interval=60)
    d = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        assert c.servers == [srv.url]
        assert d.servers == [srv.url, "nats://127.0.0.1:1"]
    finally:
        c.close()
        d.close()


def test_first_connect_errors(fake: Callable[..., FakeServer]) -> None:
    """connect() names every server it tried; an error text without the URL gets it."""
    endless = fake(lambda p: (p.sendall(b"INFO " + b"A" * 70_000), keep_open(p, 2)))
    with pytest.raises(natsbook.errors.ConnectError) as info:
        natsbook.connect(endless.url, connect_timeout=1)
    assert str(info.value) == (f"natsbook: {endless.url}: server sent a line longer than "
                               "64 KiB during the handshake")
    assert info.value.url == endless.url
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"nats://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    with pytest.raises(natsbook.errors.ConnectError) as info:
        natsbook.connect([dead, endless.url], connect_timeout=1)
    assert str(info.value) == (
        f"natsbook: could not connect to any server: cannot reach {dead}: Connection refused - "
        "start a server (e.g. natsbook.local_server()) or check the URL; "
        f"{endless.url}: server sent a line longer than 64 KiB during the handshake")
    assert info.value.url == dead


def test_auth_refusal_is_not_retried_elsewhere(fake: Callable[..., FakeServer]) -> None:
    def refuses(peer: socket.socket) -> None:
        peer.sendall(INFO)
        read_until(peer, b"PING\r\n")
        peer.sendall(b"-ERR 'Authorization Violation'\r\n")
        keep_open(peer, 1)

    first, second = fake(refuses), fake(lambda p: (hello(p), keep_open(p, 2)))
    with pytest.raises(natsbook.errors.AuthError):
        natsbook.connect([first.url, second.url], connect_timeout=1)
    assert second.accepted == 0


def test_close_wakes_waiting_requests_and_flushes(fake: Callable[..., FakeServer]) -> None:
    """A request or flush in flight when the connection is closed fails at once, not at its
    timeout; a gap still open gets its end."""
    srv = fake(lambda p: (hello(p), keep_open(p, 5)))  # never answers a PING
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    errors: list[BaseException] = []

    def wait(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait, args=(lambda: c.flush(5),)),
               threading.Thread(target=wait, args=(lambda: c.request("x", b"", timeout=5),))]
    for t in threads:
        t.start()
    time.sleep(0.3)
    start = time.monotonic()
    c.close()
    for t in threads:
        t.join(5)
    assert time.monotonic() - start < 2
    assert len(errors) == 2 and all(isinstance(e, ConnectionClosedError) for e in errors), errors


def test_unknown_sid_and_partial_delivery_before_bad_bytes(
        fake: Callable[..., FakeServer]) -> None:
    """A MSG for a sid nobody has is counted; messages complete before garbage are still
    delivered, then the protocol error drops the connection."""
    go = threading.Event()

    def script(peer: socket.socket) -> None:
        hello(peer)
        sid = int(read_until(peer, b"PING\r\n").split(b"SUB a ")[1].split(b"\r\n")[0])
        peer.sendall(b"PONG\r\n")
        go.wait(5)
        peer.sendall(b"MSG a 98 1\r\nu\r\nMSG a 99 1\r\nu\r\nMSG a %d 1\r\nx\r\n"
                     b"MSG a %d 1\r\ny\r\nBOGUS\r\n" % (sid, sid))
        keep_open(peer, 2)

    srv = fake(script)
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        sub = c.subscribe("a")
        go.set()
        assert wait_for(lambda: c.is_closed, 5)
        assert sub.to_pandas("bytes")["data"].tolist() == [b"x", b"y"]
        assert c.stats["unknown_sid_msgs"] == 2 and c.stats["in_msgs"] == 4
        assert c.gaps()["reason"].iloc[0].startswith("protocol error: ")
    finally:
        c.close()


def test_backpressure_blocks_the_publisher(fake: Callable[..., FakeServer]) -> None:
    """Past pending_size queued bytes publish() waits (the peer reads nothing); close()
    releases it with ConnectionClosedError."""
    srv = fake(lambda p: (hello(p), time.sleep(5)))
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60, pending_size=100_000)
    done: list[BaseException | None] = []

    def flood() -> None:
        try:
            for _ in range(200):
                c.publish("a", b"x" * 100_000)
            done.append(None)
        except BaseException as exc:
            done.append(exc)

    t = threading.Thread(target=flood)
    t.start()
    time.sleep(1.0)
    assert not done and t.is_alive()  # 20 MB cannot all be queued: it waits for room
    assert c.stats["pending_bytes"] <= 100_000 + 100_100
    c.close()
    t.join(5)
    assert len(done) == 1 and isinstance(done[0], ConnectionClosedError), done
    assert str(done[0]) == ("natsbook: connection is closed (close() was called) - open a new "
                            "one with natsbook.connect()")


def test_backpressure_lets_go_when_the_peer_reads(fake: Callable[..., FakeServer]) -> None:
    """Once the peer reads again, a waiting publisher carries on at once (it does not sit out
    the 10 s backpressure timeout)."""
    def slow_reader(peer: socket.socket) -> None:
        hello(peer)
        time.sleep(0.5)
        keep_open(peer, 10)

    srv = fake(slow_reader)
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60, pending_size=100_000)
    try:
        start = time.monotonic()
        for _ in range(60):  # 6 MB: more than the socket buffers hold while nobody reads
            c.publish("a", b"x" * 100_000)
        assert time.monotonic() - start < 4.0
    finally:
        c.close()


def test_reply_to_a_bad_inbox_subject_is_late(fake: Callable[..., FakeServer]) -> None:
    """A message on our inbox whose token is not UTF-8 is counted as a late reply."""
    def script(peer: socket.socket) -> None:
        hello(peer)
        got = read_until(peer, b"PING\r\n")
        m = re.search(rb"SUB (_INBOX\.\w+\.R\.)\* (\d+)", got)
        assert m is not None
        peer.sendall(b"PONG\r\nMSG %s\xff\xfe %s 1\r\nx\r\n" % (m[1], m[2]))
        keep_open(peer, 2)

    srv = fake(script)
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        with pytest.raises(RequestTimeout):
            c.request("svc", b"", timeout=0.3)
        assert wait_for(lambda: c.stats["late_replies"] == 1, 2)
        assert c.status == "connected" and len(c.gaps()) == 0
    finally:
        c.close()


def test_plain_server_close_reason(fake: Callable[..., FakeServer]) -> None:
    srv = fake(lambda p: (hello(p), time.sleep(0.1), p.close()))
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        assert wait_for(lambda: c.is_closed, 5)
        assert c.gaps()["reason"].tolist() == ["server closed the connection"]
    finally:
        c.close()




def test_a_fresh_connection(fake: Callable[..., FakeServer]) -> None:
    """What connect() sends (name, echo, credentials) and the stats it starts from."""
    seen: list[bytes] = []

    def script(peer: socket.socket) -> None:
        peer.sendall(INFO)
        seen.append(read_until(peer, b"PING\r\n"))
        peer.sendall(b"PONG\r\n")
        peer.settimeout(0.3)
        try:
            seen.append(peer.recv(100))  # nothing: no PING before ping_interval
        except TimeoutError:
            seen.append(b"")
        seen.append(read_until(peer, b"PING\r\n"))
        peer.sendall(b"PONG\r\n")
        keep_open(peer, 2)

    srv = fake(script)
    c = natsbook.connect(srv.url, name="eng", echo=False, user="u", password="p",
                         ping_interval=60, capture_budget=12345)
    try:
        opts = json.loads(seen[0].split(b"\r\n")[0][8:])
        assert (opts["name"], opts["echo"], opts["user"], opts["pass"]) == ("eng", False, "u", "p")
        assert c.stats == {"in_msgs": 0, "in_bytes": 0, "out_msgs": 0, "out_bytes": 0,
                           "reconnects": 0, "errors": 0, "pending_bytes": 0,
                           "pending_msgs": 0, "unsent_msgs": 0,
                           "unknown_sid_msgs": 0, "late_replies": 0, "rtt_ms": None}
        assert c.capture_budget.max_bytes == 12345
        assert wait_for(lambda: len(seen) == 2, 2)
        assert seen[1] == b""
        c.flush(2)
        assert c.stats["errors"] == 0 and c.stats["reconnects"] == 0 and c.is_connected
    finally:
        c.close()


def test_error_reports_are_bounded(fake: Callable[..., FakeServer]) -> None:
    """conn.errors keeps the last 200 reports; a slow error_callback gets the first one and
    then the last 1000 (older ones are dropped, not queued without bound)."""
    more = threading.Event()

    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(b"-ERR 'e0'\r\n")
        more.wait(5)
        peer.sendall(b"".join(b"-ERR 'e%d'\r\n" % i for i in range(1, 1005)))
        keep_open(peer, 3)

    entered, release = threading.Event(), threading.Event()
    got: list[str] = []

    def callback(text: str) -> None:
        got.append(text)
        entered.set()
        release.wait(5)

    srv = fake(script)
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60, error_callback=callback)
    try:
        assert entered.wait(5)
        more.set()
        assert wait_for(lambda: c.errors and c.errors[-1][1] == "server error: e1004", 5)
        texts = [t for _, t in c.errors]
        assert texts == [f"server error: e{i}" for i in range(805, 1005)]
        release.set()
        assert wait_for(lambda: got and got[-1] == "server error: e1004", 5)
        time.sleep(0.05)
        assert got == ["server error: e0"] + [f"server error: e{i}" for i in range(5, 1005)]
    finally:
        release.set()
        c.close()


def test_first_connect_moves_past_a_closing_server(fake: Callable[..., FakeServer]) -> None:
    closer, good = fake(lambda p: p.close()), fake(lambda p: (hello(p), keep_open(p, 3)))
    with pytest.raises(natsbook.errors.ConnectError) as info:
        natsbook.connect(closer.url, connect_timeout=1)
    assert str(info.value) == (f"natsbook: {closer.url}: server closed the connection during "
                               "the handshake")
    c = natsbook.connect([closer.url, good.url], connect_timeout=1, ping_interval=60)
    try:
        assert c.connected_url == good.url
    finally:
        c.close()


def test_websocket_refusal_is_raised_as_is() -> None:
    """One server that refuses the WebSocket upgrade: its WebSocketUpgradeError, with the HTTP
    status, not a generic ConnectError."""
    with FaultyWebSocketServer(status="404 Not Found", body=b"no") as bad, \
            pytest.raises(WebSocketUpgradeError) as info:
        natsbook.connect(f"ws://127.0.0.1:{bad.port}", connect_timeout=1)
    assert info.value.status == 404
