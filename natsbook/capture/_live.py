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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from ..errors import BadInputError
from . import _sql
from ._frames import DecodeArg, filter_table, resolve_decode, to_frame
from ._store import SCHEMA

if TYPE_CHECKING:
    from ._source import Capture

__all__ = ["MIN_EVERY", "Refresher", "capture_frame"]

#: The shortest refresh period: at most ten renders a second reach the browser.
MIN_EVERY = 0.1
_POLL = 0.05


def _snapshot_table(sub: Capture) -> pa.Table:
    """Every stored row of the capture, without sealing its open tail early (a view polls
    often; sealing each time would leave many tiny batches behind)."""
    assert sub.store is not None
    spilled, batches, _ = sub.store.snapshot()
    tables = sub.store.read_parts(spilled)
    tables.append(pa.Table.from_batches(batches, sub.store.schema))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def capture_frame(subs: Sequence[Capture], decode: DecodeArg = "auto", *, with_sub: bool = False,
                  last: int | None = None, since: Any = None, subject: str | None = None,
                  seal: bool = True) -> pd.DataFrame:
    """The DataFrame of these captures, oldest first: ``conn.to_pandas()`` (``with_sub``: a
    ``sub`` column naming each row's subscription pattern, right after ``time``) and live
    views. ``seal=False`` reads each store without sealing its open tail (a view polls often;
    sealing each time would leave many tiny batches behind)."""
    tables = []
    for s in subs:
        if s.store is None:
            continue
        t = s.store.table() if seal else _snapshot_table(s)
        if with_sub:
            t = t.append_column("sub", pa.array([s.subject] * t.num_rows, pa.string()))
        tables.append(t)
    if not tables:
        table = SCHEMA.empty_table()
        if with_sub:
            table = table.append_column("sub", pa.array([], pa.string()))
    elif len(tables) == 1 and not with_sub:
        table = tables[0]
    else:
        table = pa.concat_tables(tables).sort_by("time")
    table = filter_table(table, subject=subject, since=since, last=last)
    if not with_sub:
        return to_frame(table, decode)
    # Through `extra`, so a payload key "sub" gets its own column (data.sub).
    return to_frame(table.drop_columns(["sub"]), decode, extra=[("sub", table["sub"])])


class Refresher:
    """Recompute `fn` over some captures (one subscription's, or every capture of a
    connection).

    Args:
        captures: returns the captures to read (called before each render: a connection's
            list grows).
        finished: True once nothing more can arrive (the capture ended, the connection
            closed): the refresher renders what is left and stops, saying `why`.
        sql: runs `fn` when it is a SQL string (``sub.sql`` or ``conn.sql``).
        fn: a function of the captures' DataFrame, or a SQL string.
        with_sub: the frame has a ``sub`` column (as ``conn.to_pandas()``).
        why: the state shown once `finished` stopped it (``capture ended``).
        every: seconds between two renders at least (>= 0.1).
        on_result: called on the refresher thread with each result.
        on_error: called on the refresher thread with the traceback text of a failed render.
        on_state: called with a short state line after each render and when stopping.
        decode: how the DataFrame handed to `fn` decodes payloads.
    """

    def __init__(self, captures: Callable[[], list[Capture]], finished: Callable[[], bool],
                 sql: Callable[[str], pd.DataFrame], fn: Callable[[pd.DataFrame], Any] | str,
                 *, with_sub: bool = False, why: str = "capture ended", every: float = 1.0,
                 on_result: Callable[[Any], None], on_error: Callable[[str], None],
                 on_state: Callable[[str], None] | None = None, decode: DecodeArg = "auto") -> None:
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
        self._subs = captures
        self._finished = finished
        self._sql = sql
        self._with_sub = with_sub
        self._why = why
        self.fn = fn
        self.every = every
        self.decode = decode
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

    # -- the thread ---------------------------------------------------------------------------
    def _compute(self) -> Any:
        fn = self.fn
        if isinstance(fn, str):
            return self._sql(fn)
        return fn(capture_frame(self._subs(), self.decode, with_sub=self._with_sub, seal=False))

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
        n = sum(len(s.store) for s in self._subs() if s.store is not None)
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        state = final or "● live"
        self._call(self._on_state, f"{state} · {self.renders} renders · {n:,} rows · "
                                   f"updated {stamp} UTC · every {self.every:g} s")

    def _run(self) -> None:
        seen = _sql.version(self._subs())
        last = time.monotonic()
        self._render()
        why = ""  # stopped by the user: nothing more to say
        while not self._stop.wait(_POLL):
            finished = self._finished()
            now = time.monotonic()
            current = _sql.version(self._subs())
            if current != seen and now - last >= self.every:
                seen, last = current, now
                self._render()
            elif finished and current == seen:
                why = self._why
                break
        self._state(f"■ stopped ({why})" if why else "■ stopped")
