"""The data side of live views: a refresher thread that recomputes ``fn(frame)`` (or a SQL
query) when new rows arrived, at most every ``every`` seconds.

No widget code here: the refresher hands each result (or each error's traceback) to callbacks
that the view (``natsbook.widgets.LiveView``) turns into trait values. One thread per
refresher, stopped and joined by :meth:`Refresher.stop`; it also ends by itself, after a last
render, once nothing more can arrive (the subscription ended, or the connection closed).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..errors import BadInputError
from . import _sql
from ._frames import DecodeArg, resolve_decode, to_frame
from ._store import SCHEMA

if TYPE_CHECKING:
    from ..client._connection import Connection
    from ..client._subscription import Subscription

__all__ = ["MIN_EVERY", "Refresher"]

#: The shortest refresh period: at most ten renders a second reach the browser.
MIN_EVERY = 0.1
_POLL = 0.05


def _snapshot_table(sub: Subscription) -> pa.Table:
    """Every stored row of the capture, without sealing its open tail early (a view polls
    often; sealing each time would leave many tiny batches behind)."""
    assert sub.store is not None
    spilled, batches, _ = sub.store.snapshot()
    tables = sub.store.read_parts(spilled)
    tables.append(pa.Table.from_batches(batches, sub.store.schema))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def capture_frame(subs: list[Subscription], decode: DecodeArg = "auto", *,
                  with_sub: bool = False) -> pd.DataFrame:
    """The DataFrame of these captures (oldest first); ``with_sub`` adds the ``sub`` column
    as ``conn.to_pandas()`` does."""
    tables = []
    for s in subs:
        if s.store is None:
            continue
        t = _snapshot_table(s)
        if with_sub:
            t = t.append_column("sub", pa.array([s.subject] * t.num_rows, pa.string()))
        tables.append(t)
    if not tables:
        table = SCHEMA.empty_table()
        if with_sub:
            table = table.append_column("sub", pa.array([], pa.string()))
    elif len(tables) == 1:
        table = tables[0]
    else:
        table = pa.concat_tables(tables).sort_by("time")
    frame = to_frame(table, decode)
    if with_sub:
        frame.insert(1, "sub", table["sub"].to_pandas())
    return frame


class Refresher:
    """Recompute `fn` over a capture (a Subscription) or every capture of a Connection.

    Args:
        source: a Subscription or a Connection.
        fn: a function of the capture's DataFrame, or a SQL string (run with ``source.sql``).
        every: seconds between two renders at least (>= 0.1).
        on_result: called on the refresher thread with each result.
        on_error: called on the refresher thread with the traceback text of a failed render.
        on_state: called with a short state line after each render and when stopping.
        decode: how the DataFrame handed to `fn` decodes payloads.
    """

    def __init__(self, source: Subscription | Connection, fn: Callable[[pd.DataFrame], Any] | str,
                 *, every: float = 1.0, on_result: Callable[[Any], None],
                 on_error: Callable[[str], None], on_state: Callable[[str], None] | None = None,
                 decode: DecodeArg = "auto") -> None:
        resolve_decode(decode)  # a bad decode= fails here, not on the refresher thread
        if not (isinstance(fn, str) or callable(fn)):
            raise BadInputError("fn must be a function of the capture's DataFrame or a SQL "
                                "query string")
        if isinstance(fn, str) and not fn.strip():
            raise BadInputError("the SQL query is empty")
        try:
            every = float(every)
        except (TypeError, ValueError):
            raise BadInputError(f"every={every!r} must be a number of seconds") from None
        if not every >= MIN_EVERY:
            raise BadInputError(f"every={every:g} must be >= {MIN_EVERY} s (at most ten "
                                "renders a second)")
        self.source = source
        self.fn = fn
        self.every = every
        self.decode = decode
        # A Connection (every capture) or one Subscription; told apart by what they can do,
        # since this layer never imports the client layer.
        self._is_conn = callable(getattr(source, "subscribe", None))
        if not self._is_conn:
            source.internals.require_store()  # type: ignore[union-attr]
        self._on_result = on_result
        self._on_error = on_error
        self._on_state = on_state
        #: Renders done (successful or not) and how many raised.
        self.renders = 0
        self.errors = 0
        self.last_error: str | None = None
        #: Monotonic start time of each render (the newest 100).
        self.render_times: deque[float] = deque(maxlen=100)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Refresher:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="natsbook-live")
                self._thread.start()
        return self

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop refreshing and join the thread (a render in progress finishes first)."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    # -- the thread --------------------------------------------------------------------------
    def _subs(self) -> list[Subscription]:
        if self._is_conn:
            return _sql.user_captures(self.source)  # type: ignore[arg-type]
        return [self.source]  # type: ignore[list-item]

    def _finished(self) -> bool:
        """Nothing more can arrive: the connection is closed or the subscription ended."""
        if self._is_conn:
            return bool(self.source.is_closed)  # type: ignore[union-attr]
        sub = self.source
        return not sub.active or sub.internals.connection_closed  # type: ignore[union-attr]

    def _compute(self) -> Any:
        fn = self.fn
        if isinstance(fn, str):
            return self.source.sql(fn)
        if self._is_conn:
            frame = capture_frame(self._subs(), self.decode, with_sub=True)
        else:
            frame = capture_frame(self._subs(), self.decode)
        return fn(frame)

    def _render(self) -> None:
        self.render_times.append(time.monotonic())
        try:
            result = self._compute()
        except Exception as exc:  # shown in place; the view keeps going
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.last_error = text
            self._call(self._on_error, text)
            # Counted once shown: whoever sees the count also sees what it counts.
            self.errors += 1
            self.renders += 1
        else:
            self._call(self._on_result, result)
            self.renders += 1
        self._state()

    def _call(self, cb: Callable[[Any], None] | None, arg: Any) -> None:
        if cb is None:
            return
        try:
            cb(arg)
        except Exception:  # a broken display must not end the refresher
            self.last_error = traceback.format_exc()

    def _state(self, final: str = "") -> None:
        n = sum(len(s) for s in self._subs())
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        state = final or "● live"
        self._call(self._on_state, f"{state} · {self.renders} renders · {n:,} rows · "
                                   f"updated {stamp} UTC · every {self.every:g} s")

    def _run(self) -> None:
        seen = _sql.version(self._subs())
        last = time.monotonic()
        self._render()
        why = "stopped"
        while not self._stop.wait(_POLL):
            finished = self._finished()
            now = time.monotonic()
            current = _sql.version(self._subs())
            if current != seen and now - last >= self.every:
                seen, last = current, now
                self._render()
            elif finished and current == seen:
                why = "capture ended" if not self._is_conn else "connection closed"
                break
        self._state(f"■ stopped ({why})")
