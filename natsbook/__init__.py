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

import importlib as _importlib
import importlib.abc as _importlib_abc
import importlib.util as _importlib_util
import sys as _sys
from collections.abc import Sequence as _Sequence
from importlib.machinery import ModuleSpec as _ModuleSpec
from types import ModuleType as _ModuleType

from . import jetstream as jetstream
from ._version import __version__
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
from .client._methods import provide as _provide
from .errors import NatsbookError
from .notebook import _display
from .ops import Monitor, Service, monitor
from .wire import Headers, Msg, check_publish, check_subscribe, matches

# Module paths from before the layer folders keep working: ``import natsbook.monitor``,
# ``natsbook.widgets``, ``natsbook.magics``, ``natsbook.simulator``, ``natsbook.cli``,
# ``natsbook.kv`` give the module that now lives in its layer's folder (the same object, not a
# copy). ``natsbook.monitor`` the attribute stays the function.
_MOVED = {
    "natsbook.widgets": "natsbook.notebook.widgets",
    "natsbook.magics": "natsbook.notebook.magics",
    "natsbook.simulator": "natsbook.lab.simulator",
    "natsbook.cli": "natsbook.lab.cli",
    "natsbook.kv": "natsbook.jetstream._kv",
}
_sys.modules.setdefault("natsbook.monitor", _sys.modules["natsbook.ops._monitor"])


class _MovedModules(_importlib_abc.MetaPathFinder, _importlib_abc.Loader):
    _specs: dict[str, _ModuleSpec | None] = {}

    @staticmethod
    def _target(fullname: str) -> str | None:
        for old, new in _MOVED.items():
            if fullname == old or fullname.startswith(old + "."):
                return new + fullname[len(old):]
        return None

    def find_spec(self, fullname: str, path: _Sequence[str] | None,
                  target: _ModuleType | None = None) -> _ModuleSpec | None:
        if self._target(fullname) is None:
            return None
        return _importlib_util.spec_from_loader(fullname, self)

    def create_module(self, spec: _ModuleSpec) -> _ModuleType:
        name = self._target(spec.name)
        assert name is not None
        module = _importlib.import_module(name)
        self._specs[name] = module.__spec__
        return module

    def exec_module(self, module: _ModuleType) -> None:
        # The import system stamped the alias's spec on the module; give it back its own.
        module.__spec__ = self._specs.get(module.__name__, module.__spec__)


if not any(isinstance(f, _MovedModules) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _MovedModules())

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


def _live_view(target: object, fn: object, **kwargs: object) -> object:
    # conn.live() / sub.live(): the client layer calls the widget through its method table.
    from .notebook.widgets.live import LiveView

    return LiveView(target, fn, **kwargs)  # type: ignore[arg-type]


_provide(live_view=_live_view)


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
