"""SubjectExplorer: every subject seen so far as a tree with counts, rates and last values;
the selected subject's recent messages, the diff of its last two payloads and a live plot of a
numeric JSON field (in the spirit of MQTT Explorer).

The explorer subscribes on its own (no capture) with a batch callback that only updates plain
dicts on the subscription's dispatcher thread; the dashboard's timer turns them into trait
values at <= 10 Hz. It starts only when asked (``autostart=True`` or its Start button), on the
pattern the user chose: a wildcard wire-tap is a subscriber like any other, so while it runs the
server delivers requests on matching subjects to it and no longer answers "no responders".
"""

from __future__ import annotations

import difflib
import html
import itertools
import threading
import time
from collections import Counter, deque
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import orjson

from ...errors import NatsbookError
from ...wire import RawMsg
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
from .plot import LinePlot
from .tree import Node, SubjectTree, build_tree, visible_rows

if TYPE_CHECKING:
    from ...client import Connection, Subscription
    from ...wire import Msg

__all__ = ["SubjectExplorer", "SubjectStats", "default_field", "diff_html", "numeric_fields"]

#: Nodes opened automatically while the tree is smaller than this (a flood stays collapsed).
AUTO_OPEN_NODES = 200
#: Rows of the selected subject's message list (below the tree and the plot).
MESSAGE_ROWS = 8
#: Rows at the end of each batch whose payloads are kept as "recent" (a flood's last ones).
_TAIL = 2000
_SUBJECT = itemgetter(0)


class _Entry:
    __slots__ = ("count", "last_t", "recent")

    def __init__(self, keep: int) -> None:
        self.count = 0
        self.last_t = 0.0
        # (sequence number on this subject, receive time, payload)
        self.recent: deque[tuple[int, float, bytes]] = deque(maxlen=keep)


class SubjectStats:
    """Per-subject counters and recent payloads, fed by a subscription callback.

    ``add`` runs on the dispatcher thread and touches only these dicts, under a lock that the
    timer thread takes briefly to copy what it draws.
    """

    def __init__(self, max_subjects: int = 5000, keep: int = 50) -> None:
        self.max_subjects = max_subjects
        self.keep = keep
        self.lock = threading.Lock()
        self.subjects: dict[str, _Entry] = {}
        self.total = 0
        #: Messages on subjects past `max_subjects` (counted in the total only).
        self.untracked = 0
        self.version = 0

    def add(self, msg: Msg) -> None:
        with self.lock:
            self.total += 1
            self.version += 1
            e = self.subjects.get(msg.subject)
            if e is None:
                if len(self.subjects) >= self.max_subjects:
                    self.untracked += 1
                    return
                e = self.subjects[msg.subject] = _Entry(self.keep)
            e.count += 1
            e.last_t = msg.time
            e.recent.append((e.count, msg.time, msg.data))

    def add_batch(self, rows: list[RawMsg], t: float) -> None:
        """A whole reader batch (the subscription's batch_callback): counts per subject in one
        C-level pass (Counter), recent payloads only from the batch's tail, so a flood costs
        little Python per message."""
        counts = Counter(map(_SUBJECT, rows))
        tail = rows[-_TAIL:]
        with self.lock:
            self.total += len(rows)
            self.version += 1
            entries: dict[bytes, _Entry] = {}
            for subj, n in counts.items():
                name = subj.decode("utf-8", "replace")
                e = self.subjects.get(name)
                if e is None:
                    if len(self.subjects) >= self.max_subjects:
                        self.untracked += n
                        continue
                    e = self.subjects[name] = _Entry(self.keep)
                e.count += n
                e.last_t = t
                entries[subj] = e
            # Sequence numbers of the tail, counted back from each subject's new total.
            later: Counter[bytes] = Counter()
            recent: list[tuple[_Entry, int, bytes]] = []
            for row in reversed(tail):
                e = entries.get(row[0])
                if e is None:
                    continue
                if later[row[0]] < self.keep:
                    recent.append((e, e.count - later[row[0]], row[3]))
                later[row[0]] += 1
            for e, seq, data in reversed(recent):
                e.recent.append((seq, t, data))

    def clear(self) -> None:
        with self.lock:
            self.subjects.clear()
            self.total = self.untracked = 0
            self.version += 1

    def counts(self, include_inbox: bool) -> dict[str, int]:
        with self.lock:
            return {s: e.count for s, e in self.subjects.items()
                    if include_inbox or not s.startswith("_INBOX.")}

    def last_values(self) -> dict[str, bytes]:
        with self.lock:
            return {s: e.recent[-1][2] for s, e in self.subjects.items() if e.recent}

    def recent(self, prefix: str) -> list[tuple[str, int, float, bytes]]:
        """Recent messages of `prefix` and every subject below it, oldest first."""
        below = prefix + "."
        with self.lock:
            out = [(s, seq, t, d) for s, e in self.subjects.items()
                   if s == prefix or s.startswith(below) for seq, t, d in e.recent]
        out.sort(key=lambda r: r[2])
        return out


def _pretty(data: bytes) -> str:
    try:
        return orjson.dumps(orjson.loads(data),
                            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "\n".join(data[i:i + 16].hex(" ") for i in range(0, len(data), 16))


def diff_html(previous: bytes, last: bytes) -> str:
    """A unified diff (difflib) of two payloads, JSON pretty-printed with sorted keys."""
    lines = list(difflib.unified_diff(_pretty(previous).splitlines(), _pretty(last).splitlines(),
                                      "previous", "last", lineterm="", n=2))
    if not lines:
        return '<span class="nb-hint">the last two payloads are identical</span>'
    out = []
    for line in lines:
        cls = ""
        if line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+") and not line.startswith("+++"):
            cls = "add"
        elif line.startswith("-") and not line.startswith("---"):
            cls = "del"
        out.append(f'<span class="{cls}">{html.escape(line)}</span>' if cls
                   else html.escape(line))
    return '<pre class="nb-diff">' + "\n".join(out) + "</pre>"


def numeric_fields(data: bytes) -> dict[str, float]:
    """Numeric values of a JSON payload by dotted path (``"value"`` for a bare number)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    out: dict[str, float] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int | float):
            out[path or "value"] = float(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))

    walk(obj, "")
    return out


def default_field(fields: list[str], samples: list[dict[str, float]]) -> str | None:
    """The field worth plotting first: the first (in payload order) whose values vary and do
    not only go up (a sequence number or a timestamp plots as a diagonal line). While no
    field has gone down yet (few samples), the first varying one that does not look like a
    counter (whole numbers) or a clock (epoch seconds); else the first varying, else the
    first."""
    if not fields:
        return None
    varying: list[str] = []
    plain: list[str] = []
    for name in fields:
        values = [s[name] for s in samples if name in s]
        if len(set(values)) < 2:
            continue
        if any(b < a for a, b in itertools.pairwise(values)):
            return name
        varying.append(name)
        counter = all(v == int(v) for v in values)
        clock = min(values) >= 1e9
        if not counter and not clock:
            plain.append(name)
    return (plain or varying or fields)[0]


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
                       (self.summary, "nb-exp-summary"), (self.tree, "nb-exp-tree"),
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
        self.pattern.value = pattern
        self.watch_button.description = "Stop"
        self.watch_button.icon = "stop"
        self._mark()

    def stop(self) -> None:
        """Stop watching (what was seen stays)."""
        sub, self.sub = self.sub, None
        if sub is not None and sub.active:
            try:
                sub.unsubscribe()
            except NatsbookError:
                pass
        self.watch_button.description = "Start"
        self.watch_button.icon = "eye"

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
        else:
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
