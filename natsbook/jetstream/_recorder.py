"""The engine of ``natsbook record``: a durable pull consumer into a Parquet dataset.

One recorder pulls batches from a durable consumer (created when missing, shared with every
other recorder given the same durable name), gathers them into an open part, and rotates the
part by rows, bytes or age: the part is written (``capture._dsfiles.PartWriter``: temporary
name, fsync, rename; one PUT on object storage) and only then are its messages acked, one
explicit ``+ACK`` each (never AckAll: with several recorders on one consumer, acking sequence
N would ack the lower sequences other recorders still hold). A recorder killed at any moment
loses nothing: what it had not acked is delivered again after the consumer's ``ack_wait``, to
whichever recorder pulls next; what it wrote but did not ack is written twice and read once
(the readers drop a ``stream_seq`` seen before).

Memory is bounded by the part (``part_bytes``) plus one pull (``max_bytes`` of the request,
at least the server's max_payload). ``ack_wait`` defaults to twice the part age plus 30 s; a
part kept open longer than half the consumer's ``ack_wait`` (a slow write, a consumer created
with a short one) gets ``+WPI`` (work in progress) for its messages so they are not delivered
elsewhere meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..capture._dsfiles import DATASET_SCHEMA, PartWriter
from ..capture._frames import to_frame
from ..capture._store import SCHEMA, text_array
from ..errors import BadInputError, JetStreamError, NatsbookError
from ..wire._protocol import RawMsg
from ..wire._subjects import check_subscribe
from ._jsapi import API, api_request, stream_call
from ._jsparse import parse_acked

if TYPE_CHECKING:
    from ..core import Link, Subscription

__all__ = ["Recorder", "RecorderStats"]

_SEC = 1_000_000_000
PULL_BYTES = 8 * 1024 * 1024


@dataclass(slots=True)
class RecorderStats:
    """What one recorder did so far."""

    #: Messages delivered to this recorder (redeliveries included).
    received: int = 0
    #: Messages written into parts (each part's rows).
    written: int = 0
    #: Messages acked (after their part was written).
    acked: int = 0
    #: Part files written.
    parts: int = 0
    #: Acks that could not be sent (the connection was down): those messages are delivered
    #: again and written again; readers keep one copy.
    ack_failures: int = 0
    #: Messages in the stream the consumer has not delivered yet (as of the last delivery).
    lag: int = 0
    #: The highest stream sequence received.
    last_seq: int = 0
    #: Paths of the parts written.
    paths: list[str] = field(default_factory=list)


def _overlap(a: str, b: str) -> bool:
    """Whether some subject matches both patterns."""
    ta, tb = a.split("."), b.split(".")
    for i in range(max(len(ta), len(tb))):
        if i >= len(ta) or i >= len(tb):
            return False
        x, y = ta[i], tb[i]
        if x == ">" or y == ">":
            return True
        if x != y and "*" not in (x, y):
            return False
    return True


class Recorder:
    """Record `stream` through the durable pull consumer `durable` into the dataset at `out`.

    Args:
        conn: any connection (a ``natsbook.Connection``).
        stream: the stream to record.
        out: a local folder or an object-store URL (``s3://bucket/prefix``).
        durable: the consumer name; recorders sharing it share the work.
        subjects: a filter subject (only with a new consumer; an existing one keeps its own).
        decode: the decode the dataset declares for its readers (a name ``read_capture``
            accepts); payloads are stored raw either way.
        part_rows / part_bytes / part_age: rotate the open part at this many rows, payload
            bytes or seconds, whichever comes first.
        ack_wait: the consumer's ack wait in seconds when it is created (default
            ``2 * part_age + 30``).
        max_ack_pending: the consumer's bound on unacked messages over all its recorders
            (default 1,000,000; each recorder holds up to a part of them).
    """

    def __init__(self, conn: Link, stream: str, out: str, *, durable: str = "natsbook-record",
                 subjects: str | None = None, decode: str | None = None,
                 part_rows: int = 250_000, part_bytes: int = 64 * 1024 * 1024,
                 part_age: float = 60.0, batch: int = 1000, ack_wait: float | None = None,
                 max_ack_pending: int = 1_000_000, pull_wait: float = 1.0,
                 timeout: float = 5.0) -> None:
        if decode is not None:
            to_frame(SCHEMA.empty_table(), decode)  # BadInputError naming the known decodes
        if not durable or any(c in durable for c in " .*>\t\r\n"):
            raise BadInputError(f"bad durable name {durable!r}: no spaces, '.', '*' or '>'")
        for name, value in (("part_rows", part_rows), ("part_bytes", part_bytes),
                            ("part_age", part_age), ("batch", batch)):
            if value <= 0:
                raise BadInputError(f"{name}={value} must be > 0")
        self.conn = conn
        self.stream = stream
        self.durable = durable
        self.subjects = subjects
        self.part_rows, self.part_bytes, self.part_age = part_rows, part_bytes, part_age
        self.batch = batch
        self.ack_wait = 2 * part_age + 30 if ack_wait is None else ack_wait
        self.max_ack_pending = max_ack_pending
        self.pull_wait = pull_wait
        self.timeout = timeout
        self.stats = RecorderStats()
        info = stream_call(conn, "STREAM.INFO", stream, None, timeout)  # NotFoundError
        if subjects is not None:
            check_subscribe(subjects)  # BadSubjectError naming what is wrong
            own = info.get("config", {}).get("subjects") or []
            if own and not any(_overlap(subjects, s) for s in own):
                raise BadInputError(
                    f"subjects={subjects!r} matches none of stream {stream!r}'s subjects "
                    f"{own} - its consumer would never deliver anything; give a filter "
                    "within them, or leave it out to record the whole stream")
        self.writer = PartWriter(out, stream=stream, decode=decode)
        self._cond = threading.Condition()
        self._rows: list[RawMsg] = []
        self._ends: dict[bytes, RawMsg] = {}
        self._n = 0
        self._tables: list[pa.Table] = []
        self._replies: list[pa.Array] = []
        self._open_rows = 0
        self._open_bytes = 0
        self._opened = 0.0
        self._touched = 0.0
        self._sub: Subscription | None = None
        self.consumer: dict[str, Any] = {}

    # -- the consumer ------------------------------------------------------------------
    def ensure_consumer(self) -> dict[str, Any]:
        """The durable's info, creating it when missing; an existing one must ack explicitly."""
        try:
            info = api_request(self.conn, f"CONSUMER.INFO.{self.stream}.{self.durable}",
                               timeout=self.timeout)
        except JetStreamError as exc:
            if exc.code != 404:
                raise
            cfg: dict[str, Any] = {
                "durable_name": self.durable, "ack_policy": "explicit",
                "deliver_policy": "all", "ack_wait": int(self.ack_wait * _SEC),
                "max_ack_pending": self.max_ack_pending, "max_waiting": 512,
                "description": "natsbook record"}
            if self.subjects and self.subjects != ">":
                cfg["filter_subject"] = self.subjects
            info = api_request(self.conn, f"CONSUMER.CREATE.{self.stream}.{self.durable}",
                               {"stream_name": self.stream, "config": cfg},
                               timeout=self.timeout)
        config = info.get("config", {})
        if config.get("ack_policy") != "explicit" or config.get("deliver_subject"):
            raise JetStreamError(
                f"consumer {self.durable!r} on {self.stream!r} exists but is not a pull "
                "consumer with explicit acks - give natsbook record another --durable name")
        # one filter (filter_subject), several (filter_subjects, 2.10+) or none (">")
        filters = config.get("filter_subjects") or [config.get("filter_subject") or ">"]
        if self.subjects and filters != [self.subjects]:
            shown = filters[0] if len(filters) == 1 else filters
            raise JetStreamError(
                f"consumer {self.durable!r} filters {shown!r}, not {self.subjects!r} - use "
                "another --durable, or leave --subjects out")
        self.consumer = info
        self.ack_wait = config.get("ack_wait", int(self.ack_wait * _SEC)) / _SEC
        # A delivery waits in its pull at most pull_wait before the part holds it: well
        # within the ack wait, so the +WPI at half of it always comes in time.
        self.pull_wait = min(self.pull_wait, self.ack_wait / 4)
        return info

    def _check_consumer(self) -> None:
        """Pulls go unanswered: raise if the consumer is gone (deleted), else carry on (the
        server is away or electing a leader; the connection reconnects by itself)."""
        try:
            api_request(self.conn, f"CONSUMER.INFO.{self.stream}.{self.durable}",
                        timeout=self.timeout)
        except JetStreamError as exc:
            if exc.code == 404:
                raise JetStreamError(
                    f"consumer {self.durable!r} on {self.stream!r} is gone (deleted?) - start "
                    "the recorder again to create it; the new one starts from the beginning "
                    "of the stream", code=404) from None
        except NatsbookError:
            pass

    # -- pulling -----------------------------------------------------------------------
    def _sink(self, rows: list[RawMsg], now: float) -> None:
        """On the I/O thread: hand the rows over, never block."""
        with self._cond:
            for r in rows:
                if (r[1] or b"").startswith(b"$JS.ACK."):
                    self._rows.append(r)
                elif r[2] is not None and r[2].startswith(b"NATS/1.0 ") \
                        and not r[2].startswith(b"NATS/1.0 100"):
                    self._ends[r[0]] = r
            self._cond.notify_all()

    def _pull(self, want: int, no_wait: bool,
              wait: float | None = None) -> tuple[int, int | None, str]:
        """One pull request: (messages delivered, the status that ended it or None when
        `want` arrived or nothing answered, its description)."""
        assert self._sub is not None
        self._n += 1
        reply = f"{self._prefix}.{self._n}"
        key = reply.encode()
        max_bytes = max(PULL_BYTES, int(self.conn.server_info.get("max_payload", 0)) + 4096)
        req: dict[str, Any] = {"batch": want, "max_bytes": max_bytes}
        if no_wait:
            req["no_wait"] = True
        else:
            wait = self.pull_wait if wait is None else wait
            req["expires"] = int(wait * _SEC)
        with self._cond:
            start = len(self._rows)
        try:
            self.conn.publish(f"{API}CONSUMER.MSG.NEXT.{self.stream}.{self.durable}", req,
                              reply=reply)
        except NatsbookError:
            return 0, None, "not connected"  # reconnecting: the next pull tries again
        deadline = time.monotonic() + (0 if no_wait else wait or 0) + self.timeout
        with self._cond:
            while True:
                end = self._ends.pop(key, None)
                got = len(self._rows) - start
                if end is not None or got >= want:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return got, None, "no answer"
                self._cond.wait(min(left, 0.25))
        if end is None:
            return got, None, ""
        head = (end[2] or b"").split(b"\r\n", 1)[0].decode("utf-8", "replace")
        parts = head.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return got, code, parts[2] if len(parts) > 2 else ""

    def _take(self) -> None:
        """Move what arrived into the open part, as Arrow."""
        with self._cond:
            rows, self._rows = self._rows, []
        if not rows:
            return
        raw = pa.table({
            "subject": text_array([r[0] for r in rows]),
            "reply": text_array([r[1] for r in rows]),
            "headers": pa.array([r[2] for r in rows], pa.binary()),
            "payload": pa.array([r[3] for r in rows], pa.binary()),
        })
        table, _, pending = parse_acked(raw)
        table = table.rename_columns([*SCHEMA.names, "stream_seq"]).cast(DATASET_SCHEMA)
        if not self._open_rows:
            self._opened = self._touched = time.monotonic()
        self._tables.append(table)
        self._replies.append(raw["reply"])
        self._open_rows += table.num_rows
        self._open_bytes += table["payload"].nbytes + table["headers"].nbytes
        st = self.stats
        st.received += table.num_rows
        st.lag = int(pending[-1].as_py())
        st.last_seq = max(st.last_seq, int(table["stream_seq"][-1].as_py()))

    def _ack(self, verb: bytes) -> int:
        """Send `verb` for every message of the open part; how many could not be sent."""
        failed = 0
        for arr in self._replies:
            for reply in arr.to_pylist():
                try:
                    self.conn.publish(reply, verb)
                except NatsbookError:
                    failed += 1
        try:
            self.conn.flush(self.timeout)
        except NatsbookError:
            failed = failed or sum(len(a) for a in self._replies)
        return failed

    def flush(self, *, ack: bool = True) -> list[str]:
        """Write the open part, then ack its messages (a failed write raises DatasetError and
        acks nothing). ``ack=False``: the consumer is gone, there is nothing to ack."""
        if not self._open_rows:
            return []
        paths = self.writer.write(pa.concat_tables(self._tables))
        failed = self._ack(b"+ACK") if ack else self._open_rows
        st = self.stats
        st.written += self._open_rows
        st.acked += self._open_rows - min(failed, self._open_rows)
        if failed and ack:
            st.ack_failures += failed
            self.conn.internals.report(f"natsbook record: {failed} acks could not be sent "
                                       "(disconnected); those messages will be recorded again "
                                       "and read once")
        st.parts += len(paths)
        st.paths.extend(paths)
        self._tables, self._replies = [], []
        self._open_rows = self._open_bytes = 0
        return paths

    def _due(self) -> bool:
        # A part holding the consumer's whole max_ack_pending gets nothing more until it is
        # acked (a consumer made elsewhere with a small one): rotate it now, not at part_age.
        window = self.consumer.get("config", {}).get("max_ack_pending", -1)
        return bool(self._open_rows) and (
            self._open_rows >= self.part_rows or self._open_bytes >= self.part_bytes
            or time.monotonic() - self._opened >= self.part_age
            or (isinstance(window, int) and 0 < window <= self._open_rows))

    # -- the loop ----------------------------------------------------------------------
    def run(self, stop: threading.Event, *, once: bool = False,
            report: Callable[[RecorderStats], Any] | None = None,
            every: float = 5.0) -> RecorderStats:
        """Record until `stop` is set (then write the open part, ack it and return) or, with
        `once`, until the consumer has nothing more to deliver now. A failed part write
        raises DatasetError with nothing of that part acked."""
        self.ensure_consumer()
        self._prefix = self.conn.new_inbox()
        self._sub = self.conn.internals.subscribe(self._prefix + ".*", sink=self._sink,
                                                  timeout=self.timeout)
        shown = time.monotonic()
        silent = 0  # pulls in a row that nothing answered
        held = 0  # --once: "Requests Pending" answers in a row
        try:
            while not stop.is_set():
                want = max(1, min(self.batch, self.part_rows - self._open_rows))
                wait = self.pull_wait
                if self._open_rows:  # no longer than the part may stay open, or until +WPI
                    now = time.monotonic()
                    wait = min(wait, max(0.05, min(self._opened + self.part_age,
                                                   self._touched + self.ack_wait / 2) - now))
                got, code, text = self._pull(want, no_wait=once, wait=wait)
                self._take()
                if self._due():
                    self.flush()
                elif self._open_rows and \
                        time.monotonic() - self._touched >= self.ack_wait / 2:
                    self._ack(b"+WPI")
                    self._touched = time.monotonic()
                if report is not None and time.monotonic() - shown >= every:
                    shown = time.monotonic()
                    report(self.stats)
                if code == 409 and "deleted" in text.lower():
                    # With its stream deleted, the open part's messages exist nowhere else.
                    self.flush(ack=False)
                    raise JetStreamError(f"consumer {self.durable!r} (or stream "
                                         f"{self.stream!r}) was deleted while recording; what "
                                         "was received is written - start the recorder again "
                                         "to create it", code=409)
                if code in (400, 401, 403):
                    raise JetStreamError(f"pulling from {self.durable!r}: {code} {text}",
                                         code=code)
                if got == 0:
                    if once and code in (404, 408):
                        if self._open_rows:
                            # Nothing more now - or the consumer's max_ack_pending holds the
                            # rest back until this part is acked: write and ack it, ask again.
                            self.flush()
                            continue
                        if code == 404 or "pending" not in text.lower() or held > 50:
                            break
                        # 408 Requests Pending: an earlier pull of ours still waits on the
                        # server (held back by max_ack_pending): let it deliver.
                        held += 1
                        stop.wait(0.1)
                        continue
                    if code in (None, 409, 503):
                        # unanswered, an ended pull, or no responders: the consumer's pull
                        # subject has no listener when the consumer was deleted between pulls
                        silent += 1
                        if silent % 5 == 0:
                            try:
                                self._check_consumer()
                            except JetStreamError:
                                self.flush(ack=False)  # as for a 409 above
                                raise
                        stop.wait(0.2)  # reconnecting or a leader change: try again
                else:
                    silent = held = 0
            self._take()
            self.flush()
            if report is not None:
                report(self.stats)
            return self.stats
        finally:
            self.conn.internals.release(self._sub)
