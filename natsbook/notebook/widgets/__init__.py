"""ipywidgets panels for NATS: publish, subscribe, request, a live subject explorer, services,
a message-trace view, and a dashboard with all of them in tabs.

>>> import natsbook
>>> from natsbook.notebook.widgets import dashboard
>>> conn = natsbook.connect()
>>> dashboard(conn)   # doctest: +SKIP

Every panel updates from one timer thread at <= 10 Hz (see ``_base.Updater``); background
threads only set traits.
"""

from __future__ import annotations

from ._base import Updater
from .dashboard import Dashboard, dashboard
from .explorer import SubjectExplorer
from .plot import LinePlot
from .publish import PublishPanel
from .request import RequestPanel
from .services import ServicesPanel
from .subscribe import SubscribePanel
from .trace import TracePanel
from .tree import SubjectTree

__all__ = [
    "Dashboard",
    "LinePlot",
    "PublishPanel",
    "RequestPanel",
    "ServicesPanel",
    "SubjectExplorer",
    "SubjectTree",
    "SubscribePanel",
    "TracePanel",
    "Updater",
    "dashboard",
]
