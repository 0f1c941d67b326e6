"""A fake server that sends hostile bytes: natsbook reports an error, never hangs or crashes.

The fake server (tests/support/fake_server.py) is a small socket server on 127.0.0.1 (free
port). Each accepted connection runs a script; every wait here is bounded.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable

import pytest

import natsbook
from natsbook.errors import ConnectError, FlushTimeout, NatsbookError, ProtocolError, TLSError
from tests.support.fake_roles import info_line, typed_info_then_pong
from tests.support.fake_server import (
    INFO,
    FakeServer,
    Script,
    after_connect_sends,
    handshake_sends,
    hello,
    keep_open,
    ping_flood,
    read_until,
    serve_pings,
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


# INFO fields of the wrong JSON type. The fake answers the handshake all the same (PONG to the
# client's PING), so a client that does not check the INFO gets through it: only the check
# stops it, and before any CONNECT (credentials) is sent.
BAD_INFO_CASES = [
    ("connect-urls-int", {"connect_urls": 5},
     "INFO field 'connect_urls' must be a list of strings, got int 5"),
    ("connect-urls-str", {"connect_urls": "abc"},
     "INFO field 'connect_urls' must be a list of strings, got str 'abc'"),
    ("connect-urls-item", {"connect_urls": ["127.0.0.1:1", 7]},
     "INFO field 'connect_urls' must be a list of strings, got list ['127.0.0.1:1', 7]"),
    ("ws-connect-urls-obj", {"ws_connect_urls": {"a": 1}},
     "INFO field 'ws_connect_urls' must be a list of strings, got dict {'a': 1}"),
    ("max-payload-str", {"max_payload": "1MB"},
     "INFO field 'max_payload' must be an integer, got str '1MB'"),
    ("max-payload-bool", {"max_payload": True},
     "INFO field 'max_payload' must be an integer, got bool True"),
    ("max-payload-float", {"max_payload": 1e6},
     "INFO field 'max_payload' must be an integer, got float 1000000.0"),
    ("tls-required-str", {"tls_required": "no"},
     "INFO field 'tls_required' must be true or false, got str 'no'"),
    ("nonce-int", {"nonce": 12},
     "INFO field 'nonce' must be a string, got int 12"),
    ("ldm-int", {"ldm": 1}, "INFO field 'ldm' must be true or false, got int 1"),
    ("client-id-negative", {"client_id": -1},
     "INFO field 'client_id' must be a non-negative integer, got int -1"),
    ("long-value", {"version": ["x" * 100]},
     "INFO field 'version' must be a string, got list ['" + "x" * 35 + "..."),
]


@pytest.mark.parametrize(("fields", "words"),
                         [pytest.param(f, w, id=i) for i, f, w in BAD_INFO_CASES])
def test_bad_info_field_refused_before_connect(fake: Callable[..., FakeServer],
                                               fields: dict[str, object], words: str) -> None:
    """A wrongly typed INFO field: the error names it, nothing is sent to that server (no
    CONNECT with credentials), nothing joins the pool, within connect_timeout."""
    got: list[bytes] = []
    srv = fake(typed_info_then_pong(info_line(**fields), got))
    start = time.monotonic()
    with pytest.raises(ConnectError) as info:
        natsbook.connect(srv.url.replace("nats://", "nats://alice:pw-S3CRET@"),
                         connect_timeout=CONNECT_TIMEOUT, reconnect=False)
    assert time.monotonic() - start < CONNECT_TIMEOUT + 10.0  # refused, not hung
    assert str(info.value) == f"natsbook: {srv.url} sent a bad INFO: {words}"
    assert info.value.url == srv.url
    wait_for(lambda: srv.accepted == 1)
    time.sleep(0.1)
    assert b"".join(got) == b"", got


@pytest.mark.parametrize("fields", [{"connect_urls": 5}, {"connect_urls": "abc"},
                                    {"max_payload": "big"}], ids=["int", "str", "payload"])
def test_failed_connects_leave_no_descriptor_open(fake: Callable[..., FakeServer],
                                                  fields: dict[str, object]) -> None:
    """Twenty connects refused at a bad INFO: no socket, no wake-up pipe left behind."""
    srv = fake(typed_info_then_pong(info_line(**fields), [], seconds=0.5))
    fds_before = set(os.listdir("/proc/self/fd"))
    attempts = 20
    errors = []
    for _ in range(attempts):
        with pytest.raises(Exception) as info:  # its kind is checked below
            natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False)
        errors.append(info.value)
        del info  # the traceback would keep the attempt's frames (and a leaked socket) alive
    wait_for(lambda: srv.accepted == attempts)
    # The fake server's own ends of the connections close when their scripts end.
    wait_for(lambda: all(p.fileno() == -1 for p in srv.peers), timeout=5)
    assert set(os.listdir("/proc/self/fd")) - fds_before == set()
    assert all(type(e) is ConnectError and "sent a bad INFO" in str(e) for e in errors), errors


def test_bad_info_after_connect_is_ignored_and_reported(fake: Callable[..., FakeServer]) -> None:
    """INFOs with wrongly typed fields after the handshake are ignored whole, as nats.go does
    (they corrupt neither the pool nor max_payload nor the lame duck state), each reported and
    counted; the connection carries on and a later good INFO is taken."""
    later = (info_line(connect_urls="abc") + info_line(connect_urls=5)
             + info_line(max_payload="big", connect_urls=["127.0.0.1:2"])
             + info_line(ldm="yes") + info_line(connect_urls=["127.0.0.1:1"]))

    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(later)
        serve_pings(peer, 5)

    srv = fake(script)
    conn = natsbook.connect(srv.url, connect_timeout=CONNECT_TIMEOUT, reconnect=False)
    try:
        wait_for(lambda: len(conn.servers) == 2, timeout=5)
        assert conn.servers == [srv.url, "nats://127.0.0.1:1"]
        ignored = [t for _, t in conn.errors if "ignored an INFO" in t]
        assert ignored == [
            f"ignored an INFO from {srv.url}: INFO field 'connect_urls' must be a list of "
            "strings, got str 'abc'",
            f"ignored an INFO from {srv.url}: INFO field 'connect_urls' must be a list of "
            "strings, got int 5",
            f"ignored an INFO from {srv.url}: INFO field 'max_payload' must be an integer, got "
            "str 'big'",
            f"ignored an INFO from {srv.url}: INFO field 'ldm' must be true or false, got str "
            "'yes'"]
        assert conn.stats["errors"] == 4
        assert conn.max_payload == 1048576 and conn.server_info["max_payload"] == 1048576
        assert conn.is_connected and not conn._engine._info.lame_duck
        conn.flush(5)
        assert len(conn.gaps()) == 0 and conn.stats["reconnects"] == 0
    finally:
        conn.close()


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
        assert conn._engine._parser.buffered <= 128 * 1024, "nothing unbounded kept"
        with pytest.raises(NatsbookError, match="closed"):
            conn.publish("a.b", b"x")
    finally:
        conn.close()
    assert conn._engine._thread is not None and not conn._engine._thread.is_alive()


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
        assert conn._engine._thread is not None and conn._engine._thread.is_alive()
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


# ---------------------------------------------------------------- a server that never reads
#: What the send queue may hold of the I/O thread's own PONG / PING frames.
BOUND = 64 * 1024
SLOW = re.compile(r"slow connection: the server does not read what we send \((\d+) bytes of "
                  rf"our PONG/PING frames queued, bound {BOUND}; (\d+) bytes queued in all\)")


def watch_pending(conn: natsbook.Connection, until: Callable[[], bool],
                  timeout: float) -> int:
    """Poll the send queue's size until `until()`; the largest size seen."""
    most = 0
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {conn.stats}"
        most = max(most, conn.stats["pending_bytes"])
        time.sleep(0.005)
    return most


