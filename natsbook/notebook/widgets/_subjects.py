"""What the subject explorer keeps and shows, without widgets: per-subject counters and recent
payloads fed by a subscription's batch callback (`SubjectStats`), the diff of two payloads and
the numeric fields of a JSON payload with the one worth plotting first."""

from __future__ import annotations

import difflib
import html
import itertools
import threading
from collections import Counter, deque
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ...wire import Msg, RawMsg

__all__ = ["SubjectStats", "default_field", "diff_html", "numeric_fields"]

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
