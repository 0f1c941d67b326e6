"""JetStream as DataFrames, over natsbook's own request/reply (the JetStream JSON API).

``streams()`` / ``stream_info()`` / ``stream_subjects()`` describe what is stored;
``stream_history()`` reads stored messages into the same DataFrame a live capture gives (plus
``seq``, with ``time`` the time the stream stored the message); ``follow()`` continues a history
read with live messages, without a gap or a duplicate at the seam; ``js_publish()`` publishes
and waits for the stream's acknowledgement.

History reads are bulk reads: the replies of *batched direct get* (server >= 2.11, streams with
``allow_direct``) land in one capture subscription, never one request per message, and the
JetStream headers are taken apart column-wise with Arrow. Streams without direct access are
read through an ephemeral pull consumer with no acks (the stream sequence and time travel in
its ``$JS.ACK`` reply subjects).
"""

from __future__ import annotations

import difflib
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._frames import to_frame
from ._protocol import parse_headers
from ._store import SCHEMA
from .errors import (
    BadInputError,
    JetStreamError,
    NatsbookError,
    NoRespondersError,
    NotFoundError,
    Timeout,
)

if TYPE_CHECKING:
    from ._connection import Connection
    from ._subscription import Subscription

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

API = "$JS.API."
#: Messages and bytes asked for per direct-get batch: big enough that the round trip between
#: batches is noise, small enough that the server never queues more than a few MiB for us.
BATCH = 25_000
BATCH_BYTES = 8 * 1024 * 1024
#: Reads expected to be longer than this show a progress bar (when progress=None).
PROGRESS_MIN_ROWS = 50_000
_NO_JS = ("JetStream is not enabled on this server (or for this account) - start nats-server "
          "with -js, e.g. natsbook.local_server(jetstream=True)")
_DIRECT_HDRS = frozenset({"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp",
                          "Nats-Num-Pending", "Nats-Last-Sequence", "Nats-UpTo-Sequence"})
# $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>, or the v2 form with
# <domain>.<account hash> in front and a random token at the end.
_ACK_RE = (r"^\$JS\.ACK\.(?:[^.]+\.[^.]+\.)?[^.]+\.[^.]+\.(?P<delivered>\d+)\.(?P<sseq>\d+)\."
           r"(?P<cseq>\d+)\.(?P<ts>\d+)\.(?P<pending>\d+)(?:\.[^.]+)?$")


# ---------------------------------------------------------------------------------- API calls
def api_request(conn: Connection, subject: str, payload: Any = None, *,
                timeout: float = 5.0) -> dict[str, Any]:
    """Call ``$JS.API.<subject>`` and return the decoded JSON answer.

    Raises:
        JetStreamError: JetStream is not enabled, or the API answered with an error.
    """
    try:
        msg = conn.request(API + subject, b"" if payload is None else payload, timeout=timeout)
    except NoRespondersError:
        raise JetStreamError(_NO_JS, code=503) from None
    body = orjson.loads(msg.data) if msg.data else {}
    err = body.get("error")
    if err:
        raise JetStreamError(f"JetStream {subject.split('.')[0].lower()} request failed: "
                             f"{err.get('description', err)}", code=int(err.get("code", 0)),
                             err_code=int(err.get("err_code", 0)))
    return body


def _suggest(name: str, candidates: list[str]) -> str | None:
    lower = {c.lower(): c for c in candidates}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return close[0] if close else None


def _stream_not_found(conn: Connection, name: str) -> NotFoundError:
    try:
        names = stream_names(conn)
    except JetStreamError:
        names = []
    err = NotFoundError("stream", name, _suggest(name, names))
    if not names:
        err.args = (f"{err.args[0]} - there are no streams yet; create one with "
                    "natsbook.jetstream.add_stream(conn, name, subjects)",)
    return err


def _stream_call(conn: Connection, subject: str, name: str, payload: Any = None,
                 timeout: float = 5.0) -> dict[str, Any]:
    _check_name(name)
    try:
        return api_request(conn, f"{subject}.{name}", payload, timeout=timeout)
    except JetStreamError as exc:
        if exc.err_code == 10059 or (exc.code == 404 and "stream not found" in exc.description):
            raise _stream_not_found(conn, name) from None
        raise


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in " .*>\t\r\n"):
        raise BadInputError(f"bad stream name {name!r}: names cannot be empty or contain "
                            "spaces, '.', '*' or '>'")


