"""Shared pieces of the panels: the throttled updater and small HTML helpers.

The reader and dispatcher threads never touch widgets. They (or the panels' button handlers)
leave plain Python state behind; one timer thread per dashboard wakes at most ten times a second,
lets every panel turn that state into trait values (``poll``), and applies the coalesced trait
changes widget by widget inside ``hold_sync`` - one comm message per changed widget per tick,
however many messages arrived in between.
"""

from __future__ import annotations

import html
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import orjson

from ...errors import BadInputError

if TYPE_CHECKING:
    from ...client import Connection

__all__ = ["Panel", "Updater", "error_html", "fmt_age", "fmt_rate", "html_table", "preview"]

log = logging.getLogger("natsbook")

#: Seconds between two ticks: at most 10 batched updates per second reach the browser.
MIN_INTERVAL = 0.1


class Updater:
    """One timer thread that coalesces trait changes and applies them at <= 10 Hz.

    ``set(widget, trait=value)`` may be called from any thread: the newest value per
    (widget, trait) wins and nothing is sent until the next tick. ``add(poll)`` registers a
    function run at every tick on the timer thread; it reads cheap state (counters, deques)
    and calls ``set``. The thread stops on ``stop()`` or once the connection is closed (after a
    last tick, so the panels show "closed").
    """

    def __init__(self, conn: Connection | None = None, interval: float = MIN_INTERVAL) -> None:
        self.conn = conn
        self.interval = max(float(interval), MIN_INTERVAL)
        self.ticks = 0
        #: Tracebacks of polls that raised (kept short; a failing poll never stops the timer).
        self.errors: deque[str] = deque(maxlen=20)
        self._pollers: list[Callable[[], None]] = []
        self._pending: dict[int, tuple[W.Widget, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- registration ------------------------------------------------------------------------
    def add(self, poll: Callable[[], None]) -> None:
        """Run `poll()` at every tick (on the timer thread)."""
        with self._lock:
            self._pollers.append(poll)

    def remove(self, poll: Callable[[], None]) -> None:
        with self._lock:
            if poll in self._pollers:
                self._pollers.remove(poll)

    def set(self, widget: W.Widget, **traits: Any) -> None:
        """Queue trait values for `widget`; applied together at the next tick."""
        with self._lock:
            entry = self._pending.get(id(widget))
            if entry is None:
                self._pending[id(widget)] = (widget, dict(traits))
            else:
                entry[1].update(traits)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Updater:
        """Start the timer thread (idempotent)."""
        if self.running or self._stop.is_set():
            return self
        self._thread = threading.Thread(target=self._run, name="natsbook-widgets", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the timer thread and wait for it (unless called from it)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()
            conn = self.conn
            if conn is not None and conn.is_closed:
                self.tick()  # one last update so the panels show the closed state
                break

    # -- one tick ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Poll every panel, then apply the queued changes (normally run by the timer)."""
        with self._lock:
            pollers = list(self._pollers)
        for poll in pollers:
            try:
                poll()
            except Exception as exc:  # a broken panel must not stop the others
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                self.errors.append(text)
                log.warning("natsbook widgets: update failed: %s", exc)
        self.apply()
        self.ticks += 1

    def apply(self) -> None:
        """Send the queued trait changes: one ``hold_sync`` batch per widget."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for widget, traits in pending.values():
            if widget.comm is None:
                continue  # closed widget
            changes = {k: v for k, v in traits.items() if getattr(widget, k) != v}
            if not changes:
                continue
            try:
                with widget.hold_sync():
                    for k, v in changes.items():
                        setattr(widget, k, v)
            except Exception as exc:
                self.errors.append(f"setting {sorted(changes)} on {type(widget).__name__}: {exc}")
                log.warning("natsbook widgets: could not update %s: %s",
                            type(widget).__name__, exc)


class Panel(W.VBox):
    """Base of the panels: a VBox bound to a connection and an updater.

    Without `updater=` the panel starts an updater of its own and stops it on ``close()``;
    in a dashboard all panels share the dashboard's.
    """

    def __init__(self, conn: Connection, *, updater: Updater | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn = conn
        self._own_updater = updater is None
        self.updater = updater if updater is not None else Updater(conn)

    def _attach(self) -> None:
        """Register ``poll`` with the updater; subclasses call it once fully built."""
        self.updater.add(self.poll)
        if self._own_updater:
            self.updater.start()

    def poll(self) -> None:
        """Turn cheap state into trait values via ``self.updater.set`` (timer thread)."""

    def close(self) -> None:
        self.updater.remove(self.poll)
        if self._own_updater:
            self.updater.stop()
        for child in self.children:
            child.close()
        super().close()


def run_in_thread(fn: Callable[[], None], name: str) -> threading.Thread:
    """Run a blocking action (a request) off the kernel's thread."""
    t = threading.Thread(target=fn, name=name, daemon=True)
    t.start()
    return t


class RateMeter:
    """Messages per second from successive counter readings, averaged over a sliding window.

    A device publishing at 1 Hz reads 1.0/s, not a value jumping between 0.5 and 1.5 with the
    phase of the 10 Hz timer: the rate is the count difference across the last `window`
    seconds of samples, and it is 0 once nothing arrived for a whole window.
    """

    __slots__ = ("_samples", "rate", "window")

    def __init__(self, count: int = 0, window: float = 10.0, now: float | None = None) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque(
            [(time.monotonic() if now is None else now, count)])
        self.rate = 0.0

    def update(self, count: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        samples = self._samples
        if now - samples[-1][0] >= 0.25:
            samples.append((now, count))
            while len(samples) > 2 and now - samples[1][0] >= self.window:
                samples.popleft()
            t0, c0 = samples[0]
            span = now - t0
            if span >= 1.0:
                self.rate = max(0.0, (count - c0) / span)
        return self.rate


# -- input parsing (shared by the publish and request panels) -------------------------------
def parse_payload(text: str, fmt: str) -> bytes:
    """The bytes to send for `text` typed in format "text" or "json".

    Raises:
        BadInputError: `fmt` is "json" and `text` is not valid JSON.
    """
    if fmt == "json":
        if not text.strip():
            return b""
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BadInputError(f"payload is not valid JSON ({exc}) - fix it or switch the "
                                "format to text") from None
    return text.encode("utf-8")


def parse_headers(text: str) -> dict[str, list[str]] | None:
    """Headers typed one per line as ``Key: value`` (repeated keys are kept).

    Raises:
        BadInputError: a line has no ':'.
    """
    out: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise BadInputError(f"header line {n} {line!r} is not 'Key: value' - write one "
                                "header per line, e.g. 'Trace-Id: 42'")
        out.setdefault(key.strip(), []).append(value.strip())
    return out or None


def describe_payload(text: str, fmt: str) -> str:
    """Live validation message for the payload box (HTML)."""
    size = len(text.encode("utf-8"))
    try:
        parse_payload(text, fmt)
    except BadInputError as exc:
        return error_html(str(exc).removeprefix("natsbook: "))
    kind = "valid JSON" if fmt == "json" and text.strip() else "text"
    return f'<span class="nb-hint">{kind}, {size} bytes</span>'


# -- formatting helpers ---------------------------------------------------------------------
def preview(data: bytes, limit: int = 120) -> str:
    """A one-line, human-readable preview of a payload."""
    if not data:
        return ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        head = data[: limit // 3].hex(" ")
        return f"<{len(data)} bytes> {head}" + ("…" if len(data) > limit // 3 else "")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_rate(rate: float) -> str:
    if rate >= 1000:
        return f"{rate / 1000:.1f}k/s"
    if rate >= 10:
        return f"{rate:.0f}/s"
    return f"{rate:.1f}/s"


def fmt_age(t: float, now: float | None = None) -> str:
    """Wall-clock time of day of an epoch timestamp, e.g. ``12:03:04.512``."""
    if not t:
        return ""
    lt = time.localtime(t)
    return time.strftime("%H:%M:%S", lt) + f".{int((t % 1) * 1000):03d}"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def html_table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, css: str,
               empty: str = "nothing yet") -> str:
    """A small escaped HTML table (class `css`) for an ``HTML`` widget."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(columns)}" class="nb-empty">{esc(empty)}</td></tr>'
    return (f'<table class="nb-table {css}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def error_html(text: str) -> str:
    return f'<span class="nb-error" style="color:#b00020">{esc(text)}</span>'


def ok_html(text: str) -> str:
    return f'<span class="nb-ok" style="color:#1b5e20">{esc(text)}</span>'


#: Styles shared by the panels' HTML tables (scoped by class names, injected once per panel).
STYLE = """<style>
.nb-table{border-collapse:collapse;font-size:12px;font-family:var(--jp-code-font-family,monospace)}
table.nb-table th{background:var(--jp-layout-color2,#eee);text-align:left;padding:2px 8px;
 line-height:1.4}
table.nb-table td{border-top:1px solid var(--jp-border-color2,#ddd);padding:2px 8px;line-height:1.4;
 max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.nb-empty{color:#888;font-style:italic}
.nb-hint{color:#666;font-size:12px;line-height:1.45}
div.nb-hint{margin:2px 0 6px}
.nb-diff{font-size:12px;line-height:1.35;margin:0;padding:2px 0 6px;overflow-x:auto;
 white-space:pre;box-sizing:border-box}
.nb-diff .add{background:#e6ffec;color:#1a7f37}.nb-diff .del{background:#ffebe9;color:#cf222e}
.nb-diff .hunk{color:#6f42c1}
</style>"""


def style_widget() -> W.HTML:
    """An invisible HTML widget carrying the panels' CSS."""
    return W.HTML(STYLE, layout=W.Layout(height="0px", margin="0"))
