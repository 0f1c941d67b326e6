"""FakeServer scripts that play a server's role for the hostile-peer tests: a TLS server (real
TLS with the trustme test certificates) whose INFO announces other servers, a plaintext server
that records every byte a client sends it, and a server whose INFO is hostile but which answers
the handshake all the same (so a client that does not check the INFO gets through it).

Every wait is bounded; each script records what it received as it arrives, so a test can look
at it while the client is still connected.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import orjson

from tests.support.fake_server import Script, read_until, serve_pings

__all__ = ["BASE_INFO", "info_line", "plain_role", "server_tls_context",
           "tls_role", "typed_info_then_pong"]

#: The INFO fields of tests.support.fake_server.INFO, as a dict to add fields to.
BASE_INFO: dict[str, Any] = {"server_id": "FAKE", "version": "2.10.0", "proto": 1,
                             "headers": True, "max_payload": 1048576, "host": "127.0.0.1",
                             "port": 4222}


def info_line(**fields: Any) -> bytes:
    """An INFO line: the fake server's usual fields with `fields` added or replaced."""
    return b"INFO " + orjson.dumps({**BASE_INFO, **fields}) + b"\r\n"


def server_tls_context(pki: dict[str, str]) -> ssl.SSLContext:
    """A server-side TLS context with the test certificate for 127.0.0.1 (tests/conftest pki)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    return ctx


def tls_role(ctx: ssl.SSLContext, info: bytes, got: list[bytes], serve_for: float) -> Script:
    """A TLS server as nats-server is one: INFO (plaintext, with tls_required), the TLS
    handshake, then CONNECT + PING over TLS (recorded into `got`), PONG; it serves PINGs for
    `serve_for` seconds and then drops the client."""
    def script(peer: socket.socket) -> None:
        peer.sendall(info)
        tls = ctx.wrap_socket(peer, server_side=True)
        try:
            got.append(read_until(tls, b"PING\r\n"))
            tls.sendall(b"PONG\r\n")
            serve_pings(tls, serve_for)
        finally:
            tls.close()
    return script


def plain_role(got: list[bytes], seconds: float = 5.0) -> Script:
    """A plaintext server (INFO offers no TLS) that records every byte a client sends it as it
    arrives and answers like a server would (PONG to each PING), so a client that sends it
    credentials gets connected."""
    def script(peer: socket.socket) -> None:
        peer.sendall(info_line())
        serve_pings(peer, seconds, got)
        peer.close()
    return script


def typed_info_then_pong(info: bytes, got: list[bytes], seconds: float = 3.0) -> Script:
    """Send `info` (a hostile INFO line), then behave: record what the client sends and answer
    its PINGs, so that only a client that checks the INFO stops at it."""
    def script(peer: socket.socket) -> None:
        peer.sendall(info)
        serve_pings(peer, seconds, got)
        peer.close()
    return script
