"""Reconnect over a pool of servers, exactly (mutation testing of natsbook/core/_reconnect.py,
issue 18): which server a reconnect tries first, a flush() in flight across a drop, a
lame-duck move after an earlier reconnect, the drain's deadline, reconnect=False's reason.
Scripted fake servers only (see tests/test_reconnect_exact.py for the rest).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

import natsbook
from natsbook.errors import ConnectionClosedError
from tests.support.fake_server import FakeServer, hello, keep_open, read_until
from tests.support.lame_duck import LameDuck, NewServer
from tests.support.waiting import wait_for


def _dies_after(seconds: float) -> Callable[[socket.socket], None]:
    """Handshake, ignore everything (no PONG) for `seconds`, then close."""
    def script(peer: socket.socket) -> None:
        hello(peer)
        keep_open(peer, seconds)
        peer.close()
    return script


def _refuses(peer: socket.socket) -> None:
    peer.close()


class _Answers:
    """A good server that notes when it first gets a PING after the handshake."""

    def __init__(self) -> None:
        self.first_ping = 0.0

    def __call__(self, peer: socket.socket) -> None:
        hello(peer)
        read_until(peer, b"PING\r\n")
        self.first_ping = time.monotonic()
        peer.sendall(b"PONG\r\n")
        keep_open(peer, 3)


def test_reconnect_starts_with_the_next_server(fake: Callable[..., FakeServer]) -> None:
    """Pool [A, B, C], connected to B (A refused): after B drops, C is tried first, then A;
    B, just lost, comes last."""
    good = _Answers()
    a, b, c = fake(_refuses, good), fake(_dies_after(0.2)), fake(_refuses)
    conn = natsbook.connect([a.url, b.url, c.url], reconnect_wait=0.01, ping_interval=60)
    try:
        assert conn.connected_url == b.url
        assert wait_for(lambda: conn.connected_url == a.url, 3)
        assert (a.accepted, b.accepted, c.accepted) == (2, 1, 1)
    finally:
        conn.close()


def test_flush_in_flight_across_a_drop(fake: Callable[..., FakeServer]) -> None:
    """Pool [A, B]: A never answers the flush's PING and drops; the flush waits for B's answer
    (a true barrier), and the reconnect goes to B first."""
    good = _Answers()
    a, b = fake(_dies_after(0.3)), fake(good)
    conn = natsbook.connect([a.url, b.url], reconnect_wait=0.01, ping_interval=60)
    try:
        conn.flush(5)
        assert good.first_ping > 0 and time.monotonic() >= good.first_ping
        assert conn.connected_url == b.url and a.accepted == 1
    finally:
        conn.close()


def test_lame_duck_move_after_a_reconnect(fake: Callable[..., FakeServer]) -> None:
    duck, new = LameDuck(), NewServer()
    x, d, t = fake(_dies_after(0.1), _refuses), fake(duck), fake(new)
    conn = natsbook.connect([x.url, d.url, t.url], reconnect_wait=0.01, ping_interval=60)
    try:
        assert wait_for(lambda: conn.connected_url == d.url, 3)
        conn.subscribe("a")
        conn.flush(2)
        duck.go.set()
        assert wait_for(lambda: conn.connected_url == t.url, 3)
        assert conn.stats["reconnects"] == 2 and len(conn.gaps()) == 2
    finally:
        conn.close()


def test_drain_gives_up_at_the_connect_timeout(fake: Callable[..., FakeServer]) -> None:
    """A lame duck that never answers the drain's PING holds the move up to connect_timeout
    (counted from the start of the move), not a moment more."""
    duck, new = LameDuck(), NewServer()
    srv, target = fake(duck), fake(new)
    conn = natsbook.connect([srv.url, target.url], ping_interval=60, connect_timeout=0.6)
    try:
        conn.subscribe("a")
        duck.mute = True
        start = time.monotonic()
        duck.go.set()
        assert wait_for(lambda: conn.connected_url == target.url, 3)
        assert time.monotonic() - start < 1.0
    finally:
        conn.close()


def test_no_reconnect_says_so(fake: Callable[..., FakeServer]) -> None:
    srv = fake(_dies_after(0.1))
    conn = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        assert wait_for(lambda: conn.is_closed, 3)
        with pytest.raises(ConnectionClosedError) as info:
            conn.publish("a", b"")
        assert str(info.value) == ("natsbook: connection is closed (disconnected and "
                                   "reconnect=False) - open a new one with natsbook.connect()")
        assert srv.accepted == 1
    finally:
        conn.close()


class _RecordsAfterMove:
    """A server to move to that keeps everything the client sends after the move's PONG."""

    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, peer: socket.socket) -> None:
        hello(peer)
        read_until(peer, b"PING\r\n")  # the move's SUBs + PING
        time.sleep(0.5)  # meanwhile the test publishes
        peer.sendall(b"PONG\r\n")
        peer.settimeout(3)
        while chunk := peer.recv(65536):
            self.data += chunk
            peer.sendall(b"PONG\r\n" * chunk.count(b"PING\r\n"))


def test_publishes_survive_a_lame_duck_that_resets(fake: Callable[..., FakeServer]) -> None:
    """The lame duck resets the connection while the client subscribes elsewhere: sending it
    the drain fails, and the publishes queued meanwhile go to the new server, in order, and
    nothing else (the UNSUBs and PING were for the lame duck)."""
    go = threading.Event()

    def resets(peer: socket.socket) -> None:
        hello(peer)
        read_until(peer, b"PING\r\n")  # subscribe("a") waits for this PONG
        peer.sendall(b"PONG\r\n")
        go.wait(5)
        peer.sendall(b'INFO {"ldm":true}\r\n')
        time.sleep(0.05)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST

    new = _RecordsAfterMove()
    srv, target = fake(resets), fake(new)
    conn = natsbook.connect([srv.url, target.url], ping_interval=60, connect_timeout=2)
    try:
        conn.subscribe("a")
        go.set()
        assert wait_for(lambda: any("entered lame duck" in t for _, t in conn.errors), 2)
        time.sleep(0.05)  # the move has started: publishes wait in the queue
        conn.publish("a", b"p1")
        conn.publish("a", b"p2")
        assert wait_for(lambda: conn.connected_url == target.url, 3)
        conn.flush(3)
        assert bytes(new.data).startswith(b"PUB a 2\r\np1\r\nPUB a 2\r\np2\r\nPING\r\n")
        assert conn.stats["pending_bytes"] == 0
    finally:
        conn.close()