def test_ping_flood_is_bounded_and_declared_slow(fake: Callable[..., FakeServer]) -> None:
    """A server that floods PINGs and never reads: the PONGs owed count against the send
    queue's bound; past it the connection is declared slow (issue 24: RSS grew 130 -> 629 MiB
    in 16 s queueing millions of PONGs). A huge max_payload in its INFO changes nothing."""
    srv = fake(ping_flood(INFO.replace(b'"max_payload":1048576', b'"max_payload":1000000000')))
    conn = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        most = watch_pending(conn, lambda: conn.is_closed, timeout=30)
        assert most <= BOUND
        reason = conn.gaps()["reason"].tolist()
        assert len(reason) == 1
        m = SLOW.fullmatch(reason[0])
        assert m is not None, reason
        # It stopped at the bound: the next PONG would not fit.
        assert BOUND - len(b"PONG\r\n") < int(m[1]) == int(m[2]) <= BOUND
        assert f"disconnected from {srv.url}: {reason[0]}" in [t for _, t in conn.errors]
        assert conn.stats["pending_bytes"] == 0
    finally:
        conn.close()
    assert conn._engine._thread is not None and not conn._engine._thread.is_alive()


def test_ping_flood_then_reconnect(fake: Callable[..., FakeServer]) -> None:
    """Declared slow, the connection is lost like any other (as nats.go treats a stalled
    write): it reconnects, and what was published meanwhile goes to the next server."""
    got: list[bytes] = []

    def slow_to_answer(peer: socket.socket) -> None:
        time.sleep(0.5)  # a reconnect that takes a while: publishes wait in the buffer
        hello(peer)
        got.append(read_until(peer, b"PING\r\n"))  # the buffered publish, then flush's PING
        peer.sendall(b"PONG\r\n")
        keep_open(peer, 5)

    srv = fake(ping_flood(), slow_to_answer)
    conn = natsbook.connect(srv.url, ping_interval=60, reconnect_wait=0.02)
    try:
        most = watch_pending(conn, lambda: conn.status == "reconnecting", timeout=30)
        assert most <= BOUND
        conn.publish("kept", b"published during the gap")
        wait_for(lambda: conn.stats["reconnects"] == 1, timeout=10)
        conn.flush(5)
        assert SLOW.fullmatch(conn.gaps()["reason"].iloc[0])
        assert got[0] == b"PUB kept 24\r\npublished during the gap\r\nPING\r\n"
        st = conn.stats
        assert (st["out_msgs"], st["pending_msgs"], st["unsent_msgs"]) == (1, 0, 0)
    finally:
        conn.close()


