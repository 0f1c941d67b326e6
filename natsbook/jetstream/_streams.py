"""JetStream as DataFrames, over natsbook's own request/reply (the JetStream JSON API).

``streams()`` / ``stream_info()`` / ``stream_subjects()`` describe what is stored;
``stream_history()`` reads stored messages into the same DataFrame a live capture gives (plus
``seq``, with ``time`` the time the stream stored the message); ``follow()`` continues a history
read with live messages, without a gap or a duplicate at the seam; ``js_publish()`` publishes
and waits for the stream's acknowledgement.

History reads are bulk reads: the replies of *batched direct get* (server >= 2.11, streams with
``allow_direct``) land in one internal reader, never one request per message, and the
JetStream headers are taken apart column-wise with Arrow. Streams without direct access are
read through an ephemeral pull consumer with no acks (the stream sequence and time travel in
its ``$JS.ACK`` reply subjects). That machinery lives in :mod:`._jsread`, the API plumbing in
:mod:`._jsapi`; this module decides what to read and shapes the answers.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._progress import Progress
from ..capture import FOLD, TABLE, mark
from ..capture._frames import DecodeArg, to_frame
from ..capture._store import SCHEMA
from ..errors import BadInputError, JetStreamError, NoRespondersError
from ._jsapi import (
    api_request,
    check_name,
    paged,
    server_at_least,
    stream_call,
    stream_names,
    ttl_header,
)
from ._jsparse import empty_history, parse_history
from ._jsread import (
    PushCapture,
    consumer_read,
    direct_read,
    first_at,
    rfc3339,
)

if TYPE_CHECKING:
    from ..core import Link

__all__ = [
    "Follow",
    "PubAck",
    "PushCapture",
    "add_stream",
    "api_request",
    "delete_stream",
    "follow",
    "history_frame",
    "js_publish",
    "purge_stream",
    "read_stream",
    "stream_history",
    "stream_info",
    "stream_names",
    "stream_subjects",
    "streams",
]

#: Messages asked for per round trip (direct-get batch or pull): big enough that the round
#: trip between batches is noise (their bytes are bounded by ``_jsread.BATCH_BYTES``).
BATCH = 25_000
#: Reads expected to be longer than this show a progress bar (when progress=None).
PROGRESS_MIN_ROWS = 50_000


# ------------------------------------------------------------------------------ stream admin
def stream_info(conn: Link, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The stream's info as the server sends it (``config``, ``state``, ``created``...).

    Raises:
        NotFoundError: no such stream (the message suggests a close name).
        JetStreamError: JetStream is not enabled.
    """
    return stream_call(conn, "STREAM.INFO", name, timeout=timeout)


def _ts(value: Any) -> pd.Timestamp | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    return pd.Timestamp(value)


