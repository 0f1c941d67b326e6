"""WebSocket test peers on loopback: an HTTP Upgrade-forwarding reverse proxy (the typical
deployment in front of nats-server), and a small misbehaving WebSocket NATS server for the
faults a real nats-server never produces (text frames, close frames with a chosen reason)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Request,
    TextMessage,
)

__all__ = ["FaultyWebSocketServer", "UpgradeProxy"]


class _Listener:
    """A loopback listener with one thread per accepted connection; close() stops it all."""

    def __init__(self) -> None:
        self._lsock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._lsock.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self._start(self._accept_loop)

    def _start(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._lsock.accept()
            except OSError:
                return
            self._track(client)
            self._start(self._serve, client)

    def _serve(self, client: socket.socket) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self._lsock.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in threads:
            t.join(5)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP request head (up to the blank line) and whatever followed it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("closed before the request head ended")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def _http(status: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class UpgradeProxy(_Listener):
    """Reverse proxy that only speaks HTTP: a GET with ``Upgrade: websocket`` on `path` is
    forwarded to the backend and, once upgraded, bytes flow both ways untouched. Any other
    path gets 404, a request without Upgrade gets 400, and ``refuse`` answers every upgrade
    with that status (e.g. "403 Forbidden")."""

    def __init__(self, backend_port: int, path: str = "/nats", refuse: str | None = None) -> None:
        self.backend_port = backend_port
        self.path = path
        self.refuse = refuse
        self.upgrades = 0
        super().__init__()

    def _serve(self, client: socket.socket) -> None:
        try:
            head, rest = _read_head(client)
        except OSError:
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        path = request_line.split(" ")[1] if " " in request_line else ""
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (h.partition(":") for h in header_lines if h)}
        if path != self.path:
            client.sendall(_http("404 Not Found", b"no route for " + path.encode()))
            return
        if headers.get("upgrade", "").lower() != "websocket":
            client.sendall(_http("400 Bad Request", b"this route needs a WebSocket upgrade"))
            return
        if self.refuse:
            client.sendall(_http(self.refuse, b"access denied by proxy policy"))
            return
        try:
            backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=5)
        except OSError:
            client.sendall(_http("502 Bad Gateway", b"backend down"))
            return
        backend.settimeout(None)
        self._track(backend)
        self.upgrades += 1
        # As nginx does: rewrite the target, say who the client was, keep the Upgrade headers.
        forwarded = head.replace(f" {self.path} ".encode(), b" / ", 1).replace(
            b"\r\n\r\n", b"\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n", 1)
        backend.sendall(forwarded + rest)
        self._start(self._pump, backend, client)
        self._pump(client, backend)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class FaultyWebSocketServer(_Listener):
    """Speaks just enough NATS over WebSocket for a client to connect (INFO, then PONG to its
    PING); then, when the client publishes to ``poke.text`` or ``poke.close``, sends a text
    frame or a close frame with `close_reason` (``close_at_once``: right after the upgrade).
    ``status`` instead answers the upgrade with that HTTP status line and `body`."""

    INFO = b'INFO {"server_id":"FAKE","version":"2.15.1","proto":1,"headers":true,' \
           b'"max_payload":1048576}\r\n'

    def __init__(self, *, close_code: int = 1008, close_reason: str = "policy says no",
                 status: str | None = None, body: bytes = b"",
                 connect_urls: list[str] | None = None, close_at_once: bool = False) -> None:
        self.close_at_once = close_at_once
        if connect_urls is not None:
            self.INFO = self.INFO.replace(b"}\r\n", b',"connect_urls":%s}\r\n'
                                          % json.dumps(connect_urls).encode())
        self.close_code = close_code
        self.close_reason = close_reason
        self.status = status
        self.body = body
        super().__init__()

    def _serve(self, client: socket.socket) -> None:
        if self.status:
            try:
                _read_head(client)
                client.sendall(_http(self.status, self.body))
            except OSError:
                pass
            return
        ws = WSConnection(ConnectionType.SERVER)
        got = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        client.sendall(ws.send(AcceptConnection()))
                        if self.close_at_once:
                            client.sendall(ws.send(CloseConnection(self.close_code,
                                                                   self.close_reason)))
                            continue
                        client.sendall(ws.send(Message(data=self.INFO)))
                    elif isinstance(event, BytesMessage):
                        got += bytes(event.data)
                    elif isinstance(event, (TextMessage, CloseConnection)):
                        return
                while b"\r\n" in got:
                    line, got = got.split(b"\r\n", 1)
                    if line.startswith(b"PING"):
                        client.sendall(ws.send(Message(data=b"PONG\r\n")))
                    elif line.startswith(b"PUB poke.text"):
                        client.sendall(ws.send(Message(data="PING\r\n")))  # a text frame
                    elif line.startswith(b"PUB poke.close"):
                        client.sendall(ws.send(CloseConnection(self.close_code,
                                                               self.close_reason)))
        except OSError:
            return
