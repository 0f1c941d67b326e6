"""NATS over WebSocket (``ws://`` / ``wss://``): the HTTP upgrade, then a socket-like byte stream.

The engine reads and writes the NATS byte stream through whatever `handshake()` hands it. For a
WebSocket server that is a `WebSocketStream`: it owns the TCP (or TLS) socket and frames the
stream with `wsproto` (sans-IO: natsbook keeps the socket, the selector and the single I/O
thread). Each ``send()`` becomes one masked binary frame (a client must mask); ``recv()`` returns
the payload bytes of the binary frames received so far, frame boundaries dropped, since NATS is a
byte stream and its parser reassembles split lines itself.

The stream behaves like a non-blocking socket the way the engine already treats an SSL socket:
``send()`` raises BlockingIOError when the frame did not fully reach the socket, and must then be
called again with the same bytes (it keeps the frame and finishes it first), exactly the retry
rule of SSL_write; ``pending()`` says decoded bytes are waiting without the socket being
readable.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError as WSProtocolError

from ..errors import (
    ConnectError,
    NotWebSocketError,
    TLSError,
    WebSocketClosedError,
    WebSocketFrameError,
    WebSocketUpgradeError,
)

__all__ = ["WebSocketStream", "upgrade"]

#: HTTP statuses meaning "nothing that speaks WebSocket lives at this URL".
_NOT_WS = {400, 404, 405, 426}
_AGENT = b"natsbook"


class WebSocketStream:
    """A connected WebSocket carrying the NATS byte stream; socket-like for the engine.

    Only the I/O thread (or the thread running the handshake, before the I/O thread exists)
    may call it, like the socket it wraps.
    """

    def __init__(self, sock: socket.socket, ws: WSConnection, url: str) -> None:
        self._sock = sock
        self._ws = ws
        self.url = url
        self._rbuf: list[bytes] = []
        self._rlen = 0
        self._wire = bytearray()   # encoded bytes not yet taken by the socket
        self._owed = 0             # NATS bytes of the caller's last send() inside _wire
        self._closed: WebSocketClosedError | None = None
        self._later: Exception | None = None  # raised by the next recv(), after the data
        self._eof = False
        self._nonblocking = sock.gettimeout() == 0.0
        self._events()  # bytes that came with the 101 answer (often the INFO) are ready now

    # -- socket-like surface ------------------------------------------------------------------
    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)
        self._nonblocking = not flag

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)
        self._nonblocking = value == 0.0

    def pending(self) -> int:
        """Decoded bytes (or buffered TLS records) ready without the socket being readable."""
        if self._rlen:
            return self._rlen
        return self._sock.pending() if isinstance(self._sock, ssl.SSLSocket) else 0

    def recv(self, bufsize: int) -> bytes:
        """The NATS bytes received so far (possibly more than `bufsize`); b"" at end of stream.

        Raises whatever the socket raises (BlockingIOError, SSLWantReadError, TimeoutError)
        when no whole payload byte is available yet, WebSocketFrameError on a text frame and
        WebSocketClosedError once the server's close frame has been reached.
        """
        while not self._rlen:
            if self._later is not None:
                raise self._later
            if self._closed is not None:
                raise self._closed
            if self._eof:
                return b""
            data = self._sock.recv(max(bufsize, 65536))
            if not data:
                return b""
            self._feed(data)
            if self._wire:
                self._try_flush()  # a Pong (or close reply) queued by _events()
        if self._nonblocking:
            self._read_more(bufsize)
        out = self._rbuf[0] if len(self._rbuf) == 1 else b"".join(self._rbuf)
        self._rbuf = []
        self._rlen = 0
        return out

    def send(self, data: bytes | memoryview) -> int:
        """Send `data` as one binary frame; returns len(data) once it is all on the socket.

        Raises BlockingIOError (or SSLWant*) when the frame is only partly written; call again
        with the same bytes, which are not framed twice.
        """
        if not self._owed:
            self._wire += self._ws.send(Message(data=bytes(data)))
            self._owed = len(data)
        self._flush()
        if self._wire:
            raise BlockingIOError("websocket frame partly written")
        n, self._owed = self._owed, 0
        return n

    def sendall(self, data: bytes | memoryview) -> None:
        """Blocking send (the handshake and the lame-duck move, with a socket timeout).

        After a send() that raised BlockingIOError, `data` starts with that send's bytes (the
        engine's rule): the frame already begun carries them, only the rest is framed anew.
        """
        rest = memoryview(data)[self._owed:]
        if rest:
            self._wire += self._ws.send(Message(data=bytes(rest)))
        self._owed = 0
        wire, self._wire = bytes(self._wire), bytearray()
        self._sock.sendall(wire)

    def close(self) -> None:
        self._sock.close()

    # -- internals ----------------------------------------------------------------------------
    def _read_more(self, bufsize: int) -> None:
        """Take what else the socket already holds, up to `bufsize` decoded bytes: TLS hands
        out one record (<= 16 KB) per read, and the engine's parser is fastest on big batches.
        What stops the reading (end of stream, a close or bad frame) waits for the next recv(),
        so the bytes decoded before it are delivered first."""
        while self._rlen < bufsize and self._closed is None and self._later is None:
            try:
                data = self._sock.recv(bufsize)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return
            except OSError as exc:
                self._later = exc
                return
            if not data:
                self._eof = True
                return
            self._feed(data)
        if self._wire:
            self._try_flush()

    def _feed(self, data: bytes) -> None:
        self._ws.receive_data(data)
        try:
            self._events()
        except WebSocketFrameError as exc:
            if not self._rlen:
                raise
            self._later = exc  # deliver the payload decoded before the bad frame first

    def _flush(self) -> None:
        while self._wire:
            n = self._sock.send(self._wire)
            del self._wire[:n]

    def _try_flush(self) -> None:
        try:
            self._flush()
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass  # the rest goes out with the engine's next write

    def _events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, BytesMessage):
                self._rbuf.append(bytes(event.data))
                self._rlen += len(event.data)
            elif isinstance(event, Ping):
                # _wire only ever holds whole frames (the head of the first maybe sent), so a
                # Pong can follow them; recv() or the next send() puts it on the socket.
                self._wire += self._ws.send(event.response())
            elif isinstance(event, TextMessage):
                raise WebSocketFrameError(
                    f"{self.url} sent a text WebSocket frame ({event.data[:40]!r}); NATS uses "
                    "binary frames only - is this URL a NATS server's websocket port?")
            elif isinstance(event, CloseConnection):
                if self._ws.state is ConnectionState.OPEN:
                    # wsproto's own verdict on frames it could not parse, not the server's.
                    raise WebSocketFrameError(
                        f"{self.url} sent a bad WebSocket frame ({event.reason}) - is this URL "
                        "a NATS server's websocket port?")
                if self._closed is None:
                    self._closed = WebSocketClosedError(self.url, event.code, event.reason or "")
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    # Answer the close after any Pong queued before it (recv() flushes both),
                    # best effort: the socket is dropped next anyway.
                    with contextlib.suppress(WSProtocolError):
                        self._wire += self._ws.send(event.response())


def upgrade(sock: socket.socket, host: str, port: int, path: str, url: str,
            deadline: float) -> WebSocketStream:
    """HTTP/1.1 Upgrade to WebSocket over a connected (TLS if wss) socket, before `deadline`.

    Raises:
        NotWebSocketError: the answer was not HTTP, or 400/404/405/426 (no WebSocket here).
        WebSocketUpgradeError: another HTTP status, or a bad 101 (the upgrade was refused).
        ConnectError (via TimeoutError): no answer in time.
    """
    ws = WSConnection(ConnectionType.CLIENT)
    default = 443 if url.startswith("wss:") else 80
    host_header = host if ":" not in host else f"[{host}]"
    if port != default:
        host_header += f":{port}"
    sock.sendall(ws.send(Request(host=host_header, target=path or "/",
                                 extra_headers=[(b"User-Agent", _AGENT)])))
    first = b""
    status: int | None = None
    body = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not first:
            first = data
        try:
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return WebSocketStream(sock, ws, url)
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise _refused(url, status, body)
                elif isinstance(event, RejectData):
                    body += bytes(event.data)
                    if event.body_finished or len(body) > 4096:
                        raise _refused(url, status or 0, body)
        except WSProtocolError as exc:
            if status is not None:
                raise _refused(url, status, body) from None
            if not first:
                raise NotWebSocketError(
                    f"{url} closed the connection instead of answering the WebSocket upgrade - "
                    "if that port speaks TLS use wss://, else check the port and path", url,
                    None) from None
            if first.startswith(b"HTTP/"):
                raise WebSocketUpgradeError(
                    f"the WebSocket upgrade to {url} was refused ({exc}) - check that any "
                    "proxy on the way forwards the Upgrade and Connection headers", url,
                    101 if first.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")) else None) \
                    from None
            hint = (" (that is a NATS client port: use nats:// for it, or the server's "
                    "websocket port)" if first.startswith(b"INFO ") else "")
            raise NotWebSocketError(f"{url} is not a WebSocket endpoint: it answered "
                                    f"{first[:40]!r}{hint}", url, None) from None
        if not data:
            if status is not None:
                raise _refused(url, status, body)
            raise NotWebSocketError(
                f"{url} closed the connection instead of answering the WebSocket upgrade - if "
                "that port speaks TLS use wss://, else check the port and path", url, None)


def _refused(url: str, status: int, body: bytes) -> ConnectError:
    text = body.decode("utf-8", "replace").strip().splitlines()
    said = f"HTTP {status}" + (f": {text[0][:120]}" if text else "")
    if status == 400 and b"HTTPS server" in body:
        # Go's TLS listener answers a plaintext HTTP request this way.
        return TLSError(f"{url} requires TLS ({said}) - use wss://", url)
    if status in _NOT_WS or 200 <= status < 300:
        return NotWebSocketError(
            f"{url} is not a WebSocket endpoint ({said}) - check the port and path: a NATS "
            "server's `websocket { port: ... }`, or the path your proxy forwards", url, status)
    return WebSocketUpgradeError(
        f"the WebSocket upgrade to {url} was refused ({said}) - check the proxy's access rules "
        "(auth, allowed origins) and that it forwards WebSocket upgrades", url, status)


