"""TracePanel: trace one message (``conn.trace``, ADR-41) and draw its path - the servers it
crossed, left to right by hop, the route / gateway / leaf node links between them, and under
each server the subscribers it reached and the streams that stored it."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from ... import ops
from ...errors import NatsbookError
from ._base import (
    Panel,
    Updater,
    error_html,
    esc,
    html_table,
    parse_headers,
    parse_payload,
    run_in_thread,
    style_widget,
)

if TYPE_CHECKING:
    from ...client import Connection

__all__ = ["TracePanel", "trace_svg"]

_BOX_W, _BOX_H, _GAP_X, _ROW_H = 150, 30, 90, 26
_LINK_COLORS = {"route": "#1565c0", "gateway": "#6a1b9a", "leafnode": "#2e7d32"}


def _depth(hop: str) -> int:
    return hop.count(".") + 1 if hop else 0


def trace_svg(frame: pd.DataFrame) -> str:
    """The path of a ``conn.trace()`` frame as an SVG drawing (servers by hop, left to right;
    the subscribers and streams each server reached listed under it; errors in red)."""
    edges = ops.trace_edges(frame)
    servers: dict[str, str] = {}  # server -> hop (first seen)
    for hop, server in zip(frame["hop"], frame["server"], strict=True):
        if isinstance(server, str) and server not in servers:
            servers[server] = hop if isinstance(hop, str) else ""
    if not servers:
        return '<span class="nb-hint">no server reported this trace</span>'
    columns: dict[int, list[str]] = {}
    for server, hop in servers.items():
        columns.setdefault(_depth(hop), []).append(server)
    leaves: dict[str, list[tuple[str, str | None]]] = {s: [] for s in servers}
    links: list[tuple[str, str, str]] = []
    for e in edges.astype(object).where(edges.notna(), None).to_dict("records"):
        if e["target"] in servers:
            links.append((str(e["source"]), str(e["target"]), str(e["link"] or "")))
        elif e["source"] in leaves:
            leaves[str(e["source"])].append((str(e["target"]), e["error"]))
    pos: dict[str, tuple[int, int]] = {}
    height = 0
    for depth in sorted(columns):
        y = 10
        for server in columns[depth]:
            pos[server] = (10 + depth * (_BOX_W + _GAP_X), y)
            y += _BOX_H + max(1, len(leaves[server])) * _ROW_H + 20
        height = max(height, y)
    width = 10 + (max(columns) + 1) * (_BOX_W + _GAP_X)
    parts = [f'<svg class="nb-trace-svg" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" font-family="sans-serif" font-size="11">']
    for source, target, link in links:
        (x1, y1), (x2, y2) = pos[source], pos[target]
        color = _LINK_COLORS.get(link, "#555")
        mid_x, mid_y = (x1 + _BOX_W + x2) // 2 - 20, (y1 + y2) // 2 + _BOX_H // 2 - 4
        parts.append(f'<line x1="{x1 + _BOX_W}" y1="{y1 + _BOX_H // 2}" x2="{x2}" '
                     f'y2="{y2 + _BOX_H // 2}" stroke="{color}" stroke-width="2"/>'
                     f'<text x="{mid_x}" y="{mid_y}" fill="{color}">{esc(link)}</text>')
    for server, (x, y) in pos.items():
        first = not servers[server]
        parts.append(f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="4" '
                     f'fill="{"#e3f2fd" if first else "#f5f5f5"}" stroke="#455a64"/>'
                     f'<text x="{x + 6}" y="{y + 19}" font-weight="bold">'
                     f"<title>{esc(server)}</title>{esc(_fit(server, 19))}</text>")
        for i, (target, error) in enumerate(leaves[server]):
            ty = y + _BOX_H + 6 + i * _ROW_H
            color = "#c62828" if error else ("#6d4c41" if target.startswith("stream ")
                                             else "#2e7d32")
            label = f"{target}{' - ' + str(error) if error else ''}"
            parts.append(f'<line x1="{x + 10}" y1="{y + _BOX_H}" x2="{x + 10}" '
                         f'y2="{ty + 9}" stroke="#999"/>'
                         f'<text x="{x + 16}" y="{ty + 13}" fill="{color}">'
                         f"{esc(label[:40])}</text>")
        if not leaves[server]:
            parts.append(f'<text x="{x + 16}" y="{y + _BOX_H + 19}" fill="#999">'
                         "(no subscriber, no stream)</text>")
    parts.append("</svg>")
    return "".join(parts)


def _events_html(frame: pd.DataFrame) -> str:
    cols = ["hop", "server", "kind", "link", "account", "subject", "stream", "name", "error",
            "offset_ms"]
    shown = frame[cols].astype(object).where(frame[cols].notna(), "")
    rows = [[f"{v:.3f}" if isinstance(v, float) else v for v in r]
            for r in shown.itertuples(index=False)]
    return html_table(cols, rows, css="nb-trace-table", empty="no events")


def _fit(text: str, most: int) -> str:
    """`text` cut to `most` characters with an ellipsis (the full text is the box's title)."""
    return text if len(text) <= most else text[:most - 1] + "\u2026"


class TracePanel(Panel):
    """Subject, payload, headers and "deliver" in; Trace publishes one traced message and
    draws where it went (off the kernel's thread)."""

    def __init__(self, conn: Connection, *, updater: Updater | None = None,
                 **kwargs: Any) -> None:
        super().__init__(conn, updater=updater, **kwargs)
        self.subject = W.Text(description="Subject", placeholder="orders.new",
                              layout=W.Layout(width="420px"))
        self.payload = W.Text(description="Payload", layout=W.Layout(width="420px"))
        self.headers = W.Textarea(description="Headers", placeholder="Key: value",
                                  layout=W.Layout(width="420px", height="48px"))
        self.deliver = W.Checkbox(value=False, description="deliver (off: trace only)")
        self.timeout = W.BoundedFloatText(value=2.0, min=0.1, max=60.0, step=0.5,
                                          description="Timeout s")
        self.go = W.Button(description="Trace", button_style="primary", icon="random")
        self.drawing = W.HTML('<span class="nb-hint">enter a subject and press Trace</span>')
        self.events = W.HTML("")
        for w, cls in ((self.go, "nb-trace-go"), (self.drawing, "nb-trace-path"),
                       (self.events, "nb-trace-events")):
            w.add_class(cls)
        self.add_class("nb-trace")
        self.frame: pd.DataFrame | None = None
        self._lock = threading.Lock()
        self._result: tuple[int, str, str] | None = None
        self._count = 0
        self._shown = 0
        self._busy = threading.Event()
        self.go.on_click(self.trace)
        self.children = [style_widget(), W.HBox([self.subject, self.deliver]),
                         W.HBox([self.payload, self.timeout]), self.headers, self.go,
                         self.drawing, self.events]
        self._attach()

    def _done(self, drawing: str, events: str) -> None:
        with self._lock:
            self._count += 1
            self._result = (self._count, drawing, events)
        self._busy.clear()

    def trace(self, _button: object = None) -> bool:
        """Trace the message described by the inputs; False while one runs."""
        if self._busy.is_set():
            return False
        try:
            subject = self.subject.value.strip()
            if not subject:
                raise NatsbookError("enter a subject to trace")
            payload = parse_payload(self.payload.value, "text")
            headers = parse_headers(self.headers.value)
        except NatsbookError as exc:
            self.drawing.value = error_html(str(exc).removeprefix("natsbook: "))
            return False
        self._busy.set()
        self.go.disabled = True
        self.drawing.value = f'<span class="nb-hint">tracing {esc(subject)}…</span>'
        deliver, timeout = bool(self.deliver.value), float(self.timeout.value)

        def work() -> None:
            try:
                frame = self.conn.trace(subject, payload, headers, deliver=deliver,
                                        timeout=timeout)
                self.frame = frame
                note = ("" if frame.attrs.get("complete") else
                        '<div class="nb-error">incomplete: some servers did not report '
                        "within the timeout</div>")
                self._done(trace_svg(frame) + note, _events_html(frame))
            except NatsbookError as exc:
                self._done(error_html(str(exc).removeprefix("natsbook: ")), "")
            except Exception as exc:  # shown in the panel, never a traceback in the thread
                self._done(error_html(f"{type(exc).__name__}: {exc}"), "")

        run_in_thread(work, "natsbook-widget-trace")
        return True

    def poll(self) -> None:
        with self._lock:
            result = self._result
        if result is not None and result[0] != self._shown:
            self._shown, drawing, events = result
            self.updater.set(self.drawing, value=drawing)
            self.updater.set(self.events, value=events)
            self.updater.set(self.go, disabled=False)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no trace runs (tests, scripts); True if idle."""
        end = time.monotonic() + timeout
        while self._busy.is_set():
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True
