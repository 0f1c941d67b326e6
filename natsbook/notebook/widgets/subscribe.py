"""SubscribePanel: subscribe/unsubscribe, the newest messages, counts and rates per capture,
and a button that puts a capture's DataFrame into a notebook variable.

It lists every capture on the connection: the ones made here and the ones made in code
(``conn.subscribe``, ``%nats_sub``); "To DataFrame" never overwrites a variable it did not
make itself, it picks the next free name (``df_2``) and says so."""

from __future__ import annotations

import keyword
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from ...errors import BadInputError, NatsbookError
from .._display import plural
from ._base import (
    Panel,
    RateMeter,
    Updater,
    error_html,
    fmt_age,
    fmt_rate,
    html_table,
    ok_html,
    preview,
    style_widget,
)

if TYPE_CHECKING:
    from ...client import Connection, Subscription

__all__ = ["SubscribePanel"]


class SubscribePanel(Panel):
    """Every capture on the connection, their counters and their newest messages."""

    def __init__(self, conn: Connection, *, updater: Updater | None = None, rows: int = 20,
                 namespace: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """
        Args:
            conn: the connection to subscribe on.
            updater: share a dashboard's updater (default: one of its own).
            rows: how many of the newest messages the table shows.
            namespace: where "to DataFrame" stores variables (default: the IPython user
                namespace when running in IPython, else ``panel.frames``).
        """
        super().__init__(conn, updater=updater, **kwargs)
        self.rows = rows
        self.subs: list[Subscription] = []
        self.frames: dict[str, pd.DataFrame] = {}
        self._option_sids: tuple[int, ...] = ()
        self._namespace = namespace
        self._rates: dict[int, RateMeter] = {}
        self._shown: tuple[object, ...] = ()
        self._dirty = True
        self.subject = W.Text(description="Subject", placeholder="foo.>  or  foo.*.temp")
        self.queue = W.Text(description="Queue", placeholder="optional queue group",
                            layout=W.Layout(width="260px"))
        self.subscribe_button = W.Button(description="Subscribe", button_style="primary",
                                         icon="plus")
        self.capture = W.Dropdown(description="Capture", options=[], value=None)
        self.unsubscribe_button = W.Button(description="Unsubscribe", icon="stop")
        self.var_name = W.Text(value="df", description="Variable",
                               layout=W.Layout(width="200px"))
        self.frame_button = W.Button(description="To DataFrame", icon="table",
                                     tooltip="put the selected capture into the variable")
        self.status = W.HTML('<span class="nb-hint">subscribe here, or pick a capture made in '
                             "code</span>")
        self.stats = W.HTML(self._stats_html())
        self.table = W.HTML(self._messages_html(None))
        for w, cls in ((self.subject, "nb-sub-subject"), (self.queue, "nb-sub-queue"),
                       (self.subscribe_button, "nb-sub-button"),
                       (self.unsubscribe_button, "nb-unsub-button"),
                       (self.capture, "nb-sub-capture"), (self.frame_button, "nb-sub-frame"),
                       (self.status, "nb-sub-status"), (self.stats, "nb-sub-stats"),
                       (self.table, "nb-sub-table")):
            w.add_class(cls)
        self.add_class("nb-subscribe")
        self.subscribe_button.on_click(self._on_subscribe)
        self.unsubscribe_button.on_click(self._on_unsubscribe)
        self.frame_button.on_click(self._on_frame)
        self.capture.observe(self._on_select, names="value")
        self.children = [
            style_widget(),
            W.HBox([self.subject, self.queue, self.subscribe_button]),
            W.HBox([self.capture, self.unsubscribe_button, self.var_name, self.frame_button]),
            self.status,
            self.stats,
            W.HTML("<b>Newest messages</b>"),
            self.table,
        ]
        self._attach()

    # -- actions (kernel thread) -----------------------------------------------------------
    def subscribe(self, subject: str, queue: str | None = None) -> Subscription:
        """Subscribe (capturing) and show it; what the Subscribe button does."""
        sub = self.conn.subscribe(subject, queue=queue or None)
        self.subs.append(sub)
        self._rates[sub.sid] = RateMeter(sub.received)
        subs = self.captures()
        self._option_sids = tuple(s.sid for s in subs)
        self.capture.options = [(self._label(s), s.sid) for s in subs]
        self.capture.value = sub.sid
        self._dirty = True
        return sub

    def _on_subscribe(self, _button: object = None) -> None:
        subject = self.subject.value.strip()
        queue = self.queue.value.strip() or None
        try:
            if not subject:
                raise BadInputError("type a subject or pattern first, e.g. foo.>")
            self.subscribe(subject, queue)
        except NatsbookError as exc:
            self.status.value = error_html(str(exc).removeprefix("natsbook: "))
            return
        q = f" (queue {queue})" if queue else ""
        self.status.value = ok_html(f"subscribed to {subject}{q}")

    def captures(self) -> list[Subscription]:
        """The panel's own captures (kept after they stop) and every active capture made in
        code on the same connection (the explorer's watch keeps no messages: not listed)."""
        out = list(self.subs)
        seen = {id(s) for s in out}
        for s in self.conn.subscriptions:
            if s.store is not None and id(s) not in seen:
                out.append(s)
                seen.add(id(s))
        return out

    def selected(self) -> Subscription | None:
        for s in self.captures():
            if s.sid == self.capture.value:
                return s
        return None

    def _on_unsubscribe(self, _button: object = None) -> None:
        sub = self.selected()
        if sub is None:
            self.status.value = error_html("no capture selected")
            return
        try:
            sub.unsubscribe()
        except NatsbookError as exc:
            self.status.value = error_html(str(exc).removeprefix("natsbook: "))
            return
        self.status.value = ok_html(f"unsubscribed from {sub.subject} "
                                    f"({plural(sub.received, 'message')} kept)")
        self._dirty = True

    def _on_frame(self, _button: object = None) -> None:
        name = self.var_name.value.strip()
        sub = self.selected()
        if not name.isidentifier() or keyword.iskeyword(name):
            self.status.value = error_html(f"{name!r} is not a valid variable name")
            return
        if sub is None:
            self.status.value = error_html("no capture selected - subscribe first")
            return
        try:
            frame = sub.to_pandas()
        except NatsbookError as exc:
            self.status.value = error_html(str(exc).removeprefix("natsbook: "))
            return
        ns = self._user_ns()
        wanted = name
        name = self._free_name(name, ns)
        self.frames[name] = frame
        if ns is not None:
            ns[name] = frame
        note = f" ({wanted} already exists: kept)" if name != wanted else ""
        self.status.value = ok_html(f"{name} = capture of {sub.subject}: "
                                    f"{plural(len(frame), 'row')} x "
                                    f"{plural(len(frame.columns), 'column')}{note}")

    def _free_name(self, name: str, ns: dict[str, Any] | None) -> str:
        """`name` unless it holds something this panel did not put there; then name_2, ..."""
        def taken(n: str) -> bool:
            if ns is not None and n in ns:
                return ns[n] is not self.frames.get(n)
            return False

        if not taken(name):
            return name
        i = 2
        while taken(f"{name}_{i}"):
            i += 1
        return f"{name}_{i}"

    def _user_ns(self) -> dict[str, Any] | None:
        if self._namespace is not None:
            return self._namespace
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython is a dependency
            return None
        ip = get_ipython()
        return ip.user_ns if ip is not None else None

    def _on_select(self, _change: object = None) -> None:
        self._dirty = True

    # -- rendering (timer thread) ----------------------------------------------------------
    @staticmethod
    def _label(sub: Subscription) -> str:
        q = f" [{sub.queue}]" if sub.queue else ""
        return f"{sub.subject}{q} #{sub.sid}"

    def _stats_html(self) -> str:
        now = time.monotonic()
        rows = []
        for s in self.captures():
            st = s.stats
            meter = self._rates.get(s.sid)
            if meter is None:
                meter = self._rates[s.sid] = RateMeter(st.received, now=now)
            rate = meter.update(st.received, now)
            rows.append((s.subject, s.queue or "", "active" if s.active else "closed",
                         st.received, st.stored, st.evicted, st.dropped,
                         fmt_rate(rate if s.active else 0.0)))
        return html_table(["subject", "queue", "state", "received", "stored", "evicted",
                           "dropped", "rate"], rows, css="nb-sub-stats-table",
                          empty="no captures")

    def _messages_html(self, sub: Subscription | None) -> str:
        rows: list[tuple[object, ...]] = []
        if sub is not None and sub.store is not None:
            if sub.store.stats.spilled:
                last = sub.last_msg  # reading spilled Parquet parts at 10 Hz would be too dear
                msgs = [last] if last is not None else []
            else:
                msgs = sub.messages(last=self.rows)
            rows = [(m.subject, fmt_age(m.time), len(m.data), preview(m.data))
                    for m in reversed(msgs)]
        return html_table(["subject", "time", "size", "payload"], rows, css="nb-sub-msgs",
                          empty="no messages yet")

    def poll(self) -> None:
        up = self.updater
        up.set(self.stats, value=self._stats_html())
        subs = self.captures()
        sids = tuple(s.sid for s in subs)
        if sids != self._option_sids:  # a capture made in code: offer it in the dropdown
            self._option_sids = sids
            value = self.capture.value if self.capture.value in sids else (
                sids[-1] if sids else None)
            up.set(self.capture, options=[(self._label(s), s.sid) for s in subs], value=value)
        sub = self.selected()
        key = (id(sub), sub.received if sub is not None else -1)
        if key != self._shown or self._dirty:
            self._dirty = False
            self._shown = key
            up.set(self.table, value=self._messages_html(sub))
