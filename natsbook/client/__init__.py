"""The client layer: the public ``Connection`` (every method stated in one class, delegating
to the core engine it owns and to the jetstream, ops and capture layers), ``connect()``,
``read_capture()`` and ``sql()`` over a capture on disk.

Sits above jetstream and ops, so that Connection calls them with ordinary imports.
"""

from __future__ import annotations

from ..core import (
    DrainReport,
    Gap,
    LocalServer,
    Subscription,
    SubStats,
    local_server,
    redact_url,
    split_urls,
)
from ._api import connect, read_capture, sql
from ._connection import Connection

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
