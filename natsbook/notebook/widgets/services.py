"""ServicesPanel: the NATS services running on the system (the micro protocol) with their
endpoints and counters, and a request sent to a chosen endpoint."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from ...errors import NatsbookError
from ._base import (
    Panel,
    Updater,
    describe_payload,
    error_html,
    esc,
    html_table,
    parse_payload,
    run_in_thread,
    style_widget,
)
from .request import Requester, reply_html

if TYPE_CHECKING:
    from ...client import Connection

__all__ = ["ServicesPanel", "services_html"]

_COLS = ["service", "version", "id", "endpoint", "subject", "queue", "requests", "errors",
         "avg ms", "last error"]


def _ms(value: Any) -> str:
    return "" if pd.isna(value) else f"{value.total_seconds() * 1000:.3f}"


def _count(value: Any) -> Any:
    return "" if pd.isna(value) else int(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def services_html(frame: pd.DataFrame) -> str:
    """The frame of ``conn.services()`` as an HTML table (one row per endpoint)."""
    rows = [(r["name"], r["version"], str(r["id"])[:8], r["endpoint"] or "",
             r["subject"] or "", r["queue_group"] or "", _count(r["requests"]),
             _count(r["errors"]), _ms(r["average_processing_time"]), r["last_error"] or "")
            for r in _records(frame)]
    return html_table(_COLS, rows, css="nb-svc-table",
                      empty="no services answered - start one with conn.add_service(...)")


class ServicesPanel(Panel):
    """Refresh lists every service instance and endpoint; pick an endpoint, type a payload,
    Send makes a request to its subject and shows the reply (or the service's error)."""

    def __init__(self, conn: Connection, *, updater: Updater | None = None,
                 timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(conn, updater=updater, **kwargs)
        self.discovery_timeout = timeout
        self.requester = Requester(conn, history=20)
        self.frame: pd.DataFrame | None = None
        self._lock = threading.Lock()
        self._found: tuple[int, str, list[tuple[str, str]]] | None = None
        self._found_count = 0
        self._shown_found = 0
        self._shown_reply = 0
        self._refreshing = threading.Event()
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.table = W.HTML('<span class="nb-hint">press Refresh to discover services</span>')
        self.endpoint = W.Dropdown(description="Endpoint", options=[],
                                   layout=W.Layout(width="520px"))
        self.payload = W.Textarea(description="Payload", placeholder='{"n": 1}',
                                  layout=W.Layout(width="520px", height="60px"))
        self.format = W.ToggleButtons(options=["text", "json"], value="text",
                                      style={"button_width": "60px"})
        self.payload_info = W.HTML(describe_payload("", "text"))
        self.timeout = W.BoundedFloatText(value=2.0, min=0.01, max=600.0, step=0.5,
                                          description="Timeout s")
        self.send = W.Button(description="Send", button_style="primary", icon="exchange")
        self.reply = W.HTML('<span class="nb-hint">no request yet</span>')
        for w, cls in ((self.refresh_button, "nb-svc-refresh"), (self.table, "nb-svc-list"),
                       (self.endpoint, "nb-svc-endpoint"), (self.send, "nb-svc-send"),
                       (self.reply, "nb-svc-reply")):
            w.add_class(cls)
        self.add_class("nb-services")
        self.refresh_button.on_click(self.refresh)
        self.send.on_click(self._on_send)
        self.payload.observe(self._validate, names="value")
        self.format.observe(self._validate, names="value")
        self.children = [style_widget(), self.refresh_button, self.table,
                         W.HBox([self.endpoint, self.timeout]),
                         W.HBox([self.payload, W.VBox([self.format, self.payload_info])]),
                         self.send, self.reply]
        self._attach()

    def _validate(self, _change: object = None) -> None:
        self.payload_info.value = describe_payload(self.payload.value, self.format.value)

    def refresh(self, _button: object = None) -> bool:
        """Discover services off the kernel's thread; False if a discovery is running."""
        if self._refreshing.is_set():
            return False
        self._refreshing.set()
        self.refresh_button.disabled = True

        def work() -> None:
            options: list[tuple[str, str]] = []
            try:
                frame = self.conn.services(timeout=self.discovery_timeout)
                self.frame = frame
                text = services_html(frame)
                seen: set[str] = set()
                for r in _records(frame):
                    subject = str(r["subject"] or "")
                    if subject and subject not in seen:
                        seen.add(subject)
                        options.append((f"{r['name']} {r['version']} · {r['endpoint']} "
                                        f"({subject})", subject))
            except NatsbookError as exc:
                text = error_html(str(exc).removeprefix("natsbook: "))
            except Exception as exc:  # shown in the panel, never a traceback in the thread
                text = error_html(f"{type(exc).__name__}: {exc}")
            with self._lock:
                self._found_count += 1
                self._found = (self._found_count, text, options)
            self._refreshing.clear()

        run_in_thread(work, "natsbook-widget-services")
        return True

    def _on_send(self, _button: object = None) -> None:
        try:
            payload = parse_payload(self.payload.value, self.format.value)
            subject = self.endpoint.value
            if not subject:
                raise NatsbookError("pick an endpoint (press Refresh to discover services)")
            if any(c in subject for c in "*>"):
                raise NatsbookError(f"endpoint subject {subject!r} has wildcards - use the "
                                    "Request tab with a concrete subject")
        except NatsbookError as exc:
            self.reply.value = error_html(str(exc).removeprefix("natsbook: "))
            return
        if self.requester.start(subject, payload, None, float(self.timeout.value)):
            self.send.disabled = True
            self.reply.value = f'<span class="nb-hint">waiting for {esc(subject)}…</span>'

    def poll(self) -> None:
        up = self.updater
        with self._lock:
            found = self._found
        if found is not None and found[0] != self._shown_found:
            self._shown_found, text, options = found
            up.set(self.table, value=text)
            up.set(self.endpoint, options=options,
                   value=options[0][1] if options else None)
            up.set(self.refresh_button, disabled=False)
        count = self.requester.count
        if count != self._shown_reply and self.requester.history:
            self._shown_reply = count
            up.set(self.reply, value=reply_html(self.requester.history[-1]))
            up.set(self.send, disabled=self.requester.busy)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no discovery or request runs (tests, scripts); True if idle."""
        end = time.monotonic() + timeout
        while self._refreshing.is_set() or self.requester.busy:
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True
