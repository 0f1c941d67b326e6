"""A fake server that sends hostile bytes: natsbook reports an error, never hangs or crashes.

The fake server (tests/support/fake_server.py) is a small socket server on 127.0.0.1 (free
port). Each accepted connection runs a script; every wait here is bounded.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest

import natsbook
from natsbook.errors import ConnectError, NatsbookError, ProtocolError, TLSError
from tests.support.fake_server import (
    INFO,
    FakeServer,
    Script,
    after_connect_sends,
    handshake_sends,
    keep_open,
    read_until,
    well_behaved,
    well_behaved_for,
)

from .helpers import wait_for

CONNECT_TIMEOUT = 1.0

HANDSHAKE_CASES = [
    ("malformed-info", handshake_sends(b"INFO {not json\r\n"), "malformed INFO"),
    ("info-not-object", handshake_sends(b"INFO [1, 2]\r\n"), "not a JSON object"),
    ("not-nats", handshake_sends(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "not a NATS server"),
    ("silent", handshake_sends(b""), "sent no INFO"),
    ("endless-line", handshake_sends(b"INFO " + b"A" * 200_000), "longer than 64 KiB"),
    ("close-mid-info", handshake_sends(b'INFO {"server_id":', then_close=True), "closed"),
    ("err-after-connect", lambda p: (p.sendall(INFO), read_until(p, b"PING\r\n"),
                                     p.sendall(b"-ERR 'Unknown Protocol Operation'\r\n"),
                                     keep_open(p, 3)), "Unknown Protocol Operation"),
    ("no-pong", lambda p: (p.sendall(INFO), keep_open(p, 3)), "did not answer CONNECT"),
]


@pytest.mark.parametrize(("script", "words"),
                         [pytest.param(s, w, id=i) for i, s, w in HANDSHAKE_CASES])
def test_hostile_handshake_fails_fast(fake: Callable[..., FakeServer], script: Script,
                                      words: str) -> None:
    srv = fake(script)
    start = time.monotonic()
    with pytest.raises((ConnectError, ProtocolError)) as info:
        natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False)
    elapsed = time.monotonic() - start
    assert elapsed < CONNECT_TIMEOUT + 2.0, f"took {elapsed:.1f}s"
    assert words in str(info.value), str(info.value)
    assert srv.url in str(info.value)


def test_tls_required_when_not_asked(fake: Callable[..., FakeServer]) -> None:
    """INFO says tls_required but the peer never speaks TLS: a TLS/connect error, bounded."""
    info = INFO.replace(b'"proto":1', b'"proto":1,"tls_required":true')
    srv = fake(handshake_sends(info))
    start = time.monotonic()
    with pytest.raises(ConnectError) as exc:
        natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False)
    assert time.monotonic() - start < CONNECT_TIMEOUT + 2.0
    text = str(exc.value)
    # The client tried TLS because the INFO demanded it, and says so; the peer never answered
    # the TLS handshake, so it timed out within connect_timeout.
    assert isinstance(exc.value, TLSError), text
    assert f"{srv.url} requires TLS (tls_required in its INFO)" in text, text
    assert f"TLS handshake with {srv.url} timed out" in text, text


def test_tls_required_then_close(fake: Callable[..., FakeServer]) -> None:
    info = INFO.replace(b'"proto":1', b'"proto":1,"tls_required":true')
    srv = fake(handshake_sends(info, then_close=True))
    with pytest.raises(ConnectError) as exc:
        natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False)
    assert "TLS" in str(exc.value), str(exc.value)


STREAM_CASES = [
    ("truncated-msg-close", b"MSG a.b 1 10\r\nabc", True, "server closed the connection"),
    ("negative-size", b"MSG a.b 1 -5\r\nabc\r\n", False, "outside"),
    ("huge-size", b"MSG a.b 1 99999999999999\r\n", False, "outside"),
    ("size-not-number", b"MSG a.b 1 ten\r\n", False, "malformed message line"),
    ("too-few-args", b"MSG a.b\r\n", False, "malformed message line"),
    ("hdr-longer-than-msg", b"HMSG a.b 1 20 10\r\n0123456789\r\n", False,
     "malformed message line"),
    ("payload-not-terminated", b"MSG a.b 1 3\r\nabcXY\r\n", False, "not terminated by CRLF"),
    ("garbage-line", b"HELLO WORLD\r\n", False, "unknown protocol line"),
    ("binary-garbage", bytes(range(256)) * 4 + b"\r\n", False, "protocol"),
    ("bad-info-later", b"INFO {oops\r\n", False, "malformed INFO"),
    ("endless-line", b"PONG" + b"A" * 300_000, False, "control line longer"),
    ("close-mid-frame", b"MSG a.b 1 5\r\nab", True, "server closed the connection"),
]


@pytest.mark.parametrize(("data", "then_close", "words"),
                         [pytest.param(d, c, w, id=i) for i, d, c, w in STREAM_CASES])
def test_hostile_bytes_after_connect(fake: Callable[..., FakeServer], data: bytes,
                                     then_close: bool, words: str) -> None:
    srv = fake(after_connect_sends(data, then_close))
    conn = natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False,
                            ping_interval=0.3, max_outstanding_pings=2)
    try:
        wait_for(lambda: conn.is_closed, timeout=5)
        texts = [t for _, t in conn.errors]
        assert any(words in t for t in texts), texts
        gaps = conn.gaps()
        assert len(gaps) == 1 and words in gaps["reason"].iloc[0]
        assert conn._parser.buffered <= 128 * 1024, "nothing unbounded kept"
        with pytest.raises(NatsbookError, match="closed"):
            conn.publish("a.b", b"x")
    finally:
        conn.close()
    assert conn._thread is not None and not conn._thread.is_alive()


def test_incomplete_frame_then_silence_is_detected(fake: Callable[..., FakeServer]) -> None:
    """A MSG that announces 1 MB and stops: the keepalive notices the dead peer."""
    srv = fake(after_connect_sends(b"MSG a.b 1 1000000\r\n" + b"x" * 1000))
    conn = natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False,
                            ping_interval=0.2, max_outstanding_pings=2)
    try:
        wait_for(lambda: conn.is_closed, timeout=5)
        assert "stale" in conn.gaps()["reason"].iloc[0]
    finally:
        conn.close()


def test_inflated_max_payload_does_not_unbound_the_parser(
        fake: Callable[..., FakeServer]) -> None:
    """An INFO claiming a 1 TB max_payload must not let a frame size through unchecked."""
    big_info = INFO.replace(b'"max_payload":1048576', b'"max_payload":1000000000000')

    def script(peer: socket.socket) -> None:
        peer.sendall(big_info)
        read_until(peer, b"PING\r\n")
        peer.sendall(b"PONG\r\nMSG a.b 1 900000000000\r\n")
        peer.sendall(b"x" * 1_000_000)  # would be buffered towards 900 GB
        keep_open(peer, 5)

    srv = fake(script)
    fds_before = set(os.listdir("/proc/self/fd"))
    try:
        conn = natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False,
                                ping_interval=0.3)
    except ProtocolError as exc:  # the bad frame came in with the handshake's PONG
        assert "outside" in str(exc)
    else:
        try:
            wait_for(lambda: conn.is_closed, timeout=5)
            assert "outside" in conn.gaps()["reason"].iloc[0]
        finally:
            conn.close()
    # Either way nothing is left open (socket, wake-up pipe).
    server_side = {str(p.fileno()) for p in srv.peers}  # the fake server's own end
    assert set(os.listdir("/proc/self/fd")) - server_side <= fds_before


def test_garbage_on_reconnect_does_not_kill_the_reader(fake: Callable[..., FakeServer]) -> None:
    """The first connection is fine, then dies; the reconnect's handshake is followed by
    garbage; the next one is sane. The I/O thread survives and ends connected."""
    def dies(peer: socket.socket) -> None:
        well_behaved_for(peer, 0.3)
        peer.close()

    def garbage_after_pong(peer: socket.socket) -> None:
        peer.sendall(INFO)
        read_until(peer, b"PING\r\n")
        peer.sendall(b"PONG\r\nMSG a.b 1 -7\r\n")
        keep_open(peer, 2)

    srv = fake(dies, garbage_after_pong, well_behaved)
    conn = natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect_wait=0.02)
    try:
        wait_for(lambda: srv.accepted >= 3, timeout=10)
        wait_for(lambda: conn.is_connected, timeout=5)
        conn.flush(5)
        assert conn._thread is not None and conn._thread.is_alive()
        assert any("protocol error" in t for _, t in conn.errors), list(conn.errors)
    finally:
        conn.close()


def test_recovers_on_a_sane_server_after_garbage(fake: Callable[..., FakeServer]) -> None:
    """Garbage on the first connection; the reconnect lands on a sane one and carries on."""
    srv = fake(after_connect_sends(b"MSG x 1 -1\r\n"), well_behaved)
    conn = natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect_wait=0.02)
    try:
        wait_for(lambda: srv.accepted >= 2 and conn.is_connected, timeout=5)
        conn.flush(5)
        gaps = conn.gaps()
        assert len(gaps) == 1 and "protocol error" in gaps["reason"].iloc[0]
        assert any("protocol error" in t for _, t in conn.errors)
    finally:
        conn.close()
