"""Small scripts for tests.support.fake_server.FakeServer shared by the exact tests."""

from __future__ import annotations

import socket
from collections.abc import Callable

from tests.support.fake_server import INFO, keep_open, read_until

__all__ = ["answers_then_reads"]


def answers_then_reads(after: bytes, got: list[bytes]) -> Callable[[socket.socket], None]:
    """INFO, read CONNECT + PING, send `after` (the handshake's PONG and what follows it in
    the same packet), then record what the client sends up to its next PONG into `got`."""
    def script(peer: socket.socket) -> None:
        peer.sendall(INFO)
        read_until(peer, b"PING\r\n")
        peer.sendall(after)
        got.append(read_until(peer, b"PONG\r\n"))
        keep_open(peer, 2)
    return script
