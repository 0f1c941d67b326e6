"""JetStream features of nats-server 2.11 and 2.12 as calls.

- per-message TTL (2.11, ADR-43): the ``Nats-TTL`` header (``js_publish(..., ttl=)``) on a
  stream with ``allow_msg_ttl``; :func:`ttl_header` spells a TTL the way the server parses it;
- subject delete markers (2.11): ``subject_delete_marker_ttl`` on a stream makes the server
  leave a marker (``Nats-Marker-Reason: MaxAge`` / ``Purge`` / ``Remove``) when a limit
  removes the last message of a subject - KV reads them as nats.go does (:func:`kv_operation`);
- consumer pause and resume (2.11): :func:`pause_consumer`, :func:`resume_consumer`;
- distributed counters (2.12, ADR-49): a stream with ``allow_msg_counter``
  (:func:`add_counter`), ``Nats-Incr`` publishes (:func:`counter_add`, whose ``PubAck.value``
  is the total after the increment), :func:`counter_value`;
- atomic batch publish (2.12, ADR-50): :func:`batch_publish` - all of the messages are
  stored, or none.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from ..errors import BadInputError, JetStreamError, NotFoundError
from ..wire._protocol import parse_headers
from ..wire._subjects import check_publish
from ._consumers import consumer_info
from ._jsapi import API, api_request, check_name, server_at_least, ttl_header
from ._streams import PubAck, add_stream, js_publish

if TYPE_CHECKING:
    from ..core import Link

__all__ = ["MAX_BATCH", "add_counter", "batch_publish", "counter_add", "counter_value",
           "kv_operation", "pause_consumer", "resume_consumer", "ttl_header"]

TTL_HEADER = "Nats-TTL"
MARKER_HEADER = "Nats-Marker-Reason"
INCR_HEADER = "Nats-Incr"
#: The most messages nats-server 2.12 accepts in one atomic batch.
MAX_BATCH = 1000
_MARKER_OPS = {"MaxAge": "PURGE", "Purge": "PURGE", "Remove": "DEL"}


def kv_operation(headers: Mapping[str, Any] | Iterable[tuple[str, str]] | None) -> str:
    """A KV entry's operation from its headers, the way nats.go reads it: ``KV-Operation``
    when present (``DEL`` / ``PURGE``); else a server marker's ``Nats-Marker-Reason``
    (``MaxAge`` and ``Purge`` are a ``PURGE``, ``Remove`` a ``DEL``); else ``PUT``. So a key
    that expired is gone, not an empty value."""
    if not headers:
        return "PUT"
    items = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for key, value in items:
        if isinstance(value, list):
            value = value[0] if value else ""
        found.setdefault(str(key), str(value))
    op = found.get("KV-Operation")
    if op:
        return op
    return _MARKER_OPS.get(found.get(MARKER_HEADER, ""), "PUT")


def kv_operation_raw(block: bytes | None) -> str:
    """:func:`kv_operation` of a raw ``NATS/1.0`` header block."""
    return kv_operation(parse_headers(block)[2]) if block else "PUT"


# ------------------------------------------------------------------------- pause / resume
def _until(until: Any) -> pd.Timestamp:
    """A future UTC time from a time (a time without a zone is UTC), a timedelta or a
    duration text (``"10m"``), or seconds from now.

    Raises:
        BadInputError: not a time, a time not in the future (the server would simply not
            pause), or one past the year 9999.
    """
    now = pd.Timestamp.now(tz="UTC")
    stamp: Any = pd.NaT
    try:
        if isinstance(until, numbers.Real) and not isinstance(until, bool):
            if not math.isfinite(float(until)) or float(until) <= 0:
                raise BadInputError(f"until={until!r}: seconds from now must be positive")
            stamp = now + pd.Timedelta(seconds=float(until))
        elif isinstance(until, dt.timedelta | pd.Timedelta):
            stamp = now + pd.Timedelta(until)
        elif isinstance(until, str) and _is_duration(until):
            stamp = now + pd.Timedelta(until.strip())
        else:
            stamp = pd.Timestamp(until)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise BadInputError(f"until={until!r}: give a time (datetime or ISO string), a "
                            "timedelta, a duration ('10m') or seconds from now")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if stamp <= now:
        raise BadInputError(f"until={until!r} is not in the future ({stamp} UTC; a time "
                            "without a zone is UTC) - give a later time, or call "
                            "resume_consumer to resume now")
    if stamp.year > 9999:
        raise BadInputError(f"until={until!r} is past the year 9999 - give a nearer time")
    return stamp


def _is_duration(text: str) -> bool:
    """Whether `text` is a duration ("10m", "1h30m", "2 days"), not a time; a bare number
    is neither (pandas would read "30" as 30 nanoseconds)."""
    if not any(c.isalpha() for c in text):
        return False
    try:
        return pd.Timedelta(text.strip()) is not pd.NaT
    except ValueError:
        return False


def _pause(conn: Link, stream: str, consumer: str, body: dict[str, Any],
           timeout: float) -> dict[str, Any]:
    check_name(stream)
    check_name(consumer)
    try:
        answer = api_request(conn, f"CONSUMER.PAUSE.{stream}.{consumer}", body,
                             timeout=timeout)
    except JetStreamError as exc:
        if exc.code != 404:
            raise
        consumer_info(conn, stream, consumer, timeout=timeout)  # raises the NotFoundError
        raise
    paused = bool(answer.get("paused"))
    remaining = answer.get("pause_remaining")
    return {"stream": stream, "consumer": consumer, "paused": paused,
            "pause_until": pd.Timestamp(answer["pause_until"]) if paused else None,
            "pause_remaining": remaining / 1e9 if isinstance(remaining, int) else None}


def pause_consumer(conn: Link, stream: str, consumer: str, until: Any, *,
                   timeout: float = 5.0) -> dict[str, Any]:
    """Pause a consumer until `until` (a datetime or ISO time - without a zone it is UTC -, a
    timedelta, a duration such as ``"10m"``, or seconds from now; it must be in the future):
    it delivers nothing until then, or until :func:`resume_consumer`. Returns
    ``{"stream", "consumer", "paused", "pause_until", "pause_remaining"}`` (seconds).

    Raises:
        BadInputError: `until` is not a time, or not in the future.
        NotFoundError / JetStreamError: no such consumer, or a server older than 2.11.
    """
    stamp = _until(until)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{stamp.nanosecond:03d}Z"
    return _pause(conn, stream, consumer, {"pause_until": text}, timeout)


def resume_consumer(conn: Link, stream: str, consumer: str, *,
                    timeout: float = 5.0) -> dict[str, Any]:
    """Resume a paused consumer now (see :func:`pause_consumer`)."""
    return _pause(conn, stream, consumer, {}, timeout)


# ------------------------------------------------------------------------------ counters
def add_counter(conn: Link, name: str, subjects: list[str] | str | None = None, *,
                timeout: float = 5.0, **config: Any) -> dict[str, Any]:
    """Create a counter stream (``allow_msg_counter``, nats-server 2.12+): every subject it
    stores is a counter that :func:`counter_add` changes. Returns the stream info."""
    return add_stream(conn, name, subjects, timeout=timeout, allow_msg_counter=True,
                      allow_direct=True, **config)


def counter_add(conn: Link, subject: str, delta: int = 1, *, timeout: float = 5.0) -> PubAck:
    """Add `delta` (a whole number, negative to subtract) to the counter `subject`; the
    ``PubAck``'s ``value`` is the counter's total after it.

    Raises:
        JetStreamError: the stream is not a counter stream (or the server is older than 2.12).
    """
    if not isinstance(delta, numbers.Integral) or isinstance(delta, bool):
        raise BadInputError(f"delta={delta!r} must be a whole number (counters are integers)")
    version = conn.server_info.get("version")
    if not server_at_least(version, (2, 12)):  # an older one would store an empty message
        raise JetStreamError(f"counters need nats-server 2.12 or later (this one: "
                             f"{version or 'unknown'}) - nothing was sent")
    ack = js_publish(conn, subject, b"", headers={INCR_HEADER: f"{int(delta):+d}"},
                     timeout=timeout)
    if ack.value is None:
        raise JetStreamError(f"stream {ack.stream!r} stored {subject!r} without a counter "
                             "value - create it with add_counter (allow_msg_counter, "
                             "nats-server 2.12+)")
    return ack


def counter_value(conn: Link, stream: str, subject: str, *, timeout: float = 5.0) -> int:
    """The current total of the counter `subject` in `stream`.

    Raises:
        NotFoundError: the counter was never incremented.
    """
    check_name(stream)
    msg = conn.request(f"{API}DIRECT.GET.{stream}", {"last_by_subj": subject},
                       timeout=timeout)
    if msg.status == 404:
        raise NotFoundError("counter", subject, None)
    if msg.status is not None:
        raise JetStreamError(f"read counter {subject!r} of {stream!r}: {msg.status} "
                             f"{msg.description} - is allow_direct set on the stream?",
                             code=msg.status)
    try:
        return int(orjson.loads(msg.data)["val"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise JetStreamError(f"{subject!r} in {stream!r} holds {msg.data[:60]!r}, not a "
                             "counter value - is it a counter stream?") from None


# --------------------------------------------------------------------------- atomic batch
def batch_publish(conn: Link, messages: Iterable[tuple[Any, ...]], *,
                  timeout: float = 5.0) -> PubAck:
    """Publish `messages` - ``(subject, data)`` or ``(subject, data, headers)`` tuples - as
    one atomic batch (nats-server 2.12+, a stream with ``allow_atomic``): the stream stores
    all of them or none. Returns the commit's ``PubAck`` (``seq`` of the last message,
    ``batch`` id, ``count``).

    Raises:
        BadInputError: no messages, more than 1000, a malformed tuple or a bad subject
            (nothing was sent).
        JetStreamError: the stream refused the batch (atomic publish disabled, an older
            server, a failed expected-sequence check...): none of it was stored.
    """
    batch = []
    for item in messages:
        if not isinstance(item, tuple) or len(item) not in (2, 3) \
                or (len(item) == 3 and not isinstance(item[2], Mapping | None)):
            raise BadInputError(f"batch item {item!r}: give (subject, data) or "
                                "(subject, data, headers)")
        check_publish(item[0])  # before anything is sent: BadSubjectError
        batch.append(item if len(item) == 3 else (*item, None))
    if not batch or len(batch) > MAX_BATCH:
        raise BadInputError(f"a batch holds 1 to {MAX_BATCH} messages, not {len(batch)}")
    version = conn.server_info.get("version")
    if not server_at_least(version, (2, 12)):
        # an older server ignores the batch headers and would store each message on its own
        raise JetStreamError(f"atomic batches need nats-server 2.12 or later (this one: "
                             f"{version or 'unknown'}) - nothing was sent")
    batch_id = uuid.uuid4().hex
    last = len(batch)
    for n, (subject, data, headers) in enumerate(batch, 1):
        hdrs = {**dict(headers or {}), "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(n)}
        if n < last:
            conn.publish(subject, data, headers=hdrs)
    hdrs["Nats-Batch-Commit"] = "1"
    try:
        ack = js_publish(conn, subject, data, headers=hdrs, timeout=timeout)
    except JetStreamError as exc:
        exc.args = (f"{exc.args[0]} - the batch was not stored (atomic batches need "
                    "nats-server 2.12+ and a stream with allow_atomic=True)",)
        raise
    return ack