def streams(conn: Link, *, timeout: float = 5.0) -> pd.DataFrame:
    """Every stream as one row: name, subjects, messages, bytes, first/last seq and time,
    consumers, storage, retention, replicas, allow_direct, created."""
    rows: list[dict[str, Any]] = []
    infos = paged(lambda offset: api_request(conn, "STREAM.LIST", {"offset": offset},
                                             timeout=timeout), "streams")
    for info in infos:
        cfg, st = info.get("config", {}), info.get("state", {})
        rows.append({
            "name": cfg.get("name"), "subjects": cfg.get("subjects") or [],
            "messages": st.get("messages", 0), "bytes": st.get("bytes", 0),
            "first_seq": st.get("first_seq", 0), "first_time": _ts(st.get("first_ts")),
            "last_seq": st.get("last_seq", 0), "last_time": _ts(st.get("last_ts")),
            "subjects_count": st.get("num_subjects", 0),
            "consumers": st.get("consumer_count", 0), "storage": cfg.get("storage"),
            "retention": cfg.get("retention"), "replicas": cfg.get("num_replicas", 1),
            "allow_direct": bool(cfg.get("allow_direct")), "created": _ts(info.get("created")),
        })
    cols = ["name", "subjects", "messages", "bytes", "first_seq", "first_time", "last_seq",
            "last_time", "subjects_count", "consumers", "storage", "retention", "replicas",
            "allow_direct", "created"]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("first_time", "last_time", "created"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    # display only: settings every stream shares are said once, above the table
    frame.attrs[FOLD] = ["storage", "retention", "replicas", "allow_direct"]
    return mark(frame.sort_values("name", ignore_index=True), TABLE)


def stream_subjects(conn: Link, name: str, filter: str = ">", *,
                    timeout: float = 5.0) -> pd.DataFrame:
    """Stored messages per subject (subject, messages), sorted by subject."""
    counts: dict[str, int] = {}
    while True:
        info = stream_call(conn, "STREAM.INFO", name,
                            {"subjects_filter": filter, "offset": len(counts)}, timeout)
        got = (info.get("state") or {}).get("subjects") or {}
        counts.update(got)
        if not got or len(counts) >= info.get("total", 0):
            break
    frame = pd.DataFrame({"subject": pd.Series(list(counts), dtype="str"),
                          "messages": pd.Series(list(counts.values()), dtype="int64")})
    return mark(frame.sort_values("subject", ignore_index=True), TABLE)


def add_stream(conn: Link, name: str, subjects: list[str] | str | None = None, *,
               storage: str = "file", allow_direct: bool = True,
               allow_msg_ttl: bool = False, subject_delete_marker_ttl: float | None = None,
               timeout: float = 5.0, **config: Any) -> dict[str, Any]:
    """Create a stream (or update it when it exists with a compatible config).

    Args:
        allow_msg_ttl: let publishers give each message its own TTL
            (``js_publish(..., ttl=)``; nats-server 2.11+).
        subject_delete_marker_ttl: seconds: when ``max_age`` removes the last message of a
            subject, the server leaves a delete marker (``Nats-Marker-Reason: MaxAge``) that
            lives this long, so readers and KV watchers see the removal (2.11+; it needs
            ``allow_msg_ttl``, which is then turned on).
        config: other stream config fields as the server names them (``max_msgs``,
            ``max_age`` in ns, ``max_msgs_per_subject``...).

    Returns:
        The stream info.
    """
    check_name(name)
    if isinstance(subjects, str):
        subjects = [subjects]
    cfg = {"name": name, "subjects": subjects or [name], "storage": storage,
           "allow_direct": allow_direct, "num_replicas": 1, **config}
    if allow_msg_ttl or subject_delete_marker_ttl is not None:
        cfg["allow_msg_ttl"] = True
    if subject_delete_marker_ttl is not None:
        if not subject_delete_marker_ttl > 0:
            raise BadInputError(f"subject_delete_marker_ttl={subject_delete_marker_ttl!r} "
                                "must be a positive number of seconds")
        cfg["subject_delete_marker_ttl"] = int(subject_delete_marker_ttl * 1e9)
    try:
        return api_request(conn, f"STREAM.CREATE.{name}", cfg, timeout=timeout)
    except JetStreamError as exc:
        if exc.err_code == 10058:  # name in use with another config: update instead
            return api_request(conn, f"STREAM.UPDATE.{name}", cfg, timeout=timeout)
        raise


def delete_stream(conn: Link, name: str, *, timeout: float = 5.0) -> None:
    """Delete a stream and everything it stores."""
    stream_call(conn, "STREAM.DELETE", name, timeout=timeout)


def purge_stream(conn: Link, name: str, *, subject: str | None = None,
                 timeout: float = 5.0) -> int:
    """Remove stored messages (all, or only `subject`'s); returns how many were purged."""
    body = stream_call(conn, "STREAM.PURGE", name, {"filter": subject} if subject else None,
                        timeout)
    return int(body.get("purged", 0))


# ---------------------------------------------------------------------------------- publish
@dataclass(slots=True, frozen=True)
class PubAck:
    """A stream's acknowledgement of a published message."""

    stream: str
    seq: int
    duplicate: bool = False
    domain: str | None = None
    #: A counter stream's total after the increment (nats-server 2.12+).
    value: int | None = None
    #: An atomic batch's id and message count (on the commit's ack).
    batch: str | None = None
    count: int | None = None


def js_publish(conn: Link, subject: str, data: Any = b"", *,
               headers: Mapping[str, Any] | None = None, msg_id: str | None = None,
               expected_stream: str | None = None, expected_last_seq: int | None = None,
               expected_last_subject_seq: int | None = None, ttl: Any = None,
               timeout: float = 5.0) -> PubAck:
    """Publish to a stream and wait for its acknowledgement.

    Args:
        ttl: this message's time to live (``Nats-TTL``, nats-server 2.11+; the stream needs
            ``allow_msg_ttl=True``): seconds (at least 1), a timedelta, ``"90s"`` or
            ``"never"``.
        msg_id: ``Nats-Msg-Id`` for de-duplication (a repeat within the window is acked with
            ``duplicate=True`` and not stored again).
        expected_*: optimistic concurrency checks; a mismatch raises JetStreamError.

    Raises:
        JetStreamError: no stream stores `subject`, or the stream refused the message.
    """
    hdrs: dict[str, Any] = dict(headers or {})
    if msg_id is not None:
        hdrs["Nats-Msg-Id"] = msg_id
    if expected_stream is not None:
        hdrs["Nats-Expected-Stream"] = expected_stream
    if expected_last_seq is not None:
        hdrs["Nats-Expected-Last-Sequence"] = str(expected_last_seq)
    if expected_last_subject_seq is not None:
        hdrs["Nats-Expected-Last-Subject-Sequence"] = str(expected_last_subject_seq)
    if ttl is not None:
        hdrs["Nats-TTL"] = ttl_header(ttl)
        version = conn.server_info.get("version")
        if not server_at_least(version, (2, 11)):  # an older one stores it without a TTL
            raise JetStreamError(f"per-message TTLs need nats-server 2.11 or later (this "
                                 f"one: {version or 'unknown'}) - nothing was sent")
    try:
        msg = conn.request(subject, data, headers=hdrs or None, timeout=timeout)
    except NoRespondersError:
        raise JetStreamError(f"no stream stores {subject!r} (or JetStream is not enabled) - "
                             "create one with natsbook.jetstream.add_stream(conn, name, "
                             "subjects)", code=503) from None
    body = orjson.loads(msg.data) if msg.data else {}
    if "error" in body:
        err = body["error"]
        raise JetStreamError(f"stream refused the message on {subject!r}: "
                             f"{err.get('description')}", code=int(err.get("code", 0)),
                             err_code=int(err.get("err_code", 0)))
    if "seq" not in body:
        raise JetStreamError(f"{subject!r} answered like a service, not a stream: "
                             f"{msg.data[:80]!r} - is the subject bound to a stream?")
    value, count = body.get("val"), body.get("count")
    return PubAck(body["stream"], int(body["seq"]), bool(body.get("duplicate", False)),
                  body.get("domain"), int(value) if value is not None else None,
                  body.get("batch"), int(count) if count is not None else None)


# ---------------------------------------------------------------------------------- reading
def history_frame(table: pa.Table, decode: DecodeArg = "auto") -> pd.DataFrame:
    """A stored-message table (SCHEMA + ``seq``) as the capture DataFrame with ``seq``."""
    return to_frame(table.select(SCHEMA.names), decode, extra=[("seq", table["seq"])])


# A bare number in a string ("1700000000", "1700000000.5", "1.7e9"): epoch seconds.
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
#: The smallest bare number read as epoch seconds (2001-09-09): anything smaller is far more
#: likely a duration typed without its unit, which is refused rather than guessed.
EPOCH_MIN = 1e9
_TIME_HINT = ("give a datetime, an ISO time ('2024-05-01T12:00Z'), epoch seconds "
              "('1700000000.5') or a duration with a unit ('30s', '10m', '2h')")


def _as_time(value: Any) -> pd.Timestamp:
    """A point in time: a datetime or ISO string, epoch seconds (a number >= 1e9, or a string
    holding one), or a duration ("10m", timedelta) before now.

    Raises:
        BadInputError: anything else, including a bare number below 1e9 (a duration needs a
            unit) and NaN/infinity.
    """
    number: float | None = None
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER_RE.match(text):
            number = float(text)
        else:
            try:
                delta = pd.Timedelta(text)
            except ValueError:
                pass
            else:
                if delta is not pd.NaT:  # "nan", "" and "NaT" parse as NaT
                    return pd.Timestamp.now(tz="UTC") - delta
    elif isinstance(value, pd.Timedelta | np.timedelta64) or hasattr(value, "total_seconds"):
        return pd.Timestamp.now(tz="UTC") - pd.Timedelta(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        number = float(value)
    if number is not None:
        if not math.isfinite(number) or number < EPOCH_MIN:
            raise BadInputError(f"cannot read {value!r} as a time: a bare number means epoch "
                                f"seconds and must be at least {EPOCH_MIN:.0e} (2001-09-09) - "
                                "for a duration add a unit ('30s', '10m', '2h')")
        try:
            return pd.Timestamp(number, unit="s", tz="UTC")
        except (ValueError, OverflowError):
            raise BadInputError(f"epoch seconds {value!r} are out of range - "
                                f"{_TIME_HINT}") from None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise BadInputError(f"cannot read {value!r} as a time - {_TIME_HINT}") from None
    if ts is pd.NaT:
        raise BadInputError(f"cannot read {value!r} as a time - {_TIME_HINT}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def read_stream(conn: Link, name: str, *, subject: str | None = None,
                start_seq: int | None = None, since: Any = None, until: Any = None,
                last: int | None = None, max_rows: int | None = None, method: str = "auto",
                progress: bool | None = None, timeout: float = 10.0,
                info: dict[str, Any] | None = None) -> pa.Table:
    """Read stored messages as an Arrow table (SCHEMA columns + ``seq``), oldest first.

    The read ends at the stream's last message when it starts (later messages are not read);
    see :func:`stream_history` for the arguments.
    """
    if method not in ("auto", "direct", "consumer"):
        raise BadInputError(f"method={method!r} must be 'auto', 'direct' or 'consumer'")
    for label, v in (("start_seq", start_seq), ("last", last), ("max_rows", max_rows)):
        if v is not None and (not isinstance(v, int) or v < 0):
            raise BadInputError(f"{label}={v!r} must be a non-negative int")
    if last is not None and (start_seq is not None or since is not None):
        raise BadInputError("last= reads the newest messages; it cannot be combined with "
                            "start_seq= or since=")
    if start_seq is not None and since is not None:
        raise BadInputError("give start_seq= or since=, not both")
    t_since = _as_time(since) if since is not None else None
    t_until = _as_time(until) if until is not None else None
    info = info or stream_info(conn, name, timeout=timeout)
    state, cfg = info.get("state", {}), info.get("config", {})
    direct = bool(cfg.get("allow_direct"))
    if method == "direct" and not direct:
        raise JetStreamError(f"stream {name!r} does not allow direct get (allow_direct is "
                             "false) - use method='consumer' (or 'auto'), or update the stream "
                             "with allow_direct=True", code=400)
    version = tuple(int(x) for x in str(conn.server_info.get("version", "0.0.0"))
                    .split("-")[0].split(".")[:2]
                    if x.isascii() and x.isdigit())
    if method == "auto":
        # Measured (bench/history.py): a whole read through one pull consumer is ~1.8x the
        # batched direct gets; the backward windows of last= stay direct (a consumer per
        # window costs more than it saves on small reads).
        method = ("direct" if last is not None and direct and version >= (2, 11)
                  else "consumer")
    first, stop = int(state.get("first_seq", 0)), int(state.get("last_seq", 0))
    if not state.get("messages") or last == 0 or max_rows == 0:
        return empty_history()
    if t_until is not None:
        after = first_at(conn, name, t_until + pd.Timedelta(1, "ns"), direct, timeout)
        stop = min(stop, after - 1) if after else stop
    reader = direct_read if method == "direct" else consumer_read
    start_time = rfc3339(t_since) if t_since is not None else None
    est = stop - max(start_seq or first, first) + 1
    est = min(est, max_rows or est)
    show = False if progress is None and est < PROGRESS_MIN_ROWS else progress
    bar = Progress(est, f"stream {name}", show, transient=True)
    try:
        if last is None:
            raw = reader(conn, name, seq=start_seq, start_time=start_time, subject=subject,
                         stop_seq=stop, max_rows=max_rows, batch=BATCH, progress=bar,
                         timeout=timeout)
            table = parse_history(raw, method)
            return table.filter(pc.less_equal(table["seq"], stop))
        # The newest `last`: read windows backwards from the end until enough matched.
        tables: list[pa.Table] = []
        have, hi, width = 0, stop, last
        while have < last and hi >= first:
            lo = max(first, hi - width + 1)
            raw = reader(conn, name, seq=lo, start_time=None, subject=subject, stop_seq=hi,
                         max_rows=None, batch=BATCH, progress=bar, timeout=timeout)
            t = parse_history(raw, method)
            t = t.filter(pc.less_equal(t["seq"], hi))
            tables.insert(0, t)
            have += t.num_rows
            hi, width = lo - 1, width * 4
        table = pa.concat_tables(tables) if tables else empty_history()
        return table.slice(max(table.num_rows - last, 0))
    finally:
        bar.close()


def stream_history(conn: Link, name: str, *, subject: str | None = None,
                   start_seq: int | None = None, since: Any = None, until: Any = None,
                   last: int | None = None, max_rows: int | None = None,
                   decode: DecodeArg = "auto", method: str = "auto",
                   progress: bool | None = None,
                   timeout: float = 10.0) -> pd.DataFrame:
    """Stored messages as the same DataFrame a live capture gives, plus ``seq``.

    ``time`` is when the stream stored each message. The read ends by itself at the stream's
    last message as of the call; an empty stream gives an empty frame at once.

    Args:
        name: the stream.
        subject: only messages on this subject (wildcards allowed).
        start_seq: first stream sequence to read.
        since / until: time bounds: a datetime or ISO string, epoch seconds (a number, or a
            string holding one, of at least 1e9: ``1700000000.5``), or a duration before now
            with a unit ("30s", "10m", "2h", a timedelta). A bare number below 1e9 is refused:
            a duration needs its unit.
        last: only the newest N (matching) messages.
        max_rows: stop after this many rows.
        decode: "auto", "json", "text", "bytes", "msgpack", "cbor", a registered name or
            ``natsbook.protobuf(...)`` (as ``Subscription.to_pandas``).
        method: "auto" (a pull consumer; direct get for ``last=`` when the stream allows
            it), "direct", "consumer".
        progress: progress bar (None: only for long reads in a kernel or a terminal).
        timeout: seconds without any answer from the server before giving up.

    Raises:
        NotFoundError: no such stream ("did you mean" in the message).
        JetStreamError: JetStream is not enabled; method="direct" on a stream without
            allow_direct.
    """
    table = read_stream(conn, name, subject=subject, start_seq=start_seq, since=since,
                        until=until, last=last, max_rows=max_rows, method=method,
                        progress=progress, timeout=timeout)
    return history_frame(table, decode)


# ---------------------------------------------------------------------------------- follow
class Follow:
    """A stream's history followed by its live messages, in one capture.

    ``to_pandas()`` gives history and live rows together, oldest first, each stored message
    exactly once. Call ``stop()`` (or use ``with``) to end the live part.
    """

    def __init__(self, conn: Link, stream: str, history: pa.Table, seam: int,
                 live: PushCapture) -> None:
        self.stream = stream
        self.history = history
        #: Last stream sequence covered by the history read; live starts right after it.
        self.seam = seam
        self.live = live
        self._conn = conn

    def to_arrow(self) -> pa.Table:
        live, _ = self.live.table()
        return pa.concat_tables([self.history, live]) if live.num_rows else self.history

    def to_pandas(self, decode: DecodeArg = "auto") -> pd.DataFrame:
        return history_frame(self.to_arrow(), decode)

    def missed(self) -> int:
        """Live deliveries lost on the way (0 unless the connection dropped)."""
        return self.live.missed()

    def stop(self) -> None:
        self.live.stop()

    @property
    def active(self) -> bool:
        return self.live.sub.active

    def __len__(self) -> int:
        return self.history.num_rows + len(self.live.table()[0])

    def __enter__(self) -> Follow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "live" if self.active else "stopped"
        return (f"<Follow {self.stream!r} {state} history={self.history.num_rows} "
                f"seam={self.seam} live={self.live.sub.received}>")


def follow(conn: Link, name: str, *, subject: str | None = None,
           start_seq: int | None = None, since: Any = None, last: int | None = None,
           history: bool = True, max_bytes: int | None = None, progress: bool | None = None,
           timeout: float = 10.0) -> Follow:
    """Read a stream's history, then keep capturing its new messages.

    The history read stops at the stream's last sequence S as of the call; the live part is
    a push consumer that starts at S + 1. Both sides are cut on stream sequences, so nothing
    published meanwhile falls between them or shows up twice.

    Args:
        subject / start_seq / since / last: which history (as :func:`stream_history`).
        history: False to skip the stored messages and capture only new ones.
        max_bytes: bound of the live capture (None: unbounded).
    """
    info = stream_info(conn, name, timeout=timeout)
    seam = int(info.get("state", {}).get("last_seq", 0))
    if history:
        table = read_stream(conn, name, subject=subject, start_seq=start_seq, since=since,
                            last=last, progress=progress, timeout=timeout, info=info)
    else:
        table = empty_history()
    cfg: dict[str, Any] = {"deliver_policy": "by_start_sequence", "opt_start_seq": seam + 1}
    if subject and subject != ">":
        cfg["filter_subject"] = subject
    live = PushCapture(conn, name, cfg, timeout=timeout, max_bytes=max_bytes)
    return Follow(conn, name, table, seam, live)
