"""PublishPanel: subject, payload (text or JSON, validated as you type), headers, reply-to,
Publish and Request buttons; errors show in the panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...errors import NatsbookError
from ._base import (
    Panel,
    Updater,
    describe_payload,
    error_html,
    esc,
    ok_html,
    parse_headers,
    parse_payload,
    style_widget,
)
from .request import Requester, reply_html

if TYPE_CHECKING:
    from ...client import Connection

__all__ = ["PublishPanel"]

SUBJECT_HINT = (
    '<div class="nb-hint">Publish to a concrete subject such as <code>foo.bar</code>. '
    "Subscribers may use patterns: <code>foo.*</code> matches one token "
    "(<code>foo.bar</code>), <code>foo.&gt;</code> matches the rest "
    "(<code>foo.bar.baz</code>).</div>"
)


class PublishPanel(Panel):
    """Publish (or request) one message at a time."""

    def __init__(self, conn: Connection, *, updater: Updater | None = None,
                 **kwargs: Any) -> None:
        super().__init__(conn, updater=updater, **kwargs)
        self.published = 0
        self.requester = Requester(conn, history=1)
        self._shown = 0
        self.subject = W.Text(description="Subject", placeholder="foo.bar")
        self.payload = W.Textarea(description="Payload", placeholder='hello  or  {"temp": 21.5}',
                                  layout=W.Layout(width="520px", height="90px"))
        self.format = W.ToggleButtons(options=["text", "json"], value="text",
                                      style={"button_width": "60px"},
                                      tooltips=["send the text as UTF-8", "check it is JSON"])
        self.payload_info = W.HTML(describe_payload("", "text"))
        self.headers = W.Textarea(description="Headers", placeholder="Key: value (one a line)",
                                  layout=W.Layout(width="520px", height="46px"))
        self.reply_to = W.Text(description="Reply-to", placeholder="optional reply subject")
        self.timeout = W.BoundedFloatText(value=2.0, min=0.01, max=600.0, step=0.5,
                                          description="Timeout s",
                                          layout=W.Layout(width="180px"))
        self.publish_button = W.Button(description="Publish", button_style="primary",
                                       icon="paper-plane")
        self.request_button = W.Button(description="Request", icon="exchange")
        self.status = W.HTML('<span class="nb-hint">nothing published yet</span>')
        for w, cls in ((self.subject, "nb-pub-subject"), (self.payload, "nb-pub-payload"),
                       (self.publish_button, "nb-pub-button"),
                       (self.request_button, "nb-pub-request"), (self.status, "nb-pub-status"),
                       (self.payload_info, "nb-pub-info")):
            w.add_class(cls)
        self.add_class("nb-publish")
        self.payload.observe(self._validate, names="value")
        self.format.observe(self._validate, names="value")
        self.publish_button.on_click(self._on_publish)
        self.request_button.on_click(self._on_request)
        self.children = [
            style_widget(),
            self.subject,
            W.HTML(SUBJECT_HINT),
            W.HBox([self.payload, W.VBox([self.format, self.payload_info])]),
            self.headers,
            self.reply_to,
            W.HBox([self.publish_button, self.request_button, self.timeout]),
            self.status,
        ]
        self._attach()

    def _validate(self, _change: object = None) -> None:
        self.payload_info.value = describe_payload(self.payload.value, self.format.value)

    def _inputs(self) -> tuple[str, bytes, dict[str, list[str]] | None]:
        subject = self.subject.value.strip()
        if not subject:
            raise NatsbookError("type a subject first, e.g. foo.bar")
        return (subject, parse_payload(self.payload.value, self.format.value),
                parse_headers(self.headers.value))

    def _on_publish(self, _button: object = None) -> None:
        try:
            subject, payload, headers = self._inputs()
            reply = self.reply_to.value.strip() or None
            self.conn.publish(subject, payload, reply=reply, headers=headers)
        except NatsbookError as exc:
            self.status.value = error_html(str(exc).removeprefix("natsbook: "))
            return
        self.published += 1
        self.status.value = ok_html(f"published #{self.published} to {subject} "
                                    f"({len(payload)} bytes)")

    def _on_request(self, _button: object = None) -> None:
        try:
            subject, payload, headers = self._inputs()
        except NatsbookError as exc:
            self.status.value = error_html(str(exc).removeprefix("natsbook: "))
            return
        if self.requester.start(subject, payload, headers, float(self.timeout.value)):
            self.request_button.disabled = True
            self.status.value = f'<span class="nb-hint">waiting for {esc(subject)}…</span>'

    def poll(self) -> None:
        count = self.requester.count
        if count == self._shown:
            return
        self._shown = count
        self.updater.set(self.status, value=reply_html(self.requester.history[-1]))
        self.updater.set(self.request_button, disabled=self.requester.busy)