def test_flush_against_a_full_send_queue_adds_nothing(fake: Callable[..., FakeServer]) -> None:
    """flush()'s PING counts against the same bound as publishes: while the queue is past
    pending_size it waits for room (FlushTimeout), instead of queueing PINGs without end."""
    srv = fake(lambda p: (hello(p), time.sleep(10)))
    conn = natsbook.connect(srv.url, reconnect=False, ping_interval=60, pending_size=100_000)
    try:
        # Publish until the queue is past pending_size and the socket takes nothing more
        # (socket buffers hold a few MB).
        written, since = -1, time.monotonic()
        deadline = since + 20
        while True:
            assert time.monotonic() < deadline, conn.stats
            st = conn.stats
            if st["pending_bytes"] <= 100_000:
                conn.publish("a", b"x" * 100_000)
            elif st["out_bytes"] != written:
                written, since = st["out_bytes"], time.monotonic()
            elif time.monotonic() - since > 0.2:
                break
            else:
                time.sleep(0.01)
        queued = conn.stats["pending_bytes"]
        assert queued > 100_000
        for _ in range(100):
            with pytest.raises(FlushTimeout):
                conn.flush(0.005)
        assert conn.stats["pending_bytes"] == queued
        assert conn.stats["pending_msgs"] > 0
    finally:
        conn.close(timeout=0.5)
