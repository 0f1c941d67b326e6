"""Scripted fake NATS servers for the lame-duck tests (tests/test_reconnect_exact.py): a lame
duck that announces ldm on cue, and a server to move to that answers the move's SUBs slowly.
Scripts for tests.support.fake_server.FakeServer."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

from tests.support.fake_server import INFO, hello, read_until

__all__ = ["LameDuck", "NewServer", "dead_url"]


def _chunks(peer: socket.socket, stop: Callable[[], bool]) -> Iterator[bytes]:
    """What the client sends, chunk by chunk (b"" every 20 ms of silence), until it closes
    the connection or `stop()`."""
    peer.settimeout(0.02)
    while not stop():
        try:
            data = peer.recv(65536)
        except TimeoutError:
            yield b""
            continue
        if not data:
            return
        yield data


class LameDuck:
    """A fake server script: answers PINGs, sends what the test queues, and on `go` announces
    lame duck mode; while the client drains, it sends one last message before each PONG."""

    def __init__(self, *, mute: bool = False, close_on_drain: bool = False) -> None:
        self.go = threading.Event()
        self.mute = mute  # answers no PING (before or after the lame duck INFO)
        self.close_on_drain = close_on_drain  # closes the connection on the drain's PING
        self.outbox: list[bytes] = []
        self.before = bytearray()  # what the client sent before the lame duck INFO
        self.after = bytearray()  # ... and after it
        self.last_msg = b""

    def __call__(self, peer: socket.socket) -> None:
        hello(peer)
        lame = False
        for data in _chunks(peer, lambda: False):
            while self.outbox:
                peer.sendall(self.outbox.pop(0))
            if self.go.is_set() and not lame:
                peer.sendall(b'INFO {"ldm":true}\r\n')
                lame = True
            (self.after if lame else self.before).extend(data)
            if lame and self.close_on_drain and b"PING\r\n" in data:
                peer.close()
                return
            for _ in range(0 if self.mute else data.count(b"PING\r\n")):
                peer.sendall((self.last_msg if lame else b"") + b"PONG\r\n")

    def sids(self) -> dict[str, int]:
        """Subject -> sid of the SUBs the client sent before the move."""
        return {m[1].decode(): int(m[2]) for m in
                re.finditer(rb"SUB (\S+) (?:\S+ )?(\d+)\r\n", bytes(self.before))}


class NewServer:
    """A fake server to move to: its handshake PONG comes with an INFO behind it; it answers
    the SUBs + PING of the move with a message for the first SUB, then (later) the PONG."""

    def __init__(self) -> None:
        self.connect = b""
        self.pong_sent = 0.0
        self.done = threading.Event()  # set: close the connection

    def __call__(self, peer: socket.socket) -> None:
        peer.sendall(INFO)
        self.connect = read_until(peer, b"PING\r\n")
        peer.sendall(b'PONG\r\nINFO {"server_id":"NEW"}\r\n')
        subs = read_until(peer, b"PING\r\n")
        m = re.search(rb"SUB (\S+) (\d+)\r\n", subs)
        assert m is not None
        peer.sendall(b"MSG %s %s 1\r\nz\r\n" % (m[1], m[2]))
        time.sleep(0.2)
        self.pong_sent = time.monotonic()
        peer.sendall(b"PONG\r\n")
        for data in _chunks(peer, self.done.is_set):
            peer.sendall(b"PONG\r\n" * data.count(b"PING\r\n"))
        peer.close()


def dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"nats://127.0.0.1:{port}"
