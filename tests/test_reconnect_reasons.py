"""What a reconnect says and sends (mutation testing of natsbook/core/_reconnect.py, issue
18): the gap's reason after a connection reset over TCP and after a WebSocket close frame,
the debug log line of each failed reconnect attempt, and the CONNECT options (echo) a
reconnect sends again."""

from __future__ import annotations

import json
import logging
import socket
import struct
from collections.abc import Callable

import pytest

import natsbook
from natsbook import LocalServer
from tests.support.fake_server import (
    INFO,
    FakeServer,
    hello,
    keep_open,
    read_until,
    well_behaved,
)
from tests.support.lame_duck import dead_url
from tests.support.waiting import wait_for


def _reset_after_hello(peer: socket.socket) -> None:
    """Handshake, then a TCP reset (SO_LINGER 0): the client's recv fails with ECONNRESET."""
    hello(peer)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


def test_gap_reason_after_a_connection_reset(fake: Callable[..., FakeServer]) -> None:
    srv = fake(_reset_after_hello, well_behaved)
    conn = natsbook.connect(srv.url, reconnect_wait=0.01, ping_interval=60)
    try:
        assert wait_for(lambda: conn.stats["reconnects"] == 1 and conn.is_connected, 10)
        reason = conn.gaps()["reason"].iloc[0]
        assert reason.startswith("connection error: ") and "reset" in reason.lower()
    finally:
        conn.close()


def test_gap_reason_after_a_websocket_close_frame(fresh_server: LocalServer) -> None:
    """A natsbook error that is also an OSError (WebSocketClosedError): its text goes into the
    gap without the "natsbook: " every natsbook error starts with."""
    assert fresh_server.ws_url
    with natsbook.connect(fresh_server.ws_url, reconnect_wait=0.01) as conn:
        fresh_server.stop()
        assert wait_for(lambda: conn.status == "reconnecting", 5)
        fresh_server.start()
        assert wait_for(lambda: conn.status == "connected", 10)
        reason = conn.gaps()["reason"].iloc[0]
    assert reason.startswith(f"connection error: {fresh_server.ws_url} closed the WebSocket "
                             "(1001: Server Shutdown) - ")
    assert "natsbook:" not in reason


def test_each_failed_reconnect_attempt_is_logged(fake: Callable[..., FakeServer],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def dies(peer: socket.socket) -> None:
        hello(peer)
        peer.close()

    dead = dead_url()
    srv = fake(dies, well_behaved)
    caplog.set_level(logging.DEBUG, logger="natsbook")
    conn = natsbook.connect([srv.url, dead], reconnect_wait=0.01, ping_interval=60,
                            discovery=False)
    try:
        assert wait_for(lambda: conn.stats["reconnects"] == 1 and conn.is_connected, 10)
    finally:
        conn.close()
    lines = [r.getMessage() for r in caplog.records if "reconnect to" in r.getMessage()]
    assert lines and lines[0].startswith(f"natsbook: reconnect to {dead} failed: natsbook: ")
    assert all(r.levelno == logging.DEBUG for r in caplog.records
               if "reconnect to" in r.getMessage())


@pytest.mark.parametrize("echo", [True, False])
def test_a_reconnect_sends_the_same_echo(fake: Callable[..., FakeServer], echo: bool) -> None:
    """echo=False (no copies of the connection's own publishes) holds after a reconnect: the
    second CONNECT says so too."""
    connects: list[dict[str, object]] = []

    def record(peer: socket.socket, then_close: bool) -> None:
        peer.sendall(INFO)
        data = read_until(peer, b"PING\r\n")
        line = data.split(b"\r\n")[0]
        connects.append(json.loads(line.removeprefix(b"CONNECT ")))
        peer.sendall(b"PONG\r\n")
        if then_close:
            peer.close()
        else:
            keep_open(peer)

    srv = fake(lambda p: record(p, True), lambda p: record(p, False))
    conn = natsbook.connect(srv.url, reconnect_wait=0.01, ping_interval=60, echo=echo)
    try:
        assert wait_for(lambda: conn.stats["reconnects"] == 1 and conn.is_connected, 10)
    finally:
        conn.close()
    assert len(connects) == 2 and [c["echo"] for c in connects] == [echo, echo]
