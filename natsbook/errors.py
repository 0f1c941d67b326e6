"""natsbook's errors: one tree, each message says what happened and what to do.

::

    NatsbookError
    ├── BadInputError (also ValueError)
    │   ├── BadSubjectError          .subject
    │   ├── BadHeaderError           .key
    │   └── MaxPayloadError          .size .limit
    ├── ConnectError                 .url           first connect failed
    │   ├── AuthError                               credentials refused
    │   ├── TLSError                                TLS mismatch / bad certificate
    │   └── WebSocketUpgradeError    .status        the HTTP upgrade to WebSocket was refused
    │       └── NotWebSocketError                   no WebSocket there (HTTP 400/404, not HTTP)
    ├── ConnectionClosedError                       used after close()
    ├── NotConnectedError                           reconnecting and the buffer is full
    ├── ProtocolError                               the server sent bytes we cannot parse
    │   └── WebSocketFrameError                     a text (non-binary) or malformed frame
    ├── WebSocketClosedError (also ConnectionResetError)  .url .code .reason
    │                                               the server sent a WebSocket close frame
    ├── ServerError                  .text          a -ERR from the server
    │   └── PermissionError_                        publish/subscribe permission violation
    ├── TimeoutError_ (also TimeoutError)
    │   ├── RequestTimeout           .subject .timeout
    │   └── FlushTimeout             .timeout
    ├── NoRespondersError            .subject
    ├── ServiceError                 .code .description   an error reply from a serve() handler
    ├── ServerStartError                            the embedded nats-server did not start
    ├── MonitorError                 .url .status   the HTTP monitoring endpoint failed
    ├── QueryError                   .query .detail  DuckDB refused or failed a SQL query
    ├── DatasetError                 .url           a recorded dataset cannot be written/read
    └── JetStreamError               .code .err_code .description
        ├── NotFoundError            .name .suggestion
        └── DigestMismatchError      .expected .actual  an object's chunks fail its digest
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "AuthError",
    "BadHeaderError",
    "BadInputError",
    "BadSubjectError",
    "ConnectError",
    "ConnectionClosedError",
    "DatasetError",
    "DigestMismatchError",
    "FlushTimeout",
    "JetStreamError",
    "MaxPayloadError",
    "MonitorError",
    "NatsbookError",
    "NoRespondersError",
    "NotConnectedError",
    "NotFoundError",
    "NotWebSocketError",
    "PermissionViolation",
    "ProtocolError",
    "QueryError",
    "RequestTimeout",
    "ServerError",
    "ServerStartError",
    "ServiceError",
    "TLSError",
    "Timeout",
    "WebSocketClosedError",
    "WebSocketFrameError",
    "WebSocketUpgradeError",
]


class NatsbookError(Exception):
    """Base of every error natsbook raises."""

    def __init__(self, message: str) -> None:
        if not message.startswith("natsbook:"):
            message = f"natsbook: {message}"
        super().__init__(message)


class BadInputError(NatsbookError, ValueError):
    """An argument is malformed; nothing was sent and the connection is unchanged."""


class BadSubjectError(BadInputError):
    """A subject or queue name is not valid for the operation."""

    def __init__(self, subject: str, problem: str, hint: str) -> None:
        self.subject = subject
        self.problem = problem
        super().__init__(f"bad subject {subject!r}: {problem} - {hint}")


class BadHeaderError(BadInputError):
    """A header key or value cannot be sent."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"bad header {key!r}: {problem}")


class MaxPayloadError(BadInputError):
    """Payload plus headers exceed the server's max_payload."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"message of {size} bytes (payload + headers) exceeds the server's max_payload "
            f"of {limit} bytes - split the payload or raise max_payload in the server config"
        )


class ConnectError(NatsbookError):
    """The first connection to any server in the pool failed."""

    def __init__(self, message: str, url: str = "") -> None:
        self.url = url
        super().__init__(message)


class AuthError(ConnectError):
    """The server refused the credentials."""


class TLSError(ConnectError):
    """TLS could not be set up as asked (mismatch, bad certificate, wrong CA)."""


class WebSocketUpgradeError(ConnectError):
    """The HTTP upgrade of a ws:// or wss:// URL was refused (e.g. 403 from a proxy)."""

    def __init__(self, message: str, url: str = "", status: int | None = None) -> None:
        self.status = status
        super().__init__(message, url)


class NotWebSocketError(WebSocketUpgradeError):
    """Nothing speaks WebSocket at that URL: HTTP 400/404/405/426, or an answer not in HTTP."""


