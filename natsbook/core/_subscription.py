"""Subscriptions: a capture store, an optional callback on a dispatcher thread, and counters."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq

from ..capture._frames import DecodeArg, filter_table, to_frame
from ..capture._sql import captures_sql
from ..capture._store import CaptureStore
from ..errors import ProtocolError
from ..wire._msg import Msg
from ..wire._protocol import RawMsg
from ..wire._runs import MsgRun
from ._internals import SubscriptionInternals

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["SubStats", "Subscription"]

_PAYLOAD = itemgetter(3)

#: Default limits of a callback's pending queue; past them messages are dropped and counted.
DEFAULT_PENDING_MSGS = 65_536
DEFAULT_PENDING_BYTES = 64 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class SubStats:
    """Counters of one subscription.

    Capture: ``received == stored + evicted`` (``stored`` includes rows spilled to Parquet).
    Callback: ``received == delivered + pending + dropped`` (``dropped``: pending limit hit).
    ``late``: messages that arrived after the subscription ended; not part of ``received``.
    ``bad_headers``: messages whose header block is not NATS headers (part of ``received``:
    a capture keeps them as rows flagged by ``header_error``; a callback is not called for
    them, they count in ``callback_errors`` too). ``spill_errors``: failed spill writes
    (spilling then stops for that capture, which evicts instead) and spill files found
    missing; the reason is in ``sub.errors`` and ``conn.errors``.
    """

    received: int
    stored: int
    evicted: int
    spilled: int
    dropped: int
    delivered: int
    pending: int
    callback_errors: int
    bytes: int
    late: int = 0
    bad_headers: int = 0
    spill_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Subscription:
    """A live subscription. Create with ``Connection.subscribe``."""

    #: The capture's table name in SQL (``subscribe(..., name=...)``), or None.
    name: str | None = None

    def __init__(self, conn: Engine, sid: int, subject: str, queue: str | None,
                 max_msgs: int | None, store: CaptureStore | None,
                 callback: Callable[[Msg], Any] | None, *, pending_msgs: int = DEFAULT_PENDING_MSGS,
                 pending_bytes: int = DEFAULT_PENDING_BYTES,
                 batch_callback: Callable[[list[RawMsg], float], Any] | None = None,
                 sink: Callable[[list[RawMsg], float], Any] | None = None,
                 internal: bool = False) -> None:
        self._conn = conn
        self.sid = sid
        self.subject = subject
        self.queue = queue
        self.max_msgs = max_msgs
        self.store = store
        self.callback = callback
        self.batch_callback = batch_callback
        #: natsbook's own reads (JetStream history, follow, KV watch): not listed among the
        #: connection's subscriptions or captures, never under its capture budget.
        self.internal = internal
        # Called on the I/O thread with each batch, under this subscription's lock: it must
        # only hand the rows over (an internal reader's buffer), never block.
        self._sink = sink
        self.created = time.time()
        self.closed_at: float | None = None
        self.active = True
        self.received = 0
        #: Messages that arrived after the subscription ended (unsubscribe or max_msgs reached
        #: while still in flight): not stored, not handed to the callback, counted here.
        self.late = 0
        #: ``received`` when the current server got the SUB (reconnects re-subscribe), so an
        #: UNSUB limit can be given relative to that server's own count.
        self._base = 0
        # The newest row and its receive time, replaced together.
        self._last: tuple[RawMsg, float] | None = None
        self._pending_limit = pending_msgs
        self._pending_bytes_limit = pending_bytes
        # Whole reader batches wait here: (rows, receive time, payload bytes).
        self._pending: deque[tuple[list[RawMsg], float, int]] = deque()
        self._pending_count = 0
        self._pending_bytes = 0
        self._dropped = 0
        self._delivered = 0
        self._busy = 0  # rows taken by the dispatcher and not yet handed over
        self._discard = False
        self._errors = 0
        self._bad_headers = 0  # counted by the dispatcher (a capture's store counts its own)
        #: What went wrong in this subscription: callback exceptions, storage errors.
        self.errors: deque[str] = deque(maxlen=20)
        # Guards every counter above (and the store's append): a stats snapshot taken under it
        # always adds up, whatever the I/O and dispatcher threads are doing.
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if callback is not None or batch_callback is not None:
            self._thread = threading.Thread(target=self._dispatch, daemon=True,
                                            name=f"natsbook-dispatch-{sid}")
            self._thread.start()

    # -- called by the reader thread ---------------------------------------------------------
    def _deliver(self, rows: list[RawMsg], now: float, t_ns: int) -> bool:
        """Take a batch from the reader. Returns False once max_msgs is reached."""
        more = self._take(rows, now, t_ns)
        store = self.store
        if store is not None and store._notices:
            self._report_store()  # outside the lock: a storage error is reported, not raised
        return more

    def _report_store(self) -> None:
        """Report what the store noticed (a failed spill write, a bad header block)."""
        assert self.store is not None
        for text in self.store.take_notices():
            self.errors.append(text)
            self._conn._report(f"capture on {self.subject!r}: {text}")

    def _take(self, rows: list[RawMsg], now: float, t_ns: int) -> bool:
        with self._cond:
            if type(rows) is MsgRun and (self.store is None or self._sink is not None
                                         or self._thread is not None
                                         or self.max_msgs is not None):
                rows = rows.rows()  # only a plain capture store takes a bulk run as it is
            if not self.active:
                self.late += len(rows)
                return False
            done = False
            if self.max_msgs is not None and self.received + len(rows) >= self.max_msgs:
                # max(.., 0): a limit lowered to below what arrived meanwhile keeps nothing
                # more (a negative slice would keep all but the last few rows).
                room = max(self.max_msgs - self.received, 0)
                self.late += len(rows) - room
                rows = rows[:room]
                done = True
            if not rows:
                return not done
            # Counted, stored and queued in one step under the lock, so no snapshot ever sees
            # a message received but not yet stored or pending.
            self.received += len(rows)
            self._last = (rows[-1], now)
            if self.store is not None:
                self.store.append(rows, t_ns)
            if self._sink is not None:
                self._sink(rows, now)
            if self._thread is not None:
                self._enqueue_locked(rows, now)
            if done:
                self.active = False
                self.closed_at = now
                self._cond.notify_all()
            return not done

    def _enqueue_locked(self, rows: list[RawMsg], now: float) -> None:
        """Queue a whole batch for the dispatcher; what does not fit the pending limits is
        dropped (newest first) and counted. Called with ``_cond`` held."""
        # Rows the dispatcher holds still count: at most pending_msgs rows in flight.
        room = self._pending_limit - self._pending_count - self._busy
        batch = rows if len(rows) <= room else rows[:max(room, 0)]
        size = sum(map(len, map(_PAYLOAD, batch)))
        if self._pending_bytes + size > self._pending_bytes_limit:
            total = self._pending_bytes
            keep = 0
            for row in batch:
                if total + len(row[3]) > self._pending_bytes_limit:
                    break
                total += len(row[3])
                keep += 1
            batch = batch[:keep]
            size = total - self._pending_bytes
        self._dropped += len(rows) - len(batch)
        if batch:
            self._pending.append((batch, now, size))
            self._pending_count += len(batch)
            self._pending_bytes += size
            self._cond.notify()

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    if not self.active:
                        return
                    self._cond.wait(0.5)
                batch, t, size = self._pending.popleft()
                self._pending_count -= len(batch)
                self._pending_bytes -= size
                self._busy = len(batch)
            if self.batch_callback is not None:
                try:
                    self.batch_callback(batch, t)
                except Exception as exc:  # reported, never fatal to the dispatcher
                    self._failed(exc)
                finally:
                    with self._cond:
                        self._busy = 0
                        self._delivered += len(batch)
                continue
            cb = self.callback
            assert cb is not None
            for i, row in enumerate(batch):
                if self._discard:
                    with self._cond:
                        self._dropped += len(batch) - i
                        self._busy = 0
                    break
                try:
                    # Inside the try: a malformed header block is this message's error (counted
                    # and reported), never the end of the dispatcher.
                    try:
                        msg = Msg.from_raw(*row, time=t, sid=self.sid, conn=self._conn)
                    except ProtocolError:
                        with self._cond:
                            self._bad_headers += 1
                        raise
                    cb(msg)
                except Exception as exc:  # reported, never fatal to the dispatcher
                    self._failed(exc)
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._delivered += 1

    def _failed(self, exc: Exception) -> None:
        with self._cond:
            self._errors += 1
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.errors.append(text)
        self._conn._report(f"callback on {self.subject!r} raised {text}")

    def _stop(self, now: float | None = None, *, discard: bool = False) -> None:
        with self._cond:
            self.active = False
            if self.closed_at is None:
                self.closed_at = now or time.time()
            if discard:
                # Closing without drain: what the callback never saw is counted, not hidden.
                self._discard = True
                self._dropped += self._pending_count
                self._pending.clear()
                self._pending_count = self._pending_bytes = 0
            self._cond.notify_all()
        if self.store is not None:
            self.store.finish()
            self._report_store()

    def _join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def internals(self) -> SubscriptionInternals:
        """natsbook's own layers' interface to this subscription; not for notebooks. See
        ``natsbook/core/_internals.py``."""
        return SubscriptionInternals(self)

    # -- user API ----------------------------------------------------------------------------
    @property
    def last_msg(self) -> Msg | None:
        """The newest message received (decoded lazily)."""
        last = self._last
        if last is None:
            return None
        raw, t = last
        # Lenient: a bad header block gives headers=None and Msg.header_error, not an error.
        return Msg.from_raw(*raw, time=t, sid=self.sid, conn=self._conn, lenient=True)

    @property
    def stats(self) -> SubStats:
        """A consistent snapshot: taken under the lock the I/O and dispatcher threads count
        under, so ``received == stored + evicted`` (capture) and ``received == delivered +
        pending + dropped`` (callback) hold in every snapshot."""
        with self._cond:
            st = self.store.stats if self.store is not None else None
            # A message inside the callback is still pending, so the counters always add up.
            pending = self._pending_count + self._busy
            return SubStats(
                received=self.received,
                stored=st.stored if st else 0,
                evicted=st.evicted if st else 0,
                spilled=st.spilled if st else 0,
                dropped=self._dropped,
                delivered=self._delivered,
                pending=pending,
                callback_errors=self._errors,
                bytes=st.bytes if st else 0,
                late=self.late,
                bad_headers=st.bad_headers if st else self._bad_headers,
                spill_errors=st.spill_errors if st else 0,
            )

    def wait_pending(self, timeout: float = 5.0) -> bool:
        """Wait until the callback has handled everything pending. True when empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle():
                return True
            time.sleep(0.005)
        return self._idle()

    def _idle(self) -> bool:
        with self._cond:
            if self._pending:
                return False
            # Popped but still inside the callback counts as busy.
            return self._thread is None or self._delivered + self._dropped >= self.received

    def unsubscribe(self, max_msgs: int | None = None) -> None:
        """Stop the subscription now, or after `max_msgs` more messages in total."""
        self._conn.unsubscribe(self, max_msgs=max_msgs)

    def _require_store(self) -> CaptureStore:
        if self.store is None:
            from ..errors import BadInputError

            raise BadInputError(f"subscription on {self.subject!r} was made with capture=False;"
                                " subscribe again with capture=True to keep messages")
        return self.store

    def to_arrow(self) -> Any:
        table = self._require_store().table()
        if self.store is not None and self.store._notices:
            self._report_store()
        return table

    def to_pandas(self, decode: DecodeArg = "auto", *, last: int | None = None, since: Any = None,
                  subject: str | None = None) -> pd.DataFrame:
        """The captured messages as a DataFrame (see natsbook docs for columns and decoding).

        Args:
            decode: "auto", "json" (flatten objects into columns), "text" or "bytes".
            last: only the newest N rows.
            since: only rows received at or after this time (anything pandas parses).
            subject: only rows whose subject matches this pattern (wildcards allowed).
        """
        table = filter_table(self.to_arrow(), subject=subject, since=since, last=last)
        return to_frame(table, decode)

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write every stored row (raw payloads, lossless) to one Parquet file."""
        pq.write_table(self.to_arrow(), os.fspath(path), compression="zstd")

    def gaps(self) -> pd.DataFrame:
        """Disconnected intervals during this subscription's life: data may be missing there."""
        frame = self._conn.gaps()
        if frame.empty:
            return frame
        start = pd.Timestamp(self.created, unit="s", tz="UTC")
        end = pd.Timestamp(self.closed_at or time.time() + 1, unit="s", tz="UTC")
        keep = (frame["end"].isna() | (frame["end"] >= start)) & (frame["start"] <= end)
        return frame[keep].reset_index(drop=True)

    def messages(self, last: int = 10) -> list[Msg]:
        """The newest `last` stored messages as Msg objects."""
        table = filter_table(self.to_arrow(), last=last)
        out = []
        for row in table.to_pylist():
            raw = (row["subject"].encode(), row["reply"].encode() if row["reply"] else None,
                   row["headers"], row["payload"])
            t = row["time"].timestamp() if row["time"] is not None else 0.0
            out.append(Msg.from_raw(*raw, time=t, sid=self.sid, conn=self._conn, lenient=True))
        return out

    def sql(self, query: str) -> pd.DataFrame:
        """Run DuckDB SQL over this capture alone (the table ``messages``; its name too, if it
        has one). Columns as in :meth:`natsbook.Connection.sql`.

        Raises:
            QueryError: DuckDB refused or failed the query (its message is in ``.detail``).
            BadInputError: the subscription was made with ``capture=False``.
        """
        self._require_store()
        return captures_sql([self], query)

    def live(self, fn: Callable[[pd.DataFrame], Any] | str, *, every: float = 1.0,
             decode: DecodeArg = "auto", title: str | None = None) -> Any:
        """A widget showing ``fn(frame)``, refreshed as messages arrive.

        Args:
            fn: a function of the capture's DataFrame (``sub.to_pandas(decode)``) returning a
                DataFrame (shown as a table), a matplotlib figure (shown as an image) or
                anything with a rich repr; or a SQL string, run with :meth:`sql`.
            every: re-render at most every this many seconds (>= 0.1), and only when new rows
                arrived. Rendering runs on the view's own thread, never the kernel's or the
                I/O thread; an exception in `fn` is shown in place and the view keeps going.
            decode: payload decoding of the frame handed to `fn`.
            title: an optional heading.

        Returns:
            The view (a ``natsbook.notebook.widgets.LiveView``, an ipywidgets VBox). Its Stop
            button, ``view.stop()`` or ``view.close()`` stop it; it stops by itself once the
            capture has ended.
        """
        # A live view is a widget: the one import of a front end by a runtime layer, made
        # when it is asked for (tests/test_layers.py names it as the only exception).
        from ..notebook.widgets.live import LiveView

        return LiveView(self, fn, every=every, decode=decode, title=title)

    def __len__(self) -> int:
        return len(self.store) if self.store is not None else 0

    def __repr__(self) -> str:
        q = f" queue={self.queue!r}" if self.queue else ""
        state = "active" if self.active else "closed"
        return (f"<Subscription {self.subject!r}{q} sid={self.sid} {state} "
                f"received={self.received} stored={len(self)}>")
