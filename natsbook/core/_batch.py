"""Many requests at once: ``request_batch`` (a load test from the kernel's own thread, at most
`concurrency` in flight) and ``request_many`` (scatter-gather: every reply to one request).

Neither starts a thread. ``request_batch`` registers its requests in the connection's muxed
reply map with slots that the I/O thread files into one completion queue; the caller's thread
sends up to `concurrency` requests in one frame, then wakes only when replies are waiting (or a
deadline is due) and tops the window up again with one send for all the replies it found.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from .._progress import Progress
from ..capture._frames import DecodeArg, to_frame
from ..capture._store import SCHEMA
from ..errors import BadInputError, MaxPayloadError, NoRespondersError, ProtocolError
from ..wire._msg import encode_payload, header_items
from ..wire._protocol import (
    RawMsg,
    encode_headers,
    encode_pub,
    parse_headers,
    service_error_code,
)
from ..wire._subjects import check_publish

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["request_batch", "request_many"]

_SERVICE_ERROR = b"\r\nnats-service-error:"
#: Runs this long show a progress bar by default.
PROGRESS_MIN = 2000


def _reply_error(hdr: bytes | None) -> tuple[str, int | None, str] | None:
    """What error a reply stands for, from its header block alone: (class name, code, text),
    as ``request()`` raises it, or None for a good reply."""
    if not hdr:
        return None
    lowered = hdr.lower()
    no_responders = hdr.startswith(b"NATS/1.0 503")
    if not no_responders and _SERVICE_ERROR not in lowered:
        return None
    try:
        status, description, items = parse_headers(hdr)
    except ProtocolError as exc:
        return "ProtocolError", None, f"malformed reply headers: {exc}"
    if no_responders:
        return "NoRespondersError", status, description or "no responders"
    text = ""
    code = 500
    found = False
    for key, value in items:
        # Header names are case-sensitive, as request() and nats.go read them.
        if key == "Nats-Service-Error" and not found:
            text, found = value, True
        elif key == "Nats-Service-Error-Code" and (number := service_error_code(value)) is not None:
            code = number
    if not found:
        return None
    return "ServiceError", code, text



class _Done:
    """Where the I/O thread files finished slots; the caller sleeps on `wake` only when
    nothing is there (so a busy run costs no signalling at all)."""

    __slots__ = ("queue", "waiting", "wake")

    def __init__(self) -> None:
        self.queue: deque[_Slot] = deque()
        self.wake = threading.Event()
        self.waiting = False


class _Slot:
    """One request of a batch, in the connection's reply map (duck-typed like Waiter: the
    reply router calls take(); closing sets lost and calls event.set())."""

    __slots__ = ("done", "index", "lost", "row", "t_mono", "t_recv")

    def __init__(self, done: _Done, index: int) -> None:
        self.done = done
        self.index = index
        self.lost = False
        self.row: RawMsg | None = None
        self.t_recv = 0.0
        self.t_mono = 0.0

    @property
    def event(self) -> _Slot:
        return self

    def take(self, row: RawMsg, now: float) -> None:  # on the I/O thread
        self.row = row
        self.t_recv = now
        self.t_mono = time.monotonic()
        self.set()

    def set(self) -> None:
        done = self.done
        done.queue.append(self)
        if done.waiting:
            done.wake.set()


def _table(subject: str, inboxes: list[str], times: list[int | None],
           rows: list[RawMsg | None]) -> pa.Table:
    """One capture row per request (None in `rows`: no reply): ``subject`` is the request's
    subject and ``reply`` the inbox it asked to be answered on (where the reply arrived), so
    a row reads as the request it stands for; headers and payload are the reply's."""
    return pa.Table.from_arrays([
        pa.array(times, pa.int64()).cast(SCHEMA.field("time").type),
        pa.array([subject] * len(rows), pa.string()),
        pa.array(inboxes, pa.string()),
        pa.array([r[2] if r else None for r in rows], pa.binary()),
        pa.array([r[3] if r else None for r in rows], pa.binary()),
    ], schema=SCHEMA)


