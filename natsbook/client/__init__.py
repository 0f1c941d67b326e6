"""The client layer: transport (TLS, auth), the single I/O thread (engine), reconnect, the
public Connection and Subscription, SQL and live views over captures, the embedded
nats-server, ``connect()``.

Imports the wire and capture layers; higher layers add methods to Connection through
:func:`natsbook.client._methods.provide`, never by being imported from here.
"""

from __future__ import annotations

from ._analysis import sql
from ._api import connect, read_capture
from ._connection import Connection, DrainReport, Gap
from ._server import LocalServer, local_server
from ._subscription import Subscription, SubStats
from ._transport import redact_url, split_urls

__all__ = [
    "Connection",
    "DrainReport",
    "Gap",
    "LocalServer",
    "SubStats",
    "Subscription",
    "connect",
    "local_server",
    "read_capture",
    "redact_url",
    "split_urls",
    "sql",
]