class ConnectionClosedError(NatsbookError):
    """The connection was closed by the user; make a new one with natsbook.connect()."""


class NotConnectedError(NatsbookError):
    """The connection is down and the reconnect buffer cannot take more."""


class ProtocolError(NatsbookError):
    """The server sent something that is not the NATS protocol."""

    #: Set by the parser: (messages by sid, control frames) parsed before the bad bytes.
    partial: tuple[Any, Any] | None = None


class WebSocketFrameError(ProtocolError):
    """A WebSocket frame NATS cannot carry: a text frame, or one that does not parse."""


class WebSocketClosedError(NatsbookError, ConnectionResetError):
    """The server (or a proxy) closed the WebSocket with a close frame.

    Raised inside the I/O thread, where it counts as a lost connection (reconnect, gap recorded
    with this message); at connect() it is reported inside a ConnectError.
    """

    def __init__(self, url: str, code: int, reason: str) -> None:
        self.url = url
        self.code = code
        self.reason = reason
        said = f"{code}{': ' + reason if reason else ''}"
        NatsbookError.__init__(self, f"{url} closed the WebSocket ({said}) - natsbook "
                               "reconnects if allowed; if it keeps happening check the server "
                               "or proxy log")


class ServerError(NatsbookError):
    """A -ERR line from the server."""

    def __init__(self, text: str, message: str | None = None) -> None:
        self.text = text
        super().__init__(message or f"server error: {text!r}")


class PermissionViolation(ServerError):
    """The server refused a publish or subscribe on permissions grounds."""


class Timeout(NatsbookError, builtins.TimeoutError):
    """A blocking call ran out of time."""


class RequestTimeout(Timeout):
    """No reply arrived in time."""

    def __init__(self, subject: str, timeout: float) -> None:
        self.subject = subject
        self.timeout = timeout
        super().__init__(
            f"no reply on {subject!r} within {timeout:g}s - the server saw a subscriber, so "
            "the responder may be slow or busy (raise timeout=), or the only subscriber is "
            "a wire-tap that never replies: a subscription to '>' or another matching "
            "wildcard (e.g. a dashboard's explorer, a %nats_sub capture) makes the server "
            "believe someone is listening, so it cannot answer \"no responders\""
        )


class FlushTimeout(Timeout):
    """The server did not answer a PING in time."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            f"server did not confirm within {timeout:g}s (flush) - it may be overloaded or "
            "the connection is reconnecting; check conn.status"
        )


class NoRespondersError(NatsbookError):
    """A request was sent to a subject nobody listens on."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(
            f"no responders on {subject!r} - start one (conn.serve(...)) or check the subject"
        )


class ServiceError(NatsbookError):
    """A responder answered with an error (Nats-Service-Error header)."""

    def __init__(self, subject: str, code: int, description: str) -> None:
        self.subject = subject
        self.code = code
        self.description = description
        super().__init__(f"service on {subject!r} answered error {code}: {description}")


class ServerStartError(NatsbookError):
    """The embedded nats-server did not start."""


class MonitorError(NatsbookError):
    """The monitoring endpoint could not be reached or answered an error."""

    def __init__(self, message: str, url: str = "", status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class QueryError(NatsbookError):
    """A SQL query over captures failed (``conn.sql``, ``sub.sql``, ``natsbook.sql``, live
    views); ``detail`` is DuckDB's own message."""

    def __init__(self, query: str, detail: str) -> None:
        self.query = query
        self.detail = detail
        super().__init__(f"SQL query failed: {detail} - the tables are `messages` (columns "
                         "time, sub, subject, reply, headers, size, data, payload) and the "
                         "capture names given with subscribe(..., name=...)")


class DatasetError(NatsbookError):
    """A Parquet dataset written by ``natsbook record`` cannot be written (the recorder stops
    and acks nothing it did not write) or read."""

    def __init__(self, message: str, url: str = "") -> None:
        self.url = url
        super().__init__(message)


class JetStreamError(NatsbookError):
    """The JetStream API answered with an error."""

    def __init__(self, description: str, code: int = 0, err_code: int = 0) -> None:
        self.description = description
        self.code = code
        self.err_code = err_code
        super().__init__(description)


class NotFoundError(JetStreamError):
    """A stream, consumer, bucket or key does not exist."""

    def __init__(self, kind: str, name: str, suggestion: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.suggestion = suggestion
        hint = f" - did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"{kind} {name!r} not found{hint}", code=404)


class DigestMismatchError(JetStreamError):
    """An object store object's chunks do not hash to the digest its meta records."""

    def __init__(self, message: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message)
