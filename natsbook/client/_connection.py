"""Connection: the public API over the engine (publish, subscribe, request/reply, serve, flush,
drain, close, state, captures as DataFrames)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ..capture._frames import filter_table, to_frame
from ..capture._sql import check_name
from ..capture._store import DEFAULT_MAX_BYTES, CaptureStore
from ..errors import (
    BadInputError,
    NatsbookError,
)
from ..wire._msg import Msg
from ..wire._protocol import (
    RawMsg,
    encode_sub,
    encode_unsub,
)
from ..wire._subjects import check_queue, check_subscribe
from ._analysis import AnalysisMethods
from ._batch import BatchMethods
from ._engine import Gap, _live
from ._internals import ConnectionInternals
from ._methods import DataMethods
from ._publishing import _Publishing
from ._subscription import DEFAULT_PENDING_BYTES, DEFAULT_PENDING_MSGS, Subscription

__all__ = ["Connection", "DrainReport", "Gap"]


@dataclass(slots=True, frozen=True)
class DrainReport:
    """What drain() could not deliver; all zero means nothing was lost."""

    undelivered_callbacks: int
    unsent_bytes: int
    errors: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.undelivered_callbacks or self.unsent_bytes or self.errors)


class Connection(_Publishing, DataMethods, AnalysisMethods, BatchMethods):
    """A NATS connection. Create with :func:`natsbook.connect`."""

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, subject: str, *, queue: str | None = None, max_msgs: int | None = None,
                  callback: Callable[[Msg], Any] | None = None, capture: bool = True,
                  max_rows: int | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES,
                  spill: str | os.PathLike[str] | None = None,
                  pending_msgs: int = DEFAULT_PENDING_MSGS,
                  pending_bytes: int = DEFAULT_PENDING_BYTES,
                  batch_callback: Callable[[list[RawMsg], float], Any] | None = None,
                  timeout: float = 10.0, name: str | None = None,
                  decode: Any = None) -> Subscription:
        """Subscribe and capture. Returns once the server has registered the subscription.

        Args:
            subject: subject or pattern (``*`` one token, ``>`` the rest).
            queue: queue group: each message goes to one member of the group.
            max_msgs: unsubscribe automatically after this many messages.
            callback: called with each Msg on a dispatcher thread (never the reader);
                exceptions are counted in stats and reported in ``conn.errors``.
            capture: keep messages in the subscription's store (for ``to_pandas``).
            max_rows / max_bytes: store bounds; oldest rows are evicted first and counted.
            spill: directory for Parquet spill: sealed rows go to disk instead of eviction.
            pending_msgs / pending_bytes: callback queue limits; overflow is dropped, counted.
            batch_callback: for high rates: called on the dispatcher thread with each batch
                the reader received, as a list of raw ``(subject, reply, header block,
                payload)`` bytes tuples, and its receive time (seconds since the epoch).
            timeout: how long to wait for the server to confirm.
            name: a table name for this capture in ``conn.sql()`` (``FROM readings``); a
                later capture given the same name takes it over.
            decode: the capture's payload format ("msgpack", "cbor", a registered name or
                ``natsbook.protobuf(...)``): ``to_pandas()`` and SQL's ``data`` decode by it.
        """
        self._check_open()
        check_subscribe(subject)
        check_name(name)
        if queue is not None:
            check_queue(queue)
        if max_msgs is not None and (not isinstance(max_msgs, int) or max_msgs < 1):
            raise BadInputError(f"max_msgs={max_msgs!r} must be a positive int or None")
        if callback is not None and not callable(callback):
            raise BadInputError("callback must be callable (it receives one Msg)")
        if batch_callback is not None and (callback is not None or not callable(batch_callback)):
            raise BadInputError("batch_callback must be callable and comes instead of callback")
        store = (CaptureStore(max_rows=max_rows, max_bytes=max_bytes, spill=spill,
                              budget=self.capture_budget, decode=decode)
                 if capture else None)
        sid = next(self._sids)
        sub = Subscription(self, sid, subject, queue, max_msgs, store, callback,
                           pending_msgs=pending_msgs, pending_bytes=pending_bytes,
                           batch_callback=batch_callback)
        sub.name = name
        return self._start(sub, timeout)

    def _subscribe_internal(self, subject: str, *,
                            sink: Callable[[list[RawMsg], float], Any] | None = None,
                            store: CaptureStore | None = None,
                            timeout: float = 10.0) -> Subscription:
        """A subscription for natsbook's own reads (JetStream history, follow, KV watch).

        Rows go to `sink` (called on the I/O thread; it must only hand them over) and/or to
        `store`, which the caller makes outside the capture budget. Not listed in
        ``subscriptions``, not part of ``to_pandas()``; restored after a reconnect like any
        other. The caller unsubscribes it when its read ends.
        """
        self._check_open()
        check_subscribe(subject)
        sid = next(self._sids)
        sub = Subscription(self, sid, subject, None, None, store, None, sink=sink,
                           internal=True)
        return self._start(sub, timeout)

    def _start(self, sub: Subscription, timeout: float) -> Subscription:
        """Register `sub`, send its SUB and wait until the server has it. On any failure,
        Ctrl-C included, the subscription is taken back: no orphan keeps receiving."""
        frame = encode_sub(sub.subject, sub.sid, sub.queue)
        if sub.max_msgs is not None:
            frame += encode_unsub(sub.sid, sub.max_msgs)
        deadline = time.monotonic() + timeout
        try:
            with self._lock:
                # The SUB counts against the send queue's bound like a publish.
                self._wait_for_room(timeout)
                self._subs[sub.sid] = sub
                self._by_sid[str(sub.sid).encode()] = sub
                if not sub.internal:
                    self._history.append(sub)
                connected = self._status == "connected"
                if connected:
                    self._out.append(frame)
                    self._out_bytes += len(frame)
            if connected:
                self._wake()
                self.flush(max(deadline - time.monotonic(), 0.0))
        except BaseException:
            self._release(sub)
            raise
        return sub

    def _release(self, sub: Subscription) -> None:
        """End a subscription without waiting for anything: one whose subscribe() did not
        complete (timeout, Ctrl-C), or an internal reader whose read is over."""
        with self._lock:
            self._subs.pop(sub.sid, None)
            self._by_sid.pop(str(sub.sid).encode(), None)
            if not sub.internal and sub in self._history:
                self._history.remove(sub)
        sub._stop(discard=True)
        # The SUB may still reach the server: take it back (an UNSUB of an unknown sid is
        # harmless).
        self._queue_nowait(encode_unsub(sub.sid))

    def unsubscribe(self, sub: Subscription | str, *, max_msgs: int | None = None) -> None:
        """Unsubscribe now, or after `max_msgs` messages in total (auto-unsubscribe)."""
        if isinstance(sub, str):
            matching = [s for s in self.subscriptions if s.subject == sub]
            if not matching:
                raise BadInputError(f"no active subscription on {sub!r} - see conn.subscriptions")
            for s in matching:
                self.unsubscribe(s, max_msgs=max_msgs)
            return
        if not sub.active:
            return
        with sub._cond:  # checked and set in one step against the I/O thread's count
            later = max_msgs is not None and max_msgs > sub.received
            if later:
                sub.max_msgs = max_msgs
        if later:
            assert max_msgs is not None
            if self._status == "connected":
                # The server counts from its own SUB; while reconnecting, the re-subscribe
                # sends the remaining limit itself.
                self._queue(encode_unsub(sub.sid, max_msgs - sub._base))
            return
        self._forget(sub)
        if self._status == "connected":
            self._queue(encode_unsub(sub.sid))

    @property
    def subscriptions(self) -> list[Subscription]:
        """Active subscriptions (user ones; the request inbox and natsbook's own JetStream
        readers are internal)."""
        with self._lock:
            return [s for s in self._subs.values() if not s.internal]

    # ------------------------------------------------------------------ request / reply
    def serve(self, subject: str, handler: Callable[[Msg], Any], *, queue: str | None = None,
              capture: bool = False, **kwargs: Any) -> Subscription:
        """Answer requests on `subject` with `handler(msg)`'s return value.

        The return value is sent as the reply (bytes, str, dict/list as JSON; a Msg's data;
        None sends an empty reply). An exception becomes an error reply with the
        ``Nats-Service-Error`` / ``Nats-Service-Error-Code: 500`` headers; the responder keeps
        serving. Use ``queue=`` to run a pool of workers.
        """
        if not callable(handler):
            raise BadInputError("handler must be callable: it receives a Msg, returns the reply")

        def respond(msg: Msg) -> None:
            if not msg.reply:
                return
            try:
                result = handler(msg)
            except Exception as exc:
                self.publish(msg.reply, str(exc).encode("utf-8", "replace"), headers={
                    "Nats-Service-Error": f"{type(exc).__name__}: {exc}".replace("\r", " ")
                    .replace("\n", " "),
                    "Nats-Service-Error-Code": "500",
                })
                raise
            if isinstance(result, Msg):
                self.publish(msg.reply, result.data,
                             headers=result.headers.to_dict() if result.headers else None)
            else:
                self.publish(msg.reply, result)

        return self.subscribe(subject, queue=queue, callback=respond, capture=capture, **kwargs)

    # ------------------------------------------------------------------ closing
    def drain(self, timeout: float = 10.0) -> DrainReport:
        """Unsubscribe everything, let callbacks finish, send what is queued, then close.

        Interrupted (Ctrl-C), it closes at once, without waiting for the server."""
        self._check_open()
        subs = self.subscriptions
        try:
            return self._drain(subs, timeout)
        except BaseException:
            self._close(time.monotonic(), 5.0)
            for sub in subs:  # taken off the list already, so close() did not see them
                sub._stop(discard=True)
            raise

    def _drain(self, subs: list[Subscription], timeout: float) -> DrainReport:
        deadline = time.monotonic() + timeout
        with self._lock:
            self._status = "draining" if self._status == "connected" else self._status
        for sub in subs:
            with self._lock:
                self._subs.pop(sub.sid, None)
            if self._status in ("connected", "draining"):
                with self._lock:
                    frame = encode_unsub(sub.sid)
                    self._out.append(frame)
                    self._out_bytes += len(frame)
        self._wake()
        errors: list[str] = []
        try:
            with self._lock:
                if self._status == "draining":
                    self._status = "connected"
            self.flush(max(deadline - time.monotonic(), 0.01))
        except NatsbookError as exc:
            errors.append(str(exc))
        for sub in subs:
            sub._stop()
        undelivered = 0
        for sub in subs:
            sub.wait_pending(max(deadline - time.monotonic(), 0.0))
            undelivered += sub.stats.pending
        # Publishes made by callbacks while draining.
        try:
            if self._status == "connected":
                self.flush(max(deadline - time.monotonic(), 0.01))
        except NatsbookError as exc:
            errors.append(str(exc))
        with self._lock:
            unsent = self._out_bytes + sum(len(f) for f in self._inflight) - self._inflight_sent
        self._close(deadline, 5.0)
        return DrainReport(undelivered, unsent, tuple(errors))

    def close(self, timeout: float = 5.0) -> None:
        """Send what was published, then close: stop the I/O thread and callbacks.

        Messages published but not yet confirmed are flushed first: sent, and confirmed by
        a PING/PONG round trip (what nats.go's Drain() waits for; its Close() flushes its
        buffer to the socket), within `timeout` seconds, so a server that stops reading
        cannot hold close() longer. What could not be written by then is dropped, counted in
        ``stats["unsent_msgs"]`` and reported in ``conn.errors``. While reconnecting nothing
        is waited for: the reconnect buffer is dropped and counted (as nats.go does).
        ``with natsbook.connect(...) as conn:`` closes this way.

        Args:
            timeout: seconds to wait for the server to take what was published; stopping
                the I/O thread and each callback thread is given up to the same again (at
                most 2 s per callback thread).
        """
        self._close(time.monotonic() + timeout, timeout)

    def _close(self, flush_deadline: float, timeout: float) -> None:
        if self._status == "closed" and (self._thread is None or not self._thread.is_alive()):
            return
        try:
            self._flush_published(flush_deadline)
        finally:
            self._close_now(timeout)

    def _flush_published(self, deadline: float) -> None:
        """Before closing: flush unless every published message was confirmed already (no
        round trip to wait for on a quiet connection). A failure is counted by the close."""
        if self._status != "connected" or threading.current_thread() is self._thread:
            return
        with self._lock:
            if self._published_msgs() <= self._confirmed_msgs:
                return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            self.flush(left)
        except NatsbookError:
            pass

    def _close_now(self, timeout: float) -> None:
        """Stop the I/O thread, count what was not sent, stop callbacks."""
        with self._lock:
            self._stop.set()  # under the lock: _resume checks it there
        self._wake(force=True)
        io = self._thread
        if io is not None and io is not threading.current_thread():
            io.join(timeout)
        try:
            self._shutdown_socket()
            self._set_closed(self._closed_reason or "close() was called")
            if io is None or not io.is_alive() or io is threading.current_thread():
                # Else the I/O thread counts it when it ends (it sees the status closed).
                self._drop_unsent()
            with self._lock:
                subs = list(self._subs.values())
                self._subs.clear()
                self._by_sid.clear()
            for sub in subs:
                try:
                    sub._stop(discard=True)
                except Exception as exc:  # one broken capture must not keep the rest open
                    self._report(f"closing {sub.subject!r}: {type(exc).__name__}: {exc}")
            for sub in subs:
                sub._join(min(timeout, 2.0))
        finally:
            if io is not None and io.is_alive():
                # Still inside a handshake: the I/O thread closes the pipe when it ends, so its
                # fd numbers are not reused under it.
                self._closed_fds_deferred = True
            elif self._wake_r >= 0:
                self._cleanup_fds()
            _live.discard(self)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> str:
        """"connected", "reconnecting", "draining" or "closed"."""
        return self._status

    @property
    def is_connected(self) -> bool:
        return self._status == "connected"

    @property
    def is_closed(self) -> bool:
        return self._status == "closed"

    @property
    def connected_url(self) -> str | None:
        return self._server.url if self._status == "connected" else None

    @property
    def internals(self) -> ConnectionInternals:
        """natsbook's own layers' interface to this connection (internal inboxes, reconnect
        hooks, gap counts, error reports); not for notebooks. See
        ``natsbook/client/_internals.py``."""
        return ConnectionInternals(self)

    @property
    def servers(self) -> list[str]:
        """The server pool (configured and discovered), credentials left out."""
        return [s.url for s in self._pool]

    @property
    def stats(self) -> dict[str, Any]:
        """Counters of this connection.

        ``out_msgs`` / ``out_bytes``: messages and bytes written to the socket (a message
        counts once wholly written, never when only queued). ``pending_msgs``: published
        messages not yet wholly written; ``pending_bytes``: bytes queued that the writer has
        not taken yet (control frames included). ``unsent_msgs``: messages dropped because
        the connection closed before they could be written (close()'s timeout ran out, or
        reconnecting gave up). Every message publish() accepted is in exactly one of
        ``out_msgs``, ``pending_msgs`` and ``unsent_msgs``, in every snapshot. A written
        message may still be lost if the connection drops before the server reads it:
        ``flush()`` confirms, ``gaps()`` shows drops.
        """
        with self._lock:
            out_pending = self._out_bytes
            out_msgs = self._out_msgs
            pending_msgs = self._out_msgs_queued + self._inflight_msgs
            unsent_msgs = self._unsent_msgs
        return {
            "in_msgs": self._in_msgs, "in_bytes": self._in_bytes,
            "out_msgs": out_msgs, "out_bytes": self._out_bytes_total,
            "reconnects": self._reconnects, "errors": len(self.errors),
            "pending_bytes": out_pending, "pending_msgs": pending_msgs,
            "unsent_msgs": unsent_msgs, "unknown_sid_msgs": self._unknown_sid,
            "late_replies": self._late_replies,
            "rtt_ms": None if self._rtt is None else round(self._rtt * 1000, 3),
        }

    def gaps(self) -> pd.DataFrame:
        """Disconnected intervals as a DataFrame: start, end (NaT while ongoing), duration,
        server, reason."""
        with self._lock:
            rows = [(g.start, g.end, g.server, g.reason) for g in self._gaps]
        frame = pd.DataFrame({
            "start": pd.to_datetime(pd.Series([r[0] for r in rows], dtype="float64"), unit="s",
                                    utc=True),
            "end": pd.to_datetime(pd.Series([r[1] for r in rows], dtype="float64"), unit="s",
                                  utc=True),
            "server": pd.Series([r[2] for r in rows], dtype="str"),
            "reason": pd.Series([r[3] for r in rows], dtype="str"),
        })
        frame.insert(2, "duration", frame["end"] - frame["start"])
        return frame

    def to_pandas(self, decode: str = "auto", *, last: int | None = None, since: Any = None,
                  subject: str | None = None) -> pd.DataFrame:
        """Messages of every capture on this connection (active and finished), oldest first,
        with a ``sub`` column naming the subscription's subject pattern."""
        tables = []
        with self._lock:
            history = list(self._history)
        for sub in history:
            if sub.store is None:
                continue
            t = sub.store.table()
            tables.append(t.append_column("sub", pa.array([sub.subject] * t.num_rows,
                                                          pa.string())))
        if not tables:
            from ..capture._store import SCHEMA

            table = SCHEMA.empty_table().append_column("sub", pa.array([], pa.string()))
        else:
            table = pa.concat_tables(tables).sort_by("time")
        table = filter_table(table, subject=subject, since=since, last=last)
        # Through `extra`, so a payload key "sub" gets its own column (data.sub).
        return to_frame(table.drop_columns(["sub"]), decode, extra=[("sub", table["sub"])])

    def publish_frame(self, df: pd.DataFrame, *, subject: str | None = None,
                      data: str | None = None, headers: str | None = None,
                      rate: float | None = None, progress: bool | None = None) -> int:
        """Publish a DataFrame's rows back as messages (replay captured telemetry).

        Args:
            df: e.g. a capture from ``to_pandas()``.
            subject: a column of subjects, or one literal subject for every row; default the
                ``subject`` column.
            data: the payload column. Default: a ``decode="json"`` frame (it has
                ``json_error``) is folded back into the JSON values it was decoded from (README,
                "Decoding contract"); else ``data`` if present; else the columns are folded
                into one object per row (dotted names nest; missing cells are left out).
            headers: a column of header dicts; default ``headers`` if present.
            rate: messages per second (None: as fast as the connection takes them).
            progress: show a progress bar (default: on for long runs).

        Returns:
            The number of messages published (all flushed to the server).

        Raises:
            BadInputError: a row cannot be folded back (a ``json_error`` row, two columns
                filling one key, a cell with no JSON form; the message names the column), or
                a row has a ``header_error`` while headers come from the frame.
        """
        from ..capture._replay import publish_frame

        return publish_frame(self, df, subject=subject, data=data, headers=headers, rate=rate,
                             progress=progress)

    def __repr__(self) -> str:
        where = self._server.url
        return (f"<natsbook.Connection {where} {self._status} "
                f"subs={len(self._subs)} in={self._in_msgs} out={self._out_msgs}>")
