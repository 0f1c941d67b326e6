"""The dashboard: every panel in tabs, above them the connection's state."""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...errors import NatsbookError
from .._display import plural
from ._base import Updater, style_widget
from .explorer import SubjectExplorer
from .publish import PublishPanel
from .request import RequestPanel
from .services import ServicesPanel
from .subscribe import SubscribePanel
from .trace import TracePanel

if TYPE_CHECKING:
    from ...client import Connection

__all__ = ["Dashboard", "dashboard"]

#: Seconds between two RTT measurements (a PING/PONG from the timer thread).
RTT_EVERY = 2.0
_COLORS = {"connected": "#2e7d32", "reconnecting": "#ef6c00", "draining": "#ef6c00",
           "connecting": "#ef6c00", "closed": "#c62828"}


def status_html(conn: Connection, rtt_ms: float | None) -> str:
    """One line: state, server, RTT, traffic counters and the newest error."""
    state = conn.status
    color = _COLORS.get(state, "#555")
    server = conn.connected_url or (conn.servers[0] if conn.servers else "")
    st = conn.stats
    rtt = f"RTT {rtt_ms:.2f} ms" if rtt_ms is not None and state == "connected" else "RTT -"
    parts = [f'<b style="color:{color}" class="nb-state">● {html.escape(state)}</b>',
             f"<code>{html.escape(server)}</code>", rtt,
             f"in {plural(st['in_msgs'], 'msg')}", f"out {plural(st['out_msgs'], 'msg')}",
             f"subs {len(conn.subscriptions)}", f"reconnects {st['reconnects']}"]
    if conn.errors:
        _t, text = conn.errors[-1]
        parts.append(f'<span style="color:#b00020" title="{html.escape(text)}">last error: '
                     f"{html.escape(text[:80])}</span>")
    return " · ".join(parts)


class Dashboard(W.VBox):
    """Publish, Subscribe, Request, Explorer, Services and Trace tabs sharing one throttled
    updater."""

    def __init__(self, conn: Connection, *, interval: float = 0.1,
                 explorer_pattern: str = ">", explore: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn = conn
        self.updater = Updater(conn, interval)
        self.status = W.HTML(status_html(conn, None))
        self.status.add_class("nb-status")
        self.publish = PublishPanel(conn, updater=self.updater)
        self.subscribe = SubscribePanel(conn, updater=self.updater)
        self.request = RequestPanel(conn, updater=self.updater)
        # The explorer's wire-tap waits for its Start button (or explore=True): a wildcard
        # subscriber makes the server stop answering "no responders" on matching subjects.
        self.explorer = SubjectExplorer(conn, updater=self.updater, pattern=explorer_pattern,
                                        autostart=explore)
        self.services = ServicesPanel(conn, updater=self.updater)
        self.trace = TracePanel(conn, updater=self.updater)
        self.tabs = W.Tab(children=[self.publish, self.subscribe, self.request, self.explorer,
                                    self.services, self.trace],
                          titles=["Publish", "Subscribe", "Request", "Explorer", "Services",
                                  "Trace"])
        self.tabs.add_class("nb-tabs")
        self.add_class("nb-dashboard")
        self.children = [style_widget(), self.status, self.tabs]
        self._rtt_ms: float | None = None
        self._rtt_at = 0.0
        self.updater.add(self.poll)
        self.updater.start()

    def poll(self) -> None:
        conn = self.conn
        now = time.monotonic()
        if conn.is_connected and now - self._rtt_at >= RTT_EVERY:
            self._rtt_at = now
            try:
                self._rtt_ms = conn.rtt(timeout=1.0) * 1000
            except NatsbookError:
                self._rtt_ms = None
        self.updater.set(self.status, value=status_html(conn, self._rtt_ms))

    def close(self) -> None:
        """Stop the updater and the explorer's subscription; close every widget."""
        self.updater.stop()
        for panel in (self.publish, self.subscribe, self.request, self.explorer,
                      self.services, self.trace):
            panel.close()
        self.tabs.close()
        self.status.close()
        super().close()


def dashboard(conn: Connection, **kwargs: Any) -> Dashboard:
    """All panels in tabs plus the connection state, updated live at <= 10 Hz.

    Args:
        conn: a connection from :func:`natsbook.connect`.
        **kwargs: ``interval`` (seconds between updates, >= 0.1), ``explorer_pattern``
            (what the explorer's Start button watches, default ``>``), ``explore`` (start
            the explorer at once; default False: while a wildcard wire-tap runs, requests
            on the subjects it matches time out instead of failing with no responders).

    Returns:
        The dashboard widget; display it (it is the last expression of a cell, or
        ``IPython.display.display(d)``). ``d.close()`` stops its timer and subscriptions.
    """
    return Dashboard(conn, **kwargs)
