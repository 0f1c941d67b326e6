"""RequestPanel: send a request, show the reply, its round-trip time and a history table."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...errors import NatsbookError
from ._base import (
    Panel,
    Updater,
    describe_payload,
    error_html,
    esc,
    fmt_age,
    html_table,
    parse_headers,
    parse_payload,
    preview,
    run_in_thread,
    style_widget,
)

if TYPE_CHECKING:
    from ...client import Connection
    from ...wire import Msg

__all__ = ["RequestPanel", "RequestResult", "Requester"]


@dataclass(slots=True)
class RequestResult:
    """One finished request, as the panels show it."""

    time: float
    subject: str
    rtt_ms: float
    reply: Msg | None
    error: str

    @property
    def ok(self) -> bool:
        return not self.error


class Requester:
    """Runs requests off the kernel's thread, one at a time, and keeps their results."""

    def __init__(self, conn: Connection, history: int = 50) -> None:
        self.conn = conn
        self.history: deque[RequestResult] = deque(maxlen=history)
        self.count = 0  # bumped when a result lands; the poll compares it
        self._busy = threading.Event()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def start(self, subject: str, payload: bytes, headers: dict[str, list[str]] | None,
              timeout: float) -> bool:
        """Start a request in a worker thread; False if one is still running."""
        if self._busy.is_set():
            return False
        self._busy.set()

        def work() -> None:
            t0 = time.perf_counter()
            reply: Msg | None = None
            error = ""
            try:
                reply = self.conn.request(subject, payload, timeout=timeout, headers=headers)
            except NatsbookError as exc:
                error = str(exc).removeprefix("natsbook: ")
            except Exception as exc:  # shown in the panel, never a traceback in the thread
                error = f"{type(exc).__name__}: {exc}"
            rtt = (time.perf_counter() - t0) * 1000
            self.history.append(RequestResult(time.time(), subject, rtt, reply, error))
            self._busy.clear()
            self.count += 1

        run_in_thread(work, "natsbook-widget-request")
        return True


def reply_html(res: RequestResult) -> str:
    """The reply (or the error) of one request as HTML."""
    if not res.ok:
        return error_html(f"{res.subject}: {res.error} ({res.rtt_ms:.1f} ms)")
    msg = res.reply
    assert msg is not None
    try:
        body = msg.data.decode("utf-8")
    except UnicodeDecodeError:
        body = preview(msg.data, 400)
    hdrs = ""
    if msg.headers:
        hdrs = "<br>".join(f"{esc(k)}: {esc(v)}" for k, v in msg.headers.items_all())
        hdrs = f'<div class="nb-hint">{hdrs}</div>'
    return (f'<div class="nb-reply"><b>reply</b> from <code>{esc(res.subject)}</code> in '
            f'<b class="nb-rtt">{res.rtt_ms:.2f} ms</b>, {len(msg.data)} bytes{hdrs}'
            f'<pre class="nb-reply-body" style="margin:4px 0;white-space:pre-wrap">'
            f"{esc(body)}</pre></div>")


class RequestPanel(Panel):
    """Request with a timeout; shows the reply, its round-trip time and the history."""

    def __init__(self, conn: Connection, *, updater: Updater | None = None,
                 history: int = 20, **kwargs: Any) -> None:
        super().__init__(conn, updater=updater, **kwargs)
        self.requester = Requester(conn, history)
        self._shown = -1
        self.subject = W.Text(description="Subject", placeholder="service.echo")
        self.payload = W.Textarea(description="Payload", placeholder='{"n": 1}',
                                  layout=W.Layout(width="520px", height="70px"))
        self.format = W.ToggleButtons(options=["text", "json"], value="text",
                                      style={"button_width": "60px"})
        self.payload_info = W.HTML(describe_payload("", "text"))
        self.headers = W.Textarea(description="Headers", placeholder="Key: value (one a line)",
                                  layout=W.Layout(width="520px", height="46px"))
        self.timeout = W.BoundedFloatText(value=2.0, min=0.01, max=600.0, step=0.5,
                                          description="Timeout s")
        self.button = W.Button(description="Request", button_style="primary", icon="exchange")
        self.reply = W.HTML('<span class="nb-hint">no request yet</span>')
        self.table = W.HTML(self._table_html())
        for w, cls in ((self.subject, "nb-req-subject"), (self.payload, "nb-req-payload"),
                       (self.button, "nb-req-button"), (self.reply, "nb-req-reply"),
                       (self.table, "nb-req-history")):
            w.add_class(cls)
        self.add_class("nb-request")
        self.payload.observe(self._validate, names="value")
        self.format.observe(self._validate, names="value")
        self.button.on_click(self._on_request)
        self.children = [
            style_widget(),
            W.HBox([self.subject, self.timeout]),
            W.HBox([self.payload, W.VBox([self.format, self.payload_info])]),
            self.headers,
            self.button,
            self.reply,
            W.HTML("<b>History</b>"),
            self.table,
        ]
        self._attach()

    def _validate(self, _change: object = None) -> None:
        self.payload_info.value = describe_payload(self.payload.value, self.format.value)

    def _on_request(self, _button: object = None) -> None:
        try:
            payload = parse_payload(self.payload.value, self.format.value)
            headers = parse_headers(self.headers.value)
            subject = self.subject.value.strip()
            if not subject:
                raise NatsbookError("type a subject to send the request to, e.g. service.echo")
        except NatsbookError as exc:
            self.reply.value = error_html(str(exc).removeprefix("natsbook: "))
            return
        if self.requester.start(subject, payload, headers, float(self.timeout.value)):
            self.button.disabled = True
            self.reply.value = f'<span class="nb-hint">waiting for {esc(subject)}…</span>'

    def _table_html(self) -> str:
        rows = [(fmt_age(r.time), r.subject, "ok" if r.ok else "error", f"{r.rtt_ms:.2f}",
                 preview(r.reply.data, 80) if r.reply is not None else r.error)
                for r in reversed(self.requester.history)]
        return html_table(["time", "subject", "status", "rtt ms", "reply"], rows,
                          css="nb-req-table", empty="no requests yet")

    def poll(self) -> None:
        count = self.requester.count
        if count == self._shown:
            return
        self._shown = count
        up = self.updater
        if self.requester.history:
            up.set(self.reply, value=reply_html(self.requester.history[-1]))
        up.set(self.table, value=self._table_html())
        up.set(self.button, disabled=self.requester.busy)
