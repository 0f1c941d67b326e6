"""SubjectExplorer: every subject seen so far as a tree with counts, rates and last values;
the selected subject's recent messages, the diff of its last two payloads and a live plot of a
numeric JSON field (in the spirit of MQTT Explorer).

The explorer subscribes on its own (no capture) with a batch callback that only updates plain
dicts on the subscription's dispatcher thread; the dashboard's timer turns them into trait
values at <= 10 Hz. It starts only when asked (``autostart=True`` or its Start button), on the
pattern the user chose: a wildcard wire-tap is a subscriber like any other, so while it runs the
server delivers requests on matching subjects to it and no longer answers "no responders" - to
any client of that server. The panel says so in a warning box while it watches, and every
watch in the process is listed here so that :func:`stop_explorers` (``natsbook.stop_all()``,
``%nats_close --explorers``) ends them even after their output was cleared.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from ...errors import NatsbookError
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
from ._subjects import SubjectStats, default_field, diff_html, numeric_fields
from .plot import LinePlot
from .tree import Node, SubjectTree, build_tree, visible_rows

if TYPE_CHECKING:
    from ...client import Connection, Subscription

__all__ = ["SubjectExplorer", "SubjectStats", "default_field", "diff_html", "numeric_fields",
           "stop_explorers", "watching_explorers"]

#: Nodes opened automatically while the tree is smaller than this (a flood stays collapsed).
AUTO_OPEN_NODES = 200
#: Rows of the selected subject's message list (below the tree and the plot).
MESSAGE_ROWS = 8
#: Every explorer that watches now (strong references: a watch whose output was cleared is
#: still reachable, to be stopped).
_WATCHING: set[SubjectExplorer] = set()
_WATCHING_LOCK = threading.Lock()


def watching_explorers() -> list[SubjectExplorer]:
    """The explorers of this process that watch a pattern now."""
    with _WATCHING_LOCK:
        return [e for e in _WATCHING if e.sub is not None and e.sub.active]


def stop_explorers() -> int:
    """Stop every explorer watch in this process (a dashboard's or a standalone one, shown or
    with its output cleared); what they saw stays. Returns how many were watching."""
    with _WATCHING_LOCK:
        explorers = list(_WATCHING)
    stopped = 0
    for e in explorers:
        if e.sub is not None and e.sub.active:
            stopped += 1
        e.stop()
    return stopped


def warning_html(pattern: str) -> str:
    """The box shown while an explorer watches `pattern`: what the watch does to requests."""
    p = html.escape(pattern)
    return ('<div class="nb-exp-warning" style="background:#fff4e5;border-left:4px solid '
            '#ef6c00;padding:4px 8px;margin:2px 0 6px;font-size:12px;line-height:1.45">'
            f"<b>While this watches <code>{p}</code>, the server counts it as a listener on "
            "every matching subject:</b> a request to a matching subject that nobody serves, "
            "from any program using this server, waits for its timeout instead of failing at "
            "once with &quot;no responders&quot;. Press Stop when you are done; "
            "<code>natsbook.stop_all()</code> or <code>%nats_close --explorers</code> stops "
            "every explorer of this kernel, also one whose output was cleared.</div>")


class SubjectExplorer(Panel):
    """A live tree of the subjects seen on `pattern` (default: everything)."""

    def __init__(self, conn: Connection, *, updater: Updater | None = None,
                 pattern: str = ">", autostart: bool = False, max_subjects: int = 5000,
                 points: int = 300, **kwargs: Any) -> None:
        """
        Args:
            conn: the connection to watch on.
            updater: share a dashboard's updater (default: one of its own).
            pattern: subject pattern to watch (what the Start button uses).
            autostart: start watching at once (default: only when the user presses Start:
                while it watches, requests on matching subjects no longer get "no
                responders" from the server).
            max_subjects: subjects tracked individually (the rest only counted).
            points: points kept for the plot.
        """
        super().__init__(conn, updater=updater, **kwargs)
        self.stats = SubjectStats(max_subjects)
        self.sub: Subscription | None = None
        self._seen = -1
        self._dirty = True
        self._rates: dict[str, RateMeter] = {}
        self._known_nodes: set[str] = set()
        self._series: deque[tuple[float, float]] = deque(maxlen=points)
        self._series_key: tuple[str, str] = ("", "")
        self._series_seq = 0
        self.pattern = W.Text(value=pattern, description="Watch", placeholder=">",
                              layout=W.Layout(width="300px"))
        self.watch_button = W.Button(description="Start", icon="eye")
        self.clear_button = W.Button(description="Clear", icon="trash")
        self.show_inbox = W.Checkbox(value=False, description="show _INBOX",
                                     indent=False, layout=W.Layout(width="120px"))
        self.summary = W.HTML()
        self.warning = W.HTML()
        self.tree = SubjectTree(layout=W.Layout(width="42%", min_width="320px"))
        # The plotted field follows the data until the user picks one for this subject.
        self._user_field: str | None = None
        self._auto_value: str | None = None
        self._field_path = ""
        self.title = W.HTML('<span class="nb-hint">click a subject in the tree</span>')
        self.messages = W.HTML()
        self.diff = W.HTML()
        self.field = W.Dropdown(description="Field", options=[], value=None,
                                layout=W.Layout(width="320px"))
        self.plot = LinePlot(layout=W.Layout(width="100%"))
        for w, cls in ((self.pattern, "nb-exp-pattern"), (self.watch_button, "nb-exp-watch"),
                       (self.summary, "nb-exp-summary"), (self.warning, "nb-exp-warn"),
                       (self.tree, "nb-exp-tree"),
                       (self.title, "nb-exp-title"), (self.messages, "nb-exp-messages"),
                       (self.diff, "nb-exp-diff"), (self.field, "nb-exp-field"),
                       (self.plot, "nb-exp-plot")):
            w.add_class(cls)
        self.add_class("nb-explorer")
        self.watch_button.on_click(self._on_watch)
        self.clear_button.on_click(self._on_clear)
        self.show_inbox.observe(self._mark, names="value")
        self.tree.observe(self._mark, names="selected")
        self.tree.on_toggle(self._mark)
        self.field.observe(self._on_field, names="value")
        # MQTT Explorer's layout: the tree on the left; the selected subject's last value, diff
        # and plot on the right at first glance; its message list below both.
        details = W.VBox([self.title, self.field, self.plot,
                          W.HTML("<b>Diff of the last two payloads</b>"), self.diff],
                         layout=W.Layout(flex="1 1 0", min_width="0", padding="0 0 0 10px"))
        self.children = [
            style_widget(),
            W.HBox([self.pattern, self.watch_button, self.clear_button, self.show_inbox]),
            self.summary,
            self.warning,
            W.HBox([self.tree, details], layout=W.Layout(width="100%")),
            W.HTML("<b>Recent messages</b>"), self.messages,
        ]
        if autostart:
            self.watch(pattern)
        self._attach()

    # -- actions (kernel thread) -----------------------------------------------------------
    def watch(self, pattern: str | None = None) -> None:
        """Start watching `pattern` (replacing the current watch)."""
        self.stop()
        pattern = (pattern or self.pattern.value).strip() or ">"
        self.sub = self.conn.subscribe(pattern, batch_callback=self.stats.add_batch,
                                       capture=False,
                                       pending_msgs=20_000, pending_bytes=16 * 1024 * 1024)
        with _WATCHING_LOCK:
            _WATCHING.add(self)
        self.pattern.value = pattern
        self.watch_button.description = "Stop"
        self.watch_button.icon = "stop"
        self.warning.value = warning_html(pattern)
        self._mark()

    def stop(self) -> None:
        """Stop watching (what was seen stays)."""
        sub, self.sub = self.sub, None
        with _WATCHING_LOCK:
            _WATCHING.discard(self)
        if sub is not None and sub.active:
            try:
                sub.unsubscribe()
            except NatsbookError:
                pass
        self.watch_button.description = "Start"
        self.watch_button.icon = "eye"
        self.warning.value = ""
        self._mark()

    def select(self, path: str) -> None:
        """Select a node (what clicking it does)."""
        self.tree.selected = path

    def _on_watch(self, _button: object = None) -> None:
        try:
            if self.sub is not None and self.sub.active:
                self.stop()
            else:
                self.watch()
        except NatsbookError as exc:
            self.summary.value = error_html(str(exc).removeprefix("natsbook: "))

    def _on_clear(self, _button: object = None) -> None:
        self.stats.clear()
        self._known_nodes.clear()
        self._rates.clear()
        self._series.clear()
        self._series_seq = 0
        self._mark()

    def _mark(self, *_args: object) -> None:
        self._dirty = True

    def _on_field(self, change: dict[str, Any]) -> None:
        # A value the timer did not choose is the user's choice: it sticks for this subject.
        if change["new"] is not None and change["new"] != self._auto_value:
            self._user_field = change["new"]
        self._dirty = True

    def close(self) -> None:
        self.stop()
        super().close()

    # -- rendering (timer thread) ----------------------------------------------------------
    def _node_rate(self, node: Node, now: float) -> str:
        meter = self._rates.get(node.path)
        if meter is None:
            meter = self._rates[node.path] = RateMeter(node.count, now=now)
        return fmt_rate(meter.update(node.count, now))

    def poll(self) -> None:
        version = self.stats.version
        rates_moving = any(m.rate for m in self._rates.values())
        if version == self._seen and not self._dirty and not rates_moving:
            return
        self._seen = version
        self._dirty = False
        up = self.updater
        now = time.monotonic()
        counts = self.stats.counts(self.show_inbox.value)
        roots = build_tree(counts)
        self._auto_open(roots)
        lasts = self.stats.last_values()
        rates: dict[str, str] = {}

        def rate(node: Node) -> str:
            text = rates.get(node.path)
            if text is None:
                text = rates[node.path] = self._node_rate(node, now)
            return text

        # Every node's meter moves each tick, open or not, so parents show their subtree's rate.
        stack = list(roots.values())
        while stack:
            node = stack.pop()
            rate(node)
            stack.extend(node.children.values())
        rows = visible_rows(roots, self.tree.open_paths, rate,
                            lambda n: preview(lasts.get(n.path, b""), 60))
        up.set(self.tree, rows=rows)
        sub = self.sub
        if sub is not None and sub.active:
            state = ok_html(f"watching {sub.subject}")
            up.set(self.warning, value=warning_html(sub.subject))
        else:
            up.set(self.warning, value="")
            state = ('<span class="nb-hint">not watching - press Start to watch '
                     f"<code>{html.escape(self.pattern.value)}</code> (while it watches, "
                     "requests on matching subjects get no &quot;no responders&quot; answer)"
                     "</span>")
        dropped = sub.stats.dropped if sub is not None else 0
        extra = f", {self.stats.untracked} on untracked subjects" if self.stats.untracked else ""
        up.set(self.summary, value=f"{state} · {plural(len(counts), 'subject')} · "
                                   f"{plural(self.stats.total, 'message')} · dropped {dropped}"
                                   f"{extra}")
        self._details(self.tree.selected, counts)

    def _auto_open(self, roots: dict[str, Node]) -> None:
        new: set[str] = set()
        stack = list(roots.values())
        while stack:
            node = stack.pop()
            if node.path not in self._known_nodes:
                self._known_nodes.add(node.path)
                if node.children:
                    new.add(node.path)
            stack.extend(node.children.values())
        if new and len(self._known_nodes) <= AUTO_OPEN_NODES:
            self.tree.open_auto(new)

    def _details(self, path: str, counts: dict[str, int]) -> None:
        up = self.updater
        if not path:
            return
        recent = self.stats.recent(path)
        is_subject = path in counts
        kind = "subject" if is_subject else "subjects under"
        below = path + "."
        total = sum(n for s, n in counts.items() if s == path or s.startswith(below))
        up.set(self.title, value=f"<b>{kind} <code>{html.escape(path)}</code></b> · "
                                 f"{plural(total, 'message')}")
        rows = [(s, fmt_age(t), len(d), preview(d, 160))
                for s, _seq, t, d in reversed(recent[-MESSAGE_ROWS:])]
        up.set(self.messages, value=html_table(["subject", "time", "size", "payload"], rows,
                                               css="nb-exp-msgs", empty="no messages kept"))
        own = [(seq, t, d) for s, seq, t, d in recent if s == path]
        if len(own) >= 2:
            up.set(self.diff, value=diff_html(own[-2][2], own[-1][2]))
        else:
            up.set(self.diff, value='<span class="nb-hint">needs two messages on one subject'
                                    "</span>")
        samples = [numeric_fields(d) for _seq, _t, d in own[-50:]]
        fields = list(samples[-1]) if samples else []  # payload order
        if path != self._field_path:
            self._field_path = path
            self._user_field = None
        want = (self._user_field if self._user_field in fields
                else default_field(fields, samples))
        if tuple(fields) != tuple(self.field.options) or want != self.field.value:
            self._auto_value = want
            up.set(self.field, options=tuple(fields), value=want)
        self._plot(path, want, own)

    def _plot(self, path: str, fld: str | None, own: list[tuple[int, float, bytes]]) -> None:
        if fld is None:
            self.updater.set(self.plot, x=[], y=[], label=f"{path}: no numeric JSON field")
            return
        key = (path, fld)
        if key != self._series_key:
            self._series_key = key
            self._series.clear()
            self._series_seq = 0
        for seq, t, data in own:
            if seq <= self._series_seq:
                continue
            self._series_seq = seq
            value = numeric_fields(data).get(fld)
            if value is not None:
                self._series.append((t, value))
        pts = list(self._series)
        self.updater.set(self.plot, x=[p[0] for p in pts], y=[p[1] for p in pts],
                         label=f"{path} · {fld}")
