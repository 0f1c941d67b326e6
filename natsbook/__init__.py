"""natsbook: NATS in Jupyter.

A background-thread NATS client that speaks the protocol itself and captures what it receives
into a columnar, bounded store you can turn into a pandas DataFrame at any moment.

>>> import natsbook
>>> srv = natsbook.local_server()              # embedded nats-server on free loopback ports
>>> conn = natsbook.connect(srv.url)
>>> sub = conn.subscribe("telemetry.>")
>>> conn.publish("telemetry.site1.dev1", {"temp": 21.5})
>>> conn.flush()
>>> sub.to_pandas()
>>> sub.sql("SELECT subject, avg((data::JSON ->> 'temp')::DOUBLE) FROM messages GROUP BY 1")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .notebook import _display
from .client._analysis import sql
from .client._api import connect, read_capture
from .client._connection import Connection, DrainReport
from .wire._msg import Headers, Msg
from .client._server import LocalServer, local_server
from .ops._services import Service
from .wire._subjects import check_publish, check_subscribe, matches
from .client._subscription import Subscription, SubStats
from .errors import NatsbookError
from .ops._monitor import Monitor, monitor

__all__ = [
    "Connection",
    "DrainReport",
    "Headers",
    "LocalServer",
    "Monitor",
    "Msg",
    "NatsbookError",
    "Service",
    "SubStats",
    "Subscription",
    "__version__",
    "check_publish",
    "check_subscribe",
    "connect",
    "dashboard",
    "load_ipython_extension",
    "local_server",
    "matches",
    "monitor",
    "read_capture",
    "sql",
    "unload_ipython_extension",
]


def dashboard(conn: Connection, **kwargs: object) -> object:
    """All panels (publish, subscribe, request, subject explorer, services) in tabs, plus the
    connection's state. See :func:`natsbook.notebook.widgets.dashboard`."""
    from .notebook.widgets import dashboard as _dashboard

    return _dashboard(conn, **kwargs)


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext natsbook``: register the NATS magics."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext natsbook``: close the magics' connection and embedded server."""
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)


# Capture frames and one-row reports display readably in a notebook (display only).
_display.install()
