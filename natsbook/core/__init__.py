"""The core layer: the protocol engine of a connection - transport (TCP, TLS, WebSocket,
auth), the single I/O thread and send queue, reconnecting, publishing and requests, the
subscription table and subscriptions - and the embedded nats-server.

Imports the wire and capture layers. The public ``natsbook.Connection`` (the client layer,
above jetstream and ops) owns an :class:`Engine`; jetstream and ops take any :class:`Link`
and reach what is not public through ``conn.internals`` (:mod:`._internals`).
"""

from __future__ import annotations

from ._batch import request_batch, request_many
from ._engine import DrainReport, Engine, Gap
from ._internals import ConnectionInternals, Link, SubscriptionInternals
from ._ioloop import DEFAULT_PENDING_SIZE, DEFAULT_RECONNECT_BUFFER
from ._server import LocalServer, local_server
from ._subscription import DEFAULT_PENDING_BYTES, DEFAULT_PENDING_MSGS, Subscription, SubStats
from ._transport import Credentials, TLSOptions, parse_url, redact_url, split_urls

__all__ = [
    "DEFAULT_PENDING_BYTES",
    "DEFAULT_PENDING_MSGS",
    "DEFAULT_PENDING_SIZE",
    "DEFAULT_RECONNECT_BUFFER",
    "ConnectionInternals",
    "Credentials",
    "DrainReport",
    "Engine",
    "Gap",
    "Link",
    "LocalServer",
    "SubStats",
    "Subscription",
    "SubscriptionInternals",
    "TLSOptions",
    "local_server",
    "parse_url",
    "redact_url",
    "request_batch",
    "request_many",
    "split_urls",
]
