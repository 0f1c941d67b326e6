"""Engine: the protocol engine a Connection owns - the I/O thread and send queue
(``_ioloop.py``, ``_sendqueue.py``), reconnecting (``_reconnect.py``), publishing and requests
(``_publishing.py``), and here the subscription table, closing and the state a Connection
reports. The public API (:class:`natsbook.Connection`, ``natsbook/client/_connection.py``)
states every method and delegates to this class; natsbook's own layers reach it through
``conn.internals`` (``_internals.py``)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..capture._frames import TABLE, DecodeArg, mark
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
from ._events import Gap, live_connections
from ._internals import ConnectionInternals
from ._publishing import Publishing
from ._subscription import DEFAULT_PENDING_BYTES, DEFAULT_PENDING_MSGS, Subscription

__all__ = ["DrainReport", "Engine", "Gap"]


@dataclass(slots=True, frozen=True)
class DrainReport:
    """What drain() could not deliver; all zero means nothing was lost."""

    undelivered_callbacks: int
    unsent_bytes: int
    errors: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.undelivered_callbacks or self.unsent_bytes or self.errors)


class Engine(Publishing):
    """The protocol engine of one connection (see the module's docstring)."""

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, subject: str, *, queue: str | None = None, max_msgs: int | None = None,
                  callback: Callable[[Msg], Any] | None = None, capture: bool = True,
                  max_rows: int | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES,
                  spill: str | os.PathLike[str] | None = None,
                  pending_msgs: int = DEFAULT_PENDING_MSGS,
                  pending_bytes: int = DEFAULT_PENDING_BYTES,
                  batch_callback: Callable[[list[RawMsg], float], Any] | None = None,
                  timeout: float = 10.0, name: str | None = None,
                  decode: DecodeArg | None = None) -> Subscription:
        """See :meth:`natsbook.Connection.subscribe`."""
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
        sid = self._subs.new_sid()
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
        sid = self._subs.new_sid()
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
                self._subs.add(sub.sid, sub)
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
            self._subs.pop(sub.sid)
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
        """See :meth:`natsbook.Connection.subscriptions`."""
        with self._lock:
            return [s for s in self._subs.values() if not s.internal]

    # ------------------------------------------------------------------ request / reply
    def serve(self, subject: str, handler: Callable[[Msg], Any], *, queue: str | None = None,
              capture: bool = False, **kwargs: Any) -> Subscription:
        """See :meth:`natsbook.Connection.serve`."""
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
        """See :meth:`natsbook.Connection.drain`."""
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
                self._subs.pop(sub.sid)
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
        """See :meth:`natsbook.Connection.close`."""
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
                subs = self._subs.values()
                self._subs.clear()
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
            live_connections.discard(self)

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
        """See :meth:`natsbook.Connection.internals`."""
        return ConnectionInternals(self)

    @property
    def servers(self) -> list[str]:
        """The server pool (configured and discovered), credentials left out."""
        return [s.url for s in self._pool]

    @property
    def stats(self) -> dict[str, Any]:
        """See :meth:`natsbook.Connection.stats`."""
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
            "unsent_msgs": unsent_msgs, "unknown_sid_msgs": self._subs.unknown,
            "late_replies": self._late_replies,
            "rtt_ms": None if self._rtt is None else round(self._rtt * 1000, 3),
        }

    def gaps(self) -> pd.DataFrame:
        """See :meth:`natsbook.Connection.gaps`."""
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
        return mark(frame, TABLE)

    def __repr__(self) -> str:
        where = self._server.url
        return (f"<natsbook.Connection {where} {self._status} "
                f"subs={len(self._subs)} in={self._in_msgs} out={self._out_msgs}>")
