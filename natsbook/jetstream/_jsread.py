"""The JetStream read machinery below :mod:`natsbook.jetstream`: stored messages off the wire
(the parsing into Arrow tables lives in :mod:`natsbook.jetstream._jsparse`).

Two ways in. *Batched direct get* (server >= 2.11, streams with ``allow_direct``): every
request's replies land in one internal reader (``Batches``: an internal subscription outside
the user's captures and the capture budget, released when the read ends). *Consumer
deliveries*: an ephemeral consumer with no acks, pulled in batches (``consumer_read``) or
pushed (``PushCapture``, behind ``follow()`` and KV watches). A history read returns every
message it asked for or raises.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..capture._store import CaptureStore, text_array
from ..errors import JetStreamError, NatsbookError, NotFoundError, Timeout
from ..wire._msg import Msg
from ..wire._protocol import RawMsg
from ._jsapi import API, api_request, stream_call
from ._jsparse import parse_acked

if TYPE_CHECKING:
    from .._progress import Progress
    from ..core import Link, Subscription

__all__ = ["BATCH_BYTES", "PushCapture"]

#: Bytes asked for per direct-get batch: small enough that the server never queues more than
#: a few MiB for us (the message count per batch is the caller's ``batch``).
BATCH_BYTES = 8 * 1024 * 1024


# ---------------------------------------------------------------------------------- reading
def rfc3339(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.value % 1_000_000_000:09d}Z"


#: Raw reply bytes an internal reader may hold before its thread takes them: a batch is
#: bounded by BATCH_BYTES (direct get) or by the pull's message count; past this the read
#: raises instead of keeping an unbounded buffer.
READ_BUFFER = 256 * 1024 * 1024
#: Rows the reading thread converts to Arrow at a time while a batch is still arriving.
TAKE_ROWS = 16_384


def _raw_table(rows: list[RawMsg]) -> pa.Table:
    """Reply rows as the raw columns the parsers read (subject, reply, headers, payload)."""
    return pa.table({
        "subject": text_array([r[0] for r in rows]),
        "reply": text_array([r[1] for r in rows]),
        "headers": pa.array([r[2] for r in rows], pa.binary()),
        "payload": pa.array([r[3] for r in rows], pa.binary()),
    })


class Batches:
    """An internal reader: one internal subscription on ``<inbox>.*``; each request replies to
    its own token, so the end of a batch is simply a status message on that batch's subject.

    Replies go straight to this reader (a sink called on the I/O thread), never into a
    capture: nothing here counts against the connection's capture budget, shows in
    ``conn.to_pandas()`` or outlives ``close()``. The reading thread turns the rows into Arrow
    as they arrive, so the raw buffer stays within about one batch; a read that would lose a
    reply raises (buffer overflow, a reconnect in the middle of the read) rather than return
    a short table.
    """

    def __init__(self, conn: Link, timeout: float, *,
                 max_buffer: int | None = None) -> None:
        self.conn = conn
        self.timeout = timeout
        self.prefix = conn.new_inbox()
        self._cond = threading.Condition()
        self._rows: list[RawMsg] = []
        self._held = 0
        self._max_buffer = READ_BUFFER if max_buffer is None else max_buffer
        self._chunks: list[pa.Table] = []
        self._ends: dict[bytes, RawMsg] = {}
        self._overflow = False
        #: Data rows received (status messages not included).
        self.received = 0
        #: The newest data row received.
        self.last: RawMsg | None = None
        self._n = 0
        inside = conn.internals
        with inside.lock:
            self._gaps = inside.gap_count()
        self.sub: Subscription = inside.subscribe(self.prefix + ".*", sink=self._sink,
                                                  timeout=timeout)

    def _sink(self, rows: list[RawMsg], now: float) -> None:
        """On the I/O thread: hand the rows over, never block."""
        data: list[RawMsg] = []
        ends: list[RawMsg] = []
        for r in rows:
            h = r[2]
            if h is not None and not r[3] and h.startswith(b"NATS/1.0 "):
                if not h.startswith(b"NATS/1.0 100"):  # heartbeats end nothing
                    ends.append(r)
            else:
                data.append(r)
        with self._cond:
            if data:
                size = sum(len(r[3]) + len(r[2] or b"") + len(r[0]) for r in data)
                if self._held + size > self._max_buffer:
                    self._overflow = True
                else:
                    self._rows.extend(data)
                    self._held += size
                    self.received += len(data)
                    self.last = data[-1]
            for r in ends:
                self._ends[r[0]] = r
            self._cond.notify_all()

    def _check(self) -> None:
        if self._overflow:
            raise JetStreamError(f"a JetStream read got more than {self._max_buffer} bytes ahead "
                                 "of the reading thread; nothing was returned - read in smaller "
                                 "parts (max_rows=, start_seq=)")
        if self.conn.internals.gap_count() != self._gaps or self.conn.is_closed:
            self.conn.internals.check_open()
            raise JetStreamError("the connection dropped during a JetStream read, so replies "
                                 "may be missing; nothing was returned - read again")

    def _take(self) -> None:
        """Move what arrived into Arrow (on the reading thread, outside the I/O path)."""
        with self._cond:
            rows, self._rows, self._held = self._rows, [], 0
        if rows:
            self._chunks.append(_raw_table(rows))

    def request(self, subject: str, payload: dict[str, Any], want: int | None = None) -> Any:
        """Send a request and wait for the status that ends its replies (or `want` rows)."""
        self._n += 1
        reply = f"{self.prefix}.{self._n}"
        key = reply.encode()
        with self._cond:
            start = self.received
        self.conn.publish(subject, payload, reply=reply)
        deadline = time.monotonic() + self.timeout
        seen = start
        while True:
            with self._cond:
                self._check()
                end = self._ends.pop(key, None)
                got = self.received
                if end is None and not (want is not None and got - start >= want) \
                        and len(self._rows) < TAKE_ROWS:
                    if got != seen:  # progress: a slow but moving read never times out
                        seen = got
                        deadline = time.monotonic() + self.timeout
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Timeout(f"JetStream stopped answering {subject!r} for "
                                      f"{self.timeout:g}s in the middle of a read - the server "
                                      "may be overloaded; raise timeout=")
                    self._cond.wait(min(left, 0.25))
                    continue
            if end is not None:
                self._take()
                return Msg.from_raw(*end, time=time.time(), conn=self.conn)
            if want is not None and got - start >= want:
                self._take()
                return None  # a pull delivers exactly `want` with no status after them
            self._take()

    def table(self) -> pa.Table:
        self._take()
        with self._cond:
            self._check()
        if not self._chunks:
            return _raw_table([])
        return pa.concat_tables(self._chunks)

    def close(self) -> None:
        """Release the subscription (never blocks: safe in a finally after Ctrl-C)."""
        self.conn.internals.release(self.sub)


def direct_read(conn: Link, stream: str, *, seq: int | None, start_time: str | None,
                 subject: str | None, stop_seq: int, max_rows: int | None,
                 batch: int, progress: Progress, timeout: float) -> pa.Table:
    api = f"{API}DIRECT.GET.{stream}"
    reader = Batches(conn, timeout)
    got = 0
    try:
        req: dict[str, Any] = {"start_time": start_time} if start_time else {"seq": seq or 1}
        while True:
            want = batch if max_rows is None else min(batch, max_rows - got)
            if "seq" in req:
                want = min(want, stop_seq - req["seq"] + 1)
            if want <= 0:
                break
            req.update(batch=want, max_bytes=BATCH_BYTES)
            if subject and subject != ">":
                req["next_by_subj"] = subject
            end = reader.request(api, req)
            if end.status == 404:
                break
            if end.status != 204:
                raise JetStreamError(f"direct get on stream {stream!r} answered "
                                     f"{end.status} {end.description}", code=end.status)
            h = end.headers
            rows = reader.received
            if rows <= got:
                break
            got = rows
            progress.update(got)
            last = int(h.get("Nats-Last-Sequence", "0"))
            if (int(h.get("Nats-Num-Pending", "0")) == 0 or last >= stop_seq
                    or (max_rows is not None and got >= max_rows)):
                break
            req = {"seq": last + 1}
        return reader.table()
    finally:
        reader.close()


def consumer_read(conn: Link, stream: str, *, seq: int | None, start_time: str | None,
                   subject: str | None, stop_seq: int, max_rows: int | None,
                   batch: int, progress: Progress, timeout: float) -> pa.Table:
    cfg: dict[str, Any] = {"ack_policy": "none", "mem_storage": True, "num_replicas": 1,
                           "inactive_threshold": 30_000_000_000, "max_batch": batch}
    if start_time:
        cfg.update(deliver_policy="by_start_time", opt_start_time=start_time)
    else:
        cfg.update(deliver_policy="by_start_sequence", opt_start_seq=max(seq or 1, 1))
    if subject and subject != ">":
        cfg["filter_subject"] = subject
    info = stream_call(conn, "CONSUMER.CREATE", stream, {"stream_name": stream, "config": cfg},
                        timeout)
    name = info["name"]
    total = int(info.get("num_pending", 0))
    reader = Batches(conn, timeout)
    done = False
    try:
        got = 0
        while got < total and (max_rows is None or got < max_rows):
            want = min(batch, total - got, (max_rows or total) - got)
            end = reader.request(f"{API}CONSUMER.MSG.NEXT.{stream}.{name}",
                                 {"batch": want, "no_wait": True}, want=want)
            got = reader.received
            progress.update(got)
            last = reader.last
            if end is not None or last is None or not (last[1] or b"").startswith(b"$JS.ACK."):
                break  # 404 No Messages: nothing more to read now
            toks = (last[1] or b"").decode().split(".")
            v1 = len(toks) == 9
            if int(toks[-4 if v1 else -5]) >= stop_seq or int(toks[-1 if v1 else -2]) == 0:
                break
        table = reader.table()
        last = reader.last
        if last is not None and (last[1] or b"").startswith(b"$JS.ACK."):
            # The consumer numbers its deliveries 1, 2, 3...: fewer rows than the last number
            # means deliveries went missing on the way.
            toks = (last[1] or b"").decode().split(".")
            cseq = int(toks[-3 if len(toks) == 9 else -4])
            if cseq != table.num_rows:
                raise JetStreamError(f"reading stream {stream!r}: {cseq - table.num_rows} of "
                                     f"{cseq} deliveries went missing; nothing was returned - "
                                     "read again")
        done = True
        return table
    finally:
        reader.close()
        delete_read_consumer(conn, stream, name, timeout, wait=done)


def delete_read_consumer(conn: Link, stream: str, name: str, timeout: float,
                     wait: bool) -> None:
    """Delete an ephemeral consumer. After a failure or Ctrl-C, only send the request (the
    server may be the reason we are here, and the consumer expires by itself anyway)."""
    subject = f"CONSUMER.DELETE.{stream}.{name}"
    try:
        if wait:
            api_request(conn, subject, timeout=timeout)
        else:
            conn.publish(API + subject, b"", reply=conn.new_inbox())
    except NatsbookError:
        pass  # an inactive ephemeral consumer goes away by itself


def first_at(conn: Link, name: str, ts: pd.Timestamp, direct: bool,
              timeout: float) -> int | None:
    """Sequence of the first message stored at or after `ts` (None: there is none)."""
    if direct:
        msg = conn.request(f"{API}DIRECT.GET.{name}", {"start_time": rfc3339(ts)},
                           timeout=timeout)
        if msg.status is not None or msg.headers is None:
            return None
        return int(msg.headers.get("Nats-Sequence", "0")) or None
    try:
        body = stream_call(conn, "STREAM.MSG.GET", name, {"start_time": rfc3339(ts)}, timeout)
    except JetStreamError as exc:
        if exc.code == 404 and not isinstance(exc, NotFoundError):
            return None
        raise
    return int(body["message"]["seq"])


# ---------------------------------------------------------------------------------- push
#: How long the server keeps a follow/watch consumer without interest: long enough to ride out
#: a reconnect (delivery resumes where it stopped), short enough that a dead kernel's consumer
#: goes away by itself.
INACTIVE_THRESHOLD_NS = 300 * 1_000_000_000


class PushCapture:
    """An ephemeral push consumer (no acks) delivering into a capture of its own.

    The building block of :func:`natsbook.jetstream.follow` and KV watches. Deliveries are
    parsed lazily, in bulk, when you ask for a table or a frame. The capture is internal: not
    under the connection's capture budget (``max_bytes`` is its only bound), not among
    ``conn.subscriptions`` or in ``conn.to_pandas()``.
    """

    def __init__(self, conn: Link, stream: str, config: dict[str, Any], *,
                 timeout: float = 5.0, max_bytes: int | None = None) -> None:
        self.conn = conn
        self.stream = stream
        self.deliver_subject = conn.new_inbox()
        self.sub = conn.internals.subscribe(self.deliver_subject,
                                            store=CaptureStore(max_bytes=max_bytes),
                                            timeout=timeout)
        cfg = {"ack_policy": "none", "mem_storage": True, "num_replicas": 1,
               "deliver_subject": self.deliver_subject,
               "inactive_threshold": INACTIVE_THRESHOLD_NS,
               **config}
        try:
            info = stream_call(conn, "CONSUMER.CREATE", stream,
                                {"stream_name": stream, "config": cfg}, timeout)
        except BaseException:
            conn.internals.release(self.sub)
            raise
        self.consumer = info["name"]
        self.timeout = timeout
        self._config = cfg
        #: How often the consumer had to be created again after a reconnect.
        self.recreated = 0
        conn.internals.add_reconnect_hook(self._repair)

    def _repair(self) -> None:
        """After a reconnect: if the server lost the consumer (a restart wipes in-memory
        consumers; or no interest for longer than the inactive threshold), create it again
        from the stream sequence after the last one delivered, so the live capture goes on
        with nothing skipped or repeated."""
        if not self.sub.active:
            return
        try:
            api_request(self.conn, f"CONSUMER.INFO.{self.stream}.{self.consumer}",
                        timeout=self.timeout)
            return
        except JetStreamError as exc:
            if exc.code != 404:
                raise
        table, _ = self.table()
        cfg = dict(self._config)
        if table.num_rows:
            next_seq = int(pc.max(table["seq"]).as_py()) + 1
            cfg.pop("opt_start_time", None)
            cfg.update(deliver_policy="by_start_sequence", opt_start_seq=next_seq)
            where = f"stream sequence {next_seq}"
        else:
            where = "its original start"
        info = stream_call(self.conn, "CONSUMER.CREATE", self.stream,
                            {"stream_name": self.stream, "config": cfg}, self.timeout)
        self.consumer = info["name"]
        self.recreated += 1
        self.conn.internals.report(f"the consumer following {self.stream!r} was gone after the "
                          f"reconnect; created it again from {where}")

    def table(self) -> tuple[pa.Table, pa.Array]:
        """Delivered messages (SCHEMA + seq) and their consumer sequences."""
        table, cseq, _ = parse_acked(self.sub.to_arrow())
        return table, cseq

    def missed(self) -> int:
        """Deliveries lost on the way (consumer sequence gaps, e.g. across a reconnect)."""
        _, cseq = self.table()
        if len(cseq) < 2:
            return 0
        c = cseq.to_numpy()
        return int(np.clip(np.diff(c) - 1, 0, None).sum())

    def stop(self) -> None:
        """Delete the consumer and stop the subscription (stored rows stay readable)."""
        self.conn.internals.remove_reconnect_hook(self._repair)
        if not self.sub.active:
            return
        # Stop receiving first (never blocks), then delete the consumer: interrupted there,
        # nothing is left delivering into this capture.
        self.conn.internals.release(self.sub)
        try:
            api_request(self.conn, f"CONSUMER.DELETE.{self.stream}.{self.consumer}",
                        timeout=self.timeout)
        except NatsbookError:
            pass  # closed connection or gone server: the consumer expires by itself