def _check_positive(name: str, value: Any, *, integer: bool = False,
                    none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        what = "a positive int" if integer else "a positive number of seconds"
        raise BadInputError(f"{name}={value!r} must be {what}" + (" or None" if none_ok else ""))


def request_batch(conn: Engine, subject: str, payloads: Iterable[Any], *,
                  concurrency: int = 100, timeout: float = 5.0,
                  headers: Mapping[str, Any] | None = None, decode: DecodeArg = "auto",
                  progress: bool | None = None) -> pd.DataFrame:
    """Connection.request_batch (documented there)."""
    conn._check_open()
    check_publish(subject)
    _check_positive("concurrency", concurrency, integer=True)
    _check_positive("timeout", timeout)
    bodies = [encode_payload(p) for p in payloads]
    hdr = encode_headers(header_items(headers)) if headers else None
    for body in bodies:
        size = len(body) + (len(hdr) if hdr else 0)
        if size > conn.max_payload:
            raise MaxPayloadError(size, conn.max_payload)
    n = len(bodies)
    conn._ensure_resp_sub(timeout)
    subj = subject.encode()
    prefix = conn._resp_prefix
    done = _Done()
    slots: list[_Slot | None] = [None] * n
    tokens: list[str] = [""] * n
    inboxes: list[str] = [""] * n
    sent_at = [0.0] * n
    latency: list[float | None] = [None] * n
    errors: list[str | None] = [None] * n
    codes: list[int | None] = [None] * n
    texts: list[str | None] = [None] * n
    timed_out = f"no reply within {timeout:g}s"
    finished = 0
    next_i = 0  # the next request to send
    oldest = 0  # every request before it has finished
    inflight = 0
    # Default: a bar in a kernel (a line on a terminal) for long runs only.
    show = progress if progress is not None else (None if n >= PROGRESS_MIN else False)
    bar = Progress(n, f"request_batch {subject}", enabled=show) if show is not False else None
    resp_map = conn._resp_map
    last_frame: bytes | None = None
    try:
        while finished < n:
            if inflight < concurrency and next_i < n:
                end = min(next_i + concurrency - inflight, n)
                frames = []
                with conn._lock:
                    for i in range(next_i, end):
                        token = str(next(conn._resp_tokens))
                        tokens[i] = token
                        inboxes[i] = prefix + token
                        slot = slots[i] = _Slot(done, i)
                        resp_map[token] = slot  # type: ignore[assignment]
                        frames.append(encode_pub(subj, (prefix + token).encode(),
                                                 bodies[i], hdr))
                now = time.monotonic()
                for i in range(next_i, end):
                    sent_at[i] = now
                inflight += end - next_i
                next_i = end
                last_frame = b"".join(frames)
                conn._queue(last_frame, msgs=len(frames), direct=True)
            got = 0
            queue = done.queue
            while queue:
                slot = queue.popleft()
                i = slot.index
                if slot.lost:
                    conn._check_open()
                    errors[i] = "RequestTimeout"
                    texts[i] = timed_out
                else:
                    latency[i] = (slot.t_mono - sent_at[i]) * 1000.0
                    assert slot.row is not None
                    failed = _reply_error(slot.row[2])
                    if failed is not None:
                        errors[i], codes[i], texts[i] = failed
                slots[i] = None if slot.lost else slot
                tokens[i] = ""
                got += 1
            if got:
                inflight -= got
                finished += got
                if bar is not None:
                    bar.update(finished)
                continue
            # Nothing came: time out what is due, else sleep until a reply or a deadline.
            now = time.monotonic()
            while oldest < next_i and not tokens[oldest]:
                oldest += 1
            if oldest < next_i and sent_at[oldest] + timeout <= now:
                expired = []
                with conn._lock:
                    i = oldest
                    while i < next_i and sent_at[i] + timeout <= now:
                        if tokens[i] and resp_map.pop(tokens[i], None) is not None:
                            expired.append(i)
                        i += 1
                for i in expired:
                    tokens[i] = ""
                    slots[i] = None
                    errors[i] = "RequestTimeout"
                    texts[i] = timed_out
                inflight -= len(expired)
                finished += len(expired)
                continue
            wait = (sent_at[oldest] + timeout - now) if oldest < next_i else timeout
            done.waiting = True
            done.wake.clear()
            if not done.queue:
                done.wake.wait(min(max(wait, 0.0), 1.0))
            done.waiting = False
            conn._check_open()
    except BaseException:
        # Ctrl-C (or a closed connection): nothing more goes out, nothing waits.
        with conn._lock:
            for token in tokens:
                if token:
                    resp_map.pop(token, None)
            if last_frame is not None:
                for k, frame in enumerate(conn._out):
                    if frame is last_frame:  # not sent yet: take it back
                        del conn._out[k]
                        conn._out_bytes -= len(frame)
                        break
        raise
    finally:
        if bar is not None:
            bar.close(finished)
    times = [None if s is None or s.row is None else int(s.t_recv * 1e9) for s in slots]
    rows = [None if s is None else s.row for s in slots]
    df = to_frame(_table(subject, inboxes, times, rows), decode, extra=[
        ("latency_ms", pa.array(latency, pa.float64())),
        ("error", pa.array(errors, pa.string())),
        ("error_code", pa.array(codes, pa.int64())),
        ("error_text", pa.array(texts, pa.string())),
    ])
    df["error"] = pd.Series(errors, dtype=object, index=df.index)  # None, not NaN
    df["error_code"] = pd.array(codes, dtype="Int64")
    df["error_text"] = pd.Series(texts, dtype=object, index=df.index)
    return df

def request_many(conn: Engine, subject: str, data: Any = b"", *,
                 max_replies: int | None = None, max_wait: float = 1.0,
                 stall: float | None = None, headers: Mapping[str, Any] | None = None,
                 decode: DecodeArg = "auto") -> pd.DataFrame:
    """Connection.request_many (documented there)."""
    conn._check_open()
    _check_positive("max_replies", max_replies, integer=True, none_ok=True)
    _check_positive("max_wait", max_wait)
    _check_positive("stall", stall, none_ok=True)
    inbox = conn.new_inbox()
    frame = conn._build_pub(subject, data, inbox, headers, own_reply=True)
    rows: list[RawMsg] = []
    arrived: list[float] = []  # wall clock, for the time column
    arrived_mono: list[float] = []
    cond = threading.Condition()

    def sink(batch: list[RawMsg], now: float) -> None:  # on the I/O thread
        mono = time.monotonic()
        with cond:
            rows.extend(batch)
            arrived.extend([now] * len(batch))
            arrived_mono.extend([mono] * len(batch))
            cond.notify()

    sub = conn._subscribe_internal(inbox, sink=sink, timeout=max(max_wait, 1.0))
    try:
        start = time.monotonic()
        conn._queue(frame, msgs=1, direct=True)
        with cond:
            while True:
                now = time.monotonic()
                if rows and rows[0][2] and rows[0][2].startswith(b"NATS/1.0 503"):
                    raise NoRespondersError(subject)
                if max_replies is not None and len(rows) >= max_replies:
                    break
                until = start + max_wait
                if stall is not None and arrived_mono:
                    until = min(until, arrived_mono[-1] + stall)
                if now >= until:
                    break
                cond.wait(until - now)
                conn._check_open()
            got, at = rows[:max_replies], arrived[:max_replies]
            at_mono = arrived_mono[:max_replies]
    finally:
        conn._release(sub)
    times: list[int | None] = [int(t * 1e9) for t in at]
    return to_frame(_table(subject, [inbox] * len(got), times, list(got)), decode, extra=[
        ("latency_ms", pa.array([(t - start) * 1000.0 for t in at_mono], pa.float64())),
    ])