# ------------------------------------------------------------------------------ stream admin
def stream_names(conn: Connection, *, timeout: float = 5.0) -> list[str]:
    """Names of every stream in the account, sorted."""
    names: list[str] = []
    while True:
        page = api_request(conn, "STREAM.NAMES", {"offset": len(names)}, timeout=timeout)
        got = page.get("streams") or []
        names.extend(got)
        if not got or len(names) >= page.get("total", 0):
            return sorted(names)


def stream_info(conn: Connection, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The stream's info as the server sends it (``config``, ``state``, ``created``...).

    Raises:
        NotFoundError: no such stream (the message suggests a close name).
        JetStreamError: JetStream is not enabled.
    """
    return _stream_call(conn, "STREAM.INFO", name, timeout=timeout)


def _ts(value: Any) -> pd.Timestamp | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    return pd.Timestamp(value)


def streams(conn: Connection, *, timeout: float = 5.0) -> pd.DataFrame:
    """Every stream as one row: name, subjects, messages, bytes, first/last seq and time,
    consumers, storage, retention, replicas, allow_direct, created."""
    rows: list[dict[str, Any]] = []
    while True:
        page = api_request(conn, "STREAM.LIST", {"offset": len(rows)}, timeout=timeout)
        got = page.get("streams") or []
        for info in got:
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
        if not got or len(rows) >= page.get("total", 0):
            break
    cols = ["name", "subjects", "messages", "bytes", "first_seq", "first_time", "last_seq",
            "last_time", "subjects_count", "consumers", "storage", "retention", "replicas",
            "allow_direct", "created"]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("first_time", "last_time", "created"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame.sort_values("name", ignore_index=True)


def stream_subjects(conn: Connection, name: str, filter: str = ">", *,
                    timeout: float = 5.0) -> pd.DataFrame:
    """Stored messages per subject (subject, messages), sorted by subject."""
    counts: dict[str, int] = {}
    while True:
        info = _stream_call(conn, "STREAM.INFO", name,
                            {"subjects_filter": filter, "offset": len(counts)}, timeout)
        got = (info.get("state") or {}).get("subjects") or {}
        counts.update(got)
        if not got or len(counts) >= info.get("total", 0):
            break
    frame = pd.DataFrame({"subject": pd.Series(list(counts), dtype="str"),
                          "messages": pd.Series(list(counts.values()), dtype="int64")})
    return frame.sort_values("subject", ignore_index=True)


def add_stream(conn: Connection, name: str, subjects: list[str] | str | None = None, *,
               storage: str = "file", allow_direct: bool = True, timeout: float = 5.0,
               **config: Any) -> dict[str, Any]:
    """Create a stream (or update it when it exists with a compatible config).

    Extra keyword arguments are stream config fields as the server names them
    (``max_msgs``, ``max_age`` in ns, ``max_msgs_per_subject``...). Returns the stream info.
    """
    _check_name(name)
    if isinstance(subjects, str):
        subjects = [subjects]
    cfg = {"name": name, "subjects": subjects or [name], "storage": storage,
           "allow_direct": allow_direct, "num_replicas": 1, **config}
    try:
        return api_request(conn, f"STREAM.CREATE.{name}", cfg, timeout=timeout)
    except JetStreamError as exc:
        if exc.err_code == 10058:  # name in use with another config: update instead
            return api_request(conn, f"STREAM.UPDATE.{name}", cfg, timeout=timeout)
        raise


def delete_stream(conn: Connection, name: str, *, timeout: float = 5.0) -> None:
    """Delete a stream and everything it stores."""
    _stream_call(conn, "STREAM.DELETE", name, timeout=timeout)


def purge_stream(conn: Connection, name: str, *, subject: str | None = None,
                 timeout: float = 5.0) -> int:
    """Remove stored messages (all, or only `subject`'s); returns how many were purged."""
    body = _stream_call(conn, "STREAM.PURGE", name, {"filter": subject} if subject else None,
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


def js_publish(conn: Connection, subject: str, data: Any = b"", *,
               headers: Mapping[str, Any] | None = None, msg_id: str | None = None,
               expected_stream: str | None = None, expected_last_seq: int | None = None,
               expected_last_subject_seq: int | None = None,
               timeout: float = 5.0) -> PubAck:
    """Publish to a stream and wait for its acknowledgement.

    Args:
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
    return PubAck(body["stream"], int(body["seq"]), bool(body.get("duplicate", False)),
                  body.get("domain"))


# ---------------------------------------------------------------------------------- progress
class _Progress:
    """A progress bar for long reads: a widget in a kernel, else a throttled stderr line."""

    def __init__(self, total: int, label: str, enabled: bool | None) -> None:
        self.total = max(total, 1)
        self.label = label
        self._bar: Any = None
        self._line = False
        self._next = 0.0
        if enabled is False or (enabled is None and total < PROGRESS_MIN_ROWS):
            return
        if _in_kernel():
            try:
                import ipywidgets
                from IPython.display import display

                self._bar = ipywidgets.IntProgress(value=0, max=self.total, description=label)
                display(self._bar)
                return
            except Exception:  # no widgets: fall back to the text line
                self._bar = None
        self._line = enabled is True or sys.stderr.isatty()

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.value = min(n, self.total)
        elif self._line and time.monotonic() >= self._next:
            self._next = time.monotonic() + 0.1
            sys.stderr.write(f"\r{self.label}: {n:,}/{self.total:,}")
            sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._line:
            sys.stderr.write("\r" + " " * (len(self.label) + 32) + "\r")
            sys.stderr.flush()


def _in_kernel() -> bool:
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    shell = ip.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# ---------------------------------------------------------------------------------- parsing
def _status_mask(headers: pa.Array) -> pa.Array:
    """True for status messages (EOB, 404, heartbeats): their header line carries a code."""
    return pc.fill_null(pc.starts_with(headers, "NATS/1.0 "), False)


def _build(subject: pa.Array, headers: pa.Array, payload: pa.Array, times: pa.Array,
           seq: pa.Array) -> pa.Table:
    n = len(subject)
    return pa.table({
        "time": times.cast(SCHEMA.field("time").type),
        "subject": subject.cast(pa.string()),
        "reply": pa.nulls(n, pa.string()),
        "headers": headers.cast(pa.binary()),
        "payload": payload.cast(pa.binary()),
        "seq": seq.cast(pa.int64()),
    })


def _empty() -> pa.Table:
    return _build(pa.array([], pa.string()), pa.array([], pa.binary()), pa.array([], pa.binary()),
                  pa.array([], pa.int64()), pa.array([], pa.int64()))


def _parse_direct(raw: pa.Table) -> pa.Table:
    """Direct-get replies -> stored messages: subject, seq and time out of the headers, the
    headers the publisher set kept (null when there were none)."""
    hdr = raw["headers"].combine_chunks()
    keep = pc.invert(_status_mask(hdr))
    hdr = hdr.filter(keep)
    payload = raw["payload"].combine_chunks().filter(keep)
    n = len(hdr)
    if n == 0:
        return _empty()
    hdr = pa.concat_arrays([hdr])  # fresh buffers starting at offset 0
    try:
        subject, seq, times, cut = _direct_fields(hdr)
    except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _parse_direct_slow(hdr, payload)
    if cut is not None:  # rows whose publisher set headers: keep those, drop ours
        blocks: list[bytes | None] = [None] * n
        for i in np.flatnonzero(cut >= 0):
            blocks[int(i)] = hdr[int(i)].as_py()[:int(cut[i])] + b"\r\n\r\n"
        headers = pa.array(blocks, pa.binary())
    else:
        headers = pa.nulls(n, pa.binary())
    return _build(subject, headers, payload, times, seq)


def _slices(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """``data[starts[i]:ends[i]]`` for every i as one Arrow string array, without a loop."""
    lengths = ends - starts
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    arr = pa.Array.from_buffers(pa.large_string(), len(starts),
                                [None, pa.py_buffer(offsets), pa.py_buffer(data[idx])])
    arr.validate(full=True)  # UTF-8 check: garbage raises ArrowInvalid -> slow path
    return arr


def _direct_fields(hdr: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, np.ndarray | None]:
    """Subject, seq and time of each direct-get header block, found with numpy on the raw
    Arrow buffer (no per-row Python).

    In a batch reply the server appends, after the publisher's own headers, exactly six
    lines: Nats-Stream, -Subject, -Sequence, -Time-Stamp, -Num-Pending, -Last-Sequence, then
    the blank line. So counting CRs back from each block's end finds every field. Also
    returns, per row, where the publisher's headers end (-1 where there are none), or None
    when no row has any. Raises ValueError when the layout is not the expected one.
    """
    n = len(hdr)
    offs = np.frombuffer(hdr.buffers()[1], dtype=np.int32, count=n + 1).astype(np.int64)
    data = np.frombuffer(hdr.buffers()[2], dtype=np.uint8, count=int(offs[-1]))
    cr = np.flatnonzero(data == 13)
    last = np.searchsorted(cr, offs[1:], side="left") - 1
    first = np.searchsorted(cr, offs[:-1], side="left")
    count = last - first + 1
    if len(cr) == 0 or (count < 8).any():
        raise ValueError("not a batched direct-get reply")
    fields = []
    for k, prefix in ((7, b"Nats-Stream: "), (6, b"Nats-Subject: "), (5, b"Nats-Sequence: "),
                      (4, b"Nats-Time-Stamp: ")):
        start = cr[last - k] + 2
        for j, ch in enumerate(prefix):  # every line must start with the expected key
            if not (data[start + j] == ch).all():
                raise ValueError(f"unexpected direct-get header layout near {prefix!r}")
        fields.append((start + len(prefix), cr[last - k + 1]))
    subject = _slices(data, *fields[1]).cast(pa.string())
    seq = _slices(data, *fields[2]).cast(pa.int64())
    times = _slices(data, *fields[3]).cast(pa.timestamp("ns", tz="UTC"))
    cut = None
    if (count > 8).any():
        cut = np.where(count > 8, cr[last - 7] - offs[:-1], -1)
    return subject, seq, times, cut


def _parse_direct_slow(hdr: pa.Array, payload: pa.Array) -> pa.Table:
    subjects, seqs, times, blocks = [], [], [], []
    for block in hdr.to_pylist():
        _, _, items = parse_headers(block)
        d = dict(items)
        subjects.append(d.get("Nats-Subject"))
        seqs.append(int(d.get("Nats-Sequence", 0)))
        times.append(d.get("Nats-Time-Stamp"))
        own = [(k, v) for k, v in items if k not in _DIRECT_HDRS]
        blocks.append(("NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in own) + "\r\n")
                      .encode() if own else None)
    return _build(pa.array(subjects, pa.string()), pa.array(blocks, pa.binary()), payload,
                  pa.array(times, pa.string()).cast(pa.timestamp("ns", tz="UTC")),
                  pa.array(seqs, pa.int64()))


def _parse_acked(raw: pa.Table) -> tuple[pa.Table, pa.Array, pa.Array]:
    """Consumer deliveries -> stored messages; also the consumer sequences and pending counts.

    Status messages (heartbeats, flow control, 404/408 ends of pulls) are dropped.
    """
    reply = raw["reply"].combine_chunks()
    keep = pc.fill_null(pc.starts_with(reply, "$JS.ACK."), False)
    t = raw.filter(keep)
    if t.num_rows == 0:
        return _empty(), pa.array([], pa.int64()), pa.array([], pa.int64())
    seq, ns, cseq, pending = _ack_fields(t["reply"].combine_chunks())
    table = _build(t["subject"].combine_chunks(), t["headers"].combine_chunks(),
                   t["payload"].combine_chunks(), ns, seq)
    return table, cseq, pending


def _ack_fields(reply: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Stream seq, time (ns), consumer seq and pending out of ``$JS.ACK`` reply subjects."""
    first = reply[0].as_py()
    toks = first.split(".")
    v1 = len(toks) == 9
    prefix = ".".join(toks[:4 if v1 else 6]) + "."
    # Usually one consumer: cut its constant prefix, split the five numbers, cast them at once.
    if pc.all(pc.starts_with(reply, prefix)).as_py():
        tail = pc.utf8_slice_codeunits(reply, len(prefix))
        parts = pc.split_pattern(tail, ".")
        width = 5 if v1 else 6
        if pc.all(pc.equal(pc.list_value_length(parts), width)).as_py():
            try:
                nums = parts.flatten()
                if not v1:
                    nums = nums.take(pa.array(np.arange(len(reply) * width)
                                              .reshape(-1, width)[:, :5].ravel()))
                grid = nums.cast(pa.int64()).to_numpy().reshape(-1, 5)
                return (pa.array(grid[:, 1]), pa.array(grid[:, 3]), pa.array(grid[:, 2]),
                        pa.array(grid[:, 4]))
            except pa.ArrowInvalid:
                pass
    ex = pc.extract_regex(reply, _ACK_RE)
    sseq, ts, cseq, pending = (pc.struct_field(ex, f).cast(pa.int64())
                               for f in ("sseq", "ts", "cseq", "pending"))
    return sseq, ts, cseq, pending


def history_frame(table: pa.Table, decode: str = "auto") -> pd.DataFrame:
    """A stored-message table (SCHEMA + ``seq``) as the capture DataFrame with ``seq``."""
    return to_frame(table.select(SCHEMA.names), decode, extra=[("seq", table["seq"])])


# ---------------------------------------------------------------------------------- reading
def _as_time(value: Any) -> pd.Timestamp:
    """A point in time: anything pandas parses, or a duration ("10m", timedelta) before now."""
    if isinstance(value, str):
        try:
            return pd.Timestamp.now(tz="UTC") - pd.Timedelta(value)
        except ValueError:
            pass
    elif isinstance(value, pd.Timedelta | np.timedelta64) or hasattr(value, "total_seconds"):
        return pd.Timestamp.now(tz="UTC") - pd.Timedelta(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return pd.Timestamp(value, unit="s", tz="UTC")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise BadInputError(f"cannot read {value!r} as a time - give a datetime, an ISO "
                            "string, epoch seconds, or a duration like '10m'") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _rfc3339(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.value % 1_000_000_000:09d}Z"


class _Batches:
    """One capture subscription on ``<inbox>.*``; each request replies to its own token, so
    the end of a batch is simply a status message on that batch's subject."""

    def __init__(self, conn: Connection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.prefix = conn.new_inbox()
        self.sub: Subscription = conn.subscribe(self.prefix + ".*", max_bytes=None)
        self._n = 0

    def request(self, subject: str, payload: dict[str, Any], want: int | None = None) -> Any:
        """Send a request and wait for the status that ends its replies (or `want` rows)."""
        self._n += 1
        reply = f"{self.prefix}.{self._n}"
        start = self.sub.received
        self.conn.publish(subject, payload, reply=reply)
        deadline = time.monotonic() + self.timeout
        seen, delay = start, 0.0002
        while True:
            last = self.sub.last_msg
            if last is not None and last.subject == reply and last.status is not None:
                return last
            if want is not None and self.sub.received - start >= want:
                return None  # a pull delivers exactly `want` with no status after them
            if self.sub.received != seen:  # progress: a slow but moving read never times out
                seen = self.sub.received
                deadline = time.monotonic() + self.timeout
                delay = 0.0002
            elif time.monotonic() > deadline:
                raise Timeout(f"JetStream stopped answering {subject!r} for {self.timeout:g}s "
                              "in the middle of a read - the server may be overloaded; raise "
                              "timeout=")
            time.sleep(delay)
            delay = min(delay * 2, 0.005)

    def table(self) -> pa.Table:
        return self.sub.to_arrow()

    def close(self) -> None:
        self.sub.unsubscribe()


def _direct_read(conn: Connection, stream: str, *, seq: int | None, start_time: str | None,
                 subject: str | None, stop_seq: int, max_rows: int | None,
                 progress: _Progress, timeout: float) -> pa.Table:
    api = f"{API}DIRECT.GET.{stream}"
    reader = _Batches(conn, timeout)
    got = 0
    try:
        req: dict[str, Any] = {"start_time": start_time} if start_time else {"seq": seq or 1}
        while True:
            want = BATCH if max_rows is None else min(BATCH, max_rows - got)
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
            rows = reader.sub.received - reader._n  # every batch ends with one status
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


def _consumer_read(conn: Connection, stream: str, *, seq: int | None, start_time: str | None,
                   subject: str | None, stop_seq: int, max_rows: int | None,
                   progress: _Progress, timeout: float) -> pa.Table:
    cfg: dict[str, Any] = {"ack_policy": "none", "mem_storage": True, "num_replicas": 1,
                           "inactive_threshold": 30_000_000_000, "max_batch": BATCH}
    if start_time:
        cfg.update(deliver_policy="by_start_time", opt_start_time=start_time)
    else:
        cfg.update(deliver_policy="by_start_sequence", opt_start_seq=max(seq or 1, 1))
    if subject and subject != ">":
        cfg["filter_subject"] = subject
    info = _stream_call(conn, "CONSUMER.CREATE", stream, {"stream_name": stream, "config": cfg},
                        timeout)
    name = info["name"]
    total = int(info.get("num_pending", 0))
    reader = _Batches(conn, timeout)
    try:
        got = statuses = 0
        while got < total and (max_rows is None or got < max_rows):
            want = min(BATCH, total - got, (max_rows or total) - got)
            end = reader.request(f"{API}CONSUMER.MSG.NEXT.{stream}.{name}",
                                 {"batch": want, "no_wait": True}, want=want)
            statuses += end is not None
            got = reader.sub.received - statuses
            progress.update(got)
            last = reader.sub.last_msg
            if end is not None or last is None or not (last.reply or "").startswith("$JS.ACK."):
                break  # 404 No Messages: nothing more to read now
            toks = (last.reply or "").split(".")
            v1 = len(toks) == 9
            if int(toks[-4 if v1 else -5]) >= stop_seq or int(toks[-1 if v1 else -2]) == 0:
                break
        return reader.table()
    finally:
        reader.close()
        try:
            api_request(conn, f"CONSUMER.DELETE.{stream}.{name}", timeout=timeout)
        except JetStreamError:
            pass  # an inactive ephemeral consumer goes away by itself


def read_stream(conn: Connection, name: str, *, subject: str | None = None,
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
                    .split("-")[0].split(".")[:2] if x.isdigit())
    if method == "auto":
        method = "direct" if direct and version >= (2, 11) else "consumer"
    first, stop = int(state.get("first_seq", 0)), int(state.get("last_seq", 0))
    if not state.get("messages") or last == 0 or max_rows == 0:
        return _empty()
    if t_until is not None:
        after = _first_at(conn, name, t_until + pd.Timedelta(1, "ns"), direct, timeout)
        stop = min(stop, after - 1) if after else stop
    reader = _direct_read if method == "direct" else _consumer_read
    start_time = _rfc3339(t_since) if t_since is not None else None
    est = stop - max(start_seq or first, first) + 1
    bar = _Progress(min(est, max_rows or est), f"stream {name}", progress)
    try:
        if last is None:
            raw = reader(conn, name, seq=start_seq, start_time=start_time, subject=subject,
                         stop_seq=stop, max_rows=max_rows, progress=bar, timeout=timeout)
            table = _parse(raw, method)
            return table.filter(pc.less_equal(table["seq"], stop))
        # The newest `last`: read windows backwards from the end until enough matched.
        tables: list[pa.Table] = []
        have, hi, width = 0, stop, last
        while have < last and hi >= first:
            lo = max(first, hi - width + 1)
            raw = reader(conn, name, seq=lo, start_time=None, subject=subject, stop_seq=hi,
                         max_rows=None, progress=bar, timeout=timeout)
            t = _parse(raw, method)
            t = t.filter(pc.less_equal(t["seq"], hi))
            tables.insert(0, t)
            have += t.num_rows
            hi, width = lo - 1, width * 4
        table = pa.concat_tables(tables) if tables else _empty()
        return table.slice(max(table.num_rows - last, 0))
    finally:
        bar.close()


def _parse(raw: pa.Table, method: str) -> pa.Table:
    return _parse_direct(raw) if method == "direct" else _parse_acked(raw)[0]


def _first_at(conn: Connection, name: str, ts: pd.Timestamp, direct: bool,
              timeout: float) -> int | None:
    """Sequence of the first message stored at or after `ts` (None: there is none)."""
    if direct:
        msg = conn.request(f"{API}DIRECT.GET.{name}", {"start_time": _rfc3339(ts)},
                           timeout=timeout)
        if msg.status is not None or msg.headers is None:
            return None
        return int(msg.headers.get("Nats-Sequence", "0")) or None
    try:
        body = _stream_call(conn, "STREAM.MSG.GET", name, {"start_time": _rfc3339(ts)}, timeout)
    except JetStreamError as exc:
        if exc.code == 404 and not isinstance(exc, NotFoundError):
            return None
        raise
    return int(body["message"]["seq"])


def stream_history(conn: Connection, name: str, *, subject: str | None = None,
                   start_seq: int | None = None, since: Any = None, until: Any = None,
                   last: int | None = None, max_rows: int | None = None,
                   decode: str = "auto", method: str = "auto", progress: bool | None = None,
                   timeout: float = 10.0) -> pd.DataFrame:
    """Stored messages as the same DataFrame a live capture gives, plus ``seq``.

    ``time`` is when the stream stored each message. The read ends by itself at the stream's
    last message as of the call; an empty stream gives an empty frame at once.

    Args:
        name: the stream.
        subject: only messages on this subject (wildcards allowed).
        start_seq: first stream sequence to read.
        since / until: time bounds (datetime, ISO string, epoch seconds, or a duration before
            now such as "10m").
        last: only the newest N (matching) messages.
        max_rows: stop after this many rows.
        decode: "auto", "json", "text" or "bytes" (as ``Subscription.to_pandas``).
        method: "auto" (direct get when the stream allows it, else a consumer), "direct",
            "consumer".
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
class PushCapture:
    """An ephemeral push consumer (no acks) delivering into a capture subscription.

    The building block of :func:`follow` and KV watches. Deliveries are parsed lazily, in
    bulk, when you ask for a table or a frame.
    """

    def __init__(self, conn: Connection, stream: str, config: dict[str, Any], *,
                 timeout: float = 5.0, max_bytes: int | None = None) -> None:
        self.conn = conn
        self.stream = stream
        self.deliver_subject = conn.new_inbox()
        self.sub = conn.subscribe(self.deliver_subject, max_bytes=max_bytes)
        cfg = {"ack_policy": "none", "mem_storage": True, "num_replicas": 1,
               "deliver_subject": self.deliver_subject, "inactive_threshold": 10_000_000_000,
               **config}
        try:
            info = _stream_call(conn, "CONSUMER.CREATE", stream,
                                {"stream_name": stream, "config": cfg}, timeout)
        except BaseException:
            self.sub.unsubscribe()
            raise
        self.consumer = info["name"]
        self.timeout = timeout

    def table(self) -> tuple[pa.Table, pa.Array]:
        """Delivered messages (SCHEMA + seq) and their consumer sequences."""
        table, cseq, _ = _parse_acked(self.sub.to_arrow())
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
        if not self.sub.active:
            return
        try:
            api_request(self.conn, f"CONSUMER.DELETE.{self.stream}.{self.consumer}",
                        timeout=self.timeout)
        except NatsbookError:
            pass  # closed connection or gone server: the consumer expires by itself
        if not self.conn.is_closed:
            self.sub.unsubscribe()


class Follow:
    """A stream's history followed by its live messages, in one capture.

    ``to_pandas()`` gives history and live rows together, oldest first, each stored message
    exactly once. Call ``stop()`` (or use ``with``) to end the live part.
    """

    def __init__(self, conn: Connection, stream: str, history: pa.Table, seam: int,
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

    def to_pandas(self, decode: str = "auto") -> pd.DataFrame:
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


def follow(conn: Connection, name: str, *, subject: str | None = None,
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
        table = _empty()
    cfg: dict[str, Any] = {"deliver_policy": "by_start_sequence", "opt_start_seq": seam + 1}
    if subject and subject != ">":
        cfg["filter_subject"] = subject
    live = PushCapture(conn, name, cfg, timeout=timeout, max_bytes=max_bytes)
    return Follow(conn, name, table, seam, live)
