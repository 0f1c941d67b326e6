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

from . import jetstream as jetstream
from ._version import __version__
from .capture import protobuf, register_decoder
from .client import (
    Connection,
    DrainReport,
    LocalServer,
    Subscription,
    SubStats,
    connect,
    local_server,
    read_capture,
    sql,
)
from .errors import NatsbookError
from .ops import Monitor, Service, monitor
from .wire import Headers, Msg, check_publish, check_subscribe, matches

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
    "protobuf",
    "read_capture",
    "register_decoder",
    "sql",
    "stop_all",
    "unload_ipython_extension",
]


def dashboard(conn: Connection, **kwargs: object) -> object:
    """All panels (publish, subscribe, request, subject explorer, services) in tabs, plus the
    connection's state. See :func:`natsbook.notebook.widgets.dashboard`."""
    from .notebook.widgets import dashboard as _dashboard

    return _dashboard(conn, **kwargs)


def stop_all() -> dict[str, int]:
    """Stop every subject-explorer watch and every live view running in this kernel: a
    dashboard's or a standalone one, shown or with its output cleared (re-running a cell
    clears it, but the watch goes on). What they show stays; connections stay open.

    An explorer watching ``>`` is a listener on every subject, so requests to subjects
    nobody serves wait for their timeout instead of failing with "no responders" - for
    every client of the server - until it stops. ``%nats_close --explorers`` does the same
    for the explorers.

    Returns:
        How many were running: ``{"explorers": n, "live_views": m}``.
    """
    import sys

    # Nothing to stop unless the widgets were imported (and no import of ipywidgets here).
    explorer = sys.modules.get("natsbook.notebook.widgets.explorer")
    live = sys.modules.get("natsbook.notebook.widgets.live")
    return {"explorers": explorer.stop_explorers() if explorer is not None else 0,
            "live_views": live.stop_live_views() if live is not None else 0}


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext natsbook``: register the NATS magics."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext natsbook``: close the magics' connection and embedded server."""
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)

