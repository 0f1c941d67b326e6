"""A scripted fake NATS server for hostile-peer and exact tests.

A small socket server on 127.0.0.1 (free port). Connection number i runs scripts[min(i, len - 1)];
every wait here is bounded. Tests use the `fake` fixture (import it into the test module) or
`FakeServer` directly.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

__all__ = [
    "INFO",
    "FakeServer",
    "Script",
    "after_connect_sends",
    "fake",
    "handshake_sends",
    "hello",
    "keep_open",
    "ping_flood",
    "read_until",
    "reads_later",
    "serve_pings",
    "well_behaved",
    "well_behaved_for",
]

INFO = (b'INFO {"server_id":"FAKE","version":"2.10.0","proto":1,"headers":true,'
        b'"max_payload":1048576,"host":"127.0.0.1","port":4222}\r\n')

Script = Callable[[socket.socket], None]


class FakeServer:
    """Accepts connections; connection number i runs scripts[min(i, len - 1)]."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.accepted = 0
        #: time.monotonic() of each accept, in order
        self.accepted_at: list[float] = []
        self.stop = threading.Event()
        self.peers: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True, name="fake-nats")
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                peer, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            peer.settimeout(5)
            self.peers.append(peer)
            self.accepted_at.append(time.monotonic())
            script = self.scripts[min(self.accepted, len(self.scripts) - 1)]
            self.accepted += 1
            threading.Thread(target=self._run, args=(script, peer), daemon=True).start()

    @staticmethod
    def _run(script: Script, peer: socket.socket) -> None:
        try:
            script(peer)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        for p in self.peers:
            try:
                p.close()
            except OSError:
                pass


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    made: list[FakeServer] = []

    def make(*scripts: Script) -> FakeServer:
        srv = FakeServer(*scripts)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


def read_until(peer: socket.socket, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        chunk = peer.recv(65536)
        if not chunk:
            raise ConnectionResetError
        buf += chunk
    return buf


def hello(peer: socket.socket) -> None:
    """A well-behaved handshake: INFO, read CONNECT + PING, answer PONG."""
    peer.sendall(INFO)
    read_until(peer, b"PING\r\n")
    peer.sendall(b"PONG\r\n")


def keep_open(peer: socket.socket, seconds: float = 5.0) -> None:
    """Swallow whatever the client sends (never answering) for a while."""
    peer.settimeout(0.1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if not peer.recv(65536):
                return
        except TimeoutError:
            continue


def well_behaved(peer: socket.socket) -> None:
    """A fake server good enough for subscribe/flush: answers every PING."""
    well_behaved_for(peer, 10)


def well_behaved_for(peer: socket.socket, seconds: float) -> None:
    hello(peer)
    serve_pings(peer, seconds)


def serve_pings(peer: socket.socket, seconds: float, got: list[bytes] | None = None) -> None:
    """Answer each PING with a PONG for `seconds` (recording what arrives into `got`), or until
    the client closes."""
    peer.settimeout(0.05)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = peer.recv(65536)
        except TimeoutError:
            continue
        except (ssl.SSLError, OSError):
            return
        if not data:
            return
        if got is not None:
            got.append(data)
        for _ in range(data.count(b"PING\r\n")):
            peer.sendall(b"PONG\r\n")


def handshake_sends(data: bytes, then_close: bool = False) -> Script:
    def script(peer: socket.socket) -> None:
        peer.sendall(data)
        if then_close:
            peer.close()
        else:
            keep_open(peer, 3)
    return script


def after_connect_sends(data: bytes, then_close: bool = False) -> Script:
    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(data)
        if then_close:
            peer.shutdown(socket.SHUT_RDWR)
            peer.close()
        else:
            keep_open(peer, 5)
    return script


def ping_flood(info: bytes = INFO, chunks: int = 1000) -> Script:
    """A handshake, then PINGs as fast as the client takes them, never reading a byte (it
    never reads our PONGs). At most `chunks` x 10,000 PINGs: bounded even against a client
    that keeps reading forever; a send that stalls 5 s (the peer timeout) ends it too."""
    def script(peer: socket.socket) -> None:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.sendall(info)
        read_until(peer, b"PING\r\n")
        peer.sendall(b"PONG\r\n")
        flood = b"PING\r\n" * 10_000
        for _ in range(chunks):
            peer.sendall(flood)
    return script


def reads_later(go: threading.Event, got: list[bytes], wait: float = 10.0) -> Script:
    """A handshake, then not a byte read until `go` is set (at most `wait` s): a server that
    stops reading. Then it reads everything until the client's socket is closed and appends
    what came after the handshake to `got`."""
    def script(peer: socket.socket) -> None:
        hello(peer)
        go.wait(wait)
        buf = bytearray()
        while chunk := peer.recv(1 << 20):
            buf += chunk
        got.append(bytes(buf))
    return script
