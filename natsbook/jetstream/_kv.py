"""JetStream key-value buckets as DataFrames.

A bucket ``B`` is the stream ``KV_B`` storing subjects ``$KV.B.<key>``; each put is a message,
a delete or purge is a message with a ``KV-Operation`` header, and a marker the server leaves
when a limit removes a key's last entry (``Nats-Marker-Reason``: ``MaxAge``, ``Purge``,
``Remove``; nats-server 2.11+) reads as a purge or delete, as nats.go reads it.
``KV.to_pandas()`` reads the latest entry of every key in one batched direct get
(``multi_last``); ``history(key)`` and ``watch()`` reuse the stream-history and push-capture
machinery of :mod:`natsbook.jetstream` and :mod:`natsbook.jetstream._jsread`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..capture import TABLE, mark
from ..capture._binary import Decoder
from ..capture._frames import DecodeArg, resolve_decode
from ..capture._jsondecode import EMPTY, ERROR
from ..errors import BadInputError, JetStreamError, NotFoundError
from ._features import kv_operation, kv_operation_raw
from ._jsapi import API, api_request, check_bucket, not_found_error, stream_names
from ._jsparse import parse_direct
from ._jsread import Batches, PushCapture
from ._streams import add_stream, js_publish, read_stream, stream_info

if TYPE_CHECKING:
    from ..core import Link

__all__ = ["KV", "KVEntry", "KVWatch", "create_kv", "kv", "kv_buckets"]

_KEY_RE = re.compile(r"^[-/_=.a-zA-Z0-9]+$")
_KEY_PATTERN_RE = re.compile(r"^[-/_=.a-zA-Z0-9*>]+$")
# JetStream's err_code for a failed expected-last-(subject-)sequence check.
_WRONG_LAST_SEQUENCE = 10071
_COLUMNS = ["key", "value", "revision", "created", "operation"]


def _check_key(key: str, pattern: bool = False) -> None:
    ok = _KEY_PATTERN_RE if pattern else _KEY_RE
    if (not isinstance(key, str) or not ok.match(key) or key.startswith(".")
            or key.endswith(".") or ".." in key):
        raise BadInputError(f"bad key {key!r}: keys are dot-separated tokens of letters, digits "
                            "and -/_=" + (" (with * and > as wildcards)" if pattern else ""))


@dataclass(slots=True, frozen=True)
class KVEntry:
    """One entry of a bucket."""

    bucket: str
    key: str
    value: bytes
    revision: int
    created: pd.Timestamp
    operation: str = "PUT"

    def text(self) -> str:
        return self.value.decode("utf-8")

    def json(self) -> Any:
        return orjson.loads(self.value)


def kv_buckets(conn: Link) -> list[str]:
    """Names of the key-value buckets in the account."""
    return [n[3:] for n in stream_names(conn) if n.startswith("KV_")]


def create_kv(conn: Link, bucket: str, *, history: int = 1, ttl: float | None = None,
              storage: str = "file", max_bytes: int = -1, max_value_size: int = -1,
              description: str | None = None, marker_ttl: float | None = None,
              timeout: float = 5.0) -> KV:
    """Create a bucket (or update a compatible one) and return it.

    Args:
        history: revisions kept per key (1-64).
        ttl: seconds an entry lives (None: forever).
        marker_ttl: seconds the server keeps a marker where an entry expired (nats-server
            2.11+, ``subject_delete_marker_ttl``; at least 1): watches then see the expiry
            as a ``PURGE``. Also allows per-key TTLs (``kv.create(key, value, ttl=)``).
    """
    check_bucket(bucket)
    if not 1 <= history <= 64:
        raise BadInputError(f"history={history} must be between 1 and 64")
    cfg: dict[str, Any] = {
        "max_msgs_per_subject": history, "discard": "new", "deny_delete": True,
        "allow_rollup_hdrs": True, "max_bytes": max_bytes, "max_msg_size": max_value_size,
        "max_age": int((ttl or 0) * 1e9), "duplicate_window": int(min(ttl or 120, 120) * 1e9),
    }
    if description:
        cfg["description"] = description
    if marker_ttl is not None and not marker_ttl >= 1:
        raise BadInputError(f"marker_ttl={marker_ttl!r} must be at least 1 second")
    add_stream(conn, f"KV_{bucket}", [f"$KV.{bucket}.>"], storage=storage, allow_direct=True,
               subject_delete_marker_ttl=marker_ttl, timeout=timeout, **cfg)
    return KV(conn, bucket, timeout=timeout)


def kv(conn: Link, bucket: str, *, create: bool = False, timeout: float = 5.0,
       **options: Any) -> KV:
    """Open an existing bucket; with ``create=True`` a missing one is created with `options`
    (those of :func:`create_kv`). An existing bucket is opened as it is: its config is never
    changed here (``create_kv`` updates it), so running a cell again cannot shrink its
    history or TTL.

    Raises:
        NotFoundError: no such bucket and ``create=False`` ("did you mean" in the message).
    """
    if not create:
        return KV(conn, bucket, timeout=timeout)
    try:
        return KV(conn, bucket, timeout=timeout)
    except NotFoundError:
        return create_kv(conn, bucket, timeout=timeout, **options)


def _operations(headers: pa.ChunkedArray | pa.Array) -> np.ndarray:
    ops = np.full(len(headers), "PUT", dtype=object)
    if headers.null_count == len(headers):
        return ops
    for i, block in enumerate(headers.to_pylist()):
        if block:
            ops[i] = kv_operation_raw(block)
    return ops


def _values(payload: pa.ChunkedArray | pa.Array, decode: DecodeArg) -> pd.Series:
    mode = resolve_decode(decode)
    if isinstance(mode, Decoder):  # msgpack, cbor, protobuf, a registered decoder
        got = mode.values(payload.to_pylist())
        # A value that does not decode (or an empty one: a delete marker) is None, as a
        # value that is not JSON is for decode="json".
        return pd.Series([None if v is EMPTY or v is ERROR else v for v in got], dtype=object)
    if decode == "bytes":
        return pd.Series(payload.to_pylist(), dtype=object)
    if decode == "json":
        return pd.Series([_loads(p) for p in payload.to_pylist()], dtype=object)
    try:
        return pd.Series(payload.cast(pa.string()).to_pandas(), copy=False)
    except pa.ArrowInvalid:
        if decode == "text":
            return pd.Series([p.decode("utf-8", "replace") for p in payload.to_pylist()],
                             dtype="str")
        return pd.Series(payload.to_pylist(), dtype=object)


def _loads(p: bytes | None) -> Any:
    """A JSON value; None for empty or non-JSON values (delete markers, plain text)."""
    try:
        return orjson.loads(p) if p else None
    except orjson.JSONDecodeError:
        return None


def _kv_frame(table: pa.Table, prefix: str, decode: DecodeArg,
              include_deleted: bool) -> pd.DataFrame:
    resolve_decode(decode)  # BadInputError naming the decodings natsbook knows
    ops = _operations(table["headers"])
    if not include_deleted and len(ops):
        table = table.filter(pa.array(ops == "PUT"))
        ops = ops[ops == "PUT"]
    keys = pc.utf8_slice_codeunits(table["subject"], len(prefix))
    frame = pd.DataFrame({
        "key": pd.Series(keys.to_pandas(), dtype="str"),
        "value": _values(table["payload"], decode),
        "revision": pd.Series(table["seq"].to_numpy(), dtype="int64"),
        "created": table["time"].to_pandas(),
        "operation": pd.Series(ops, dtype="str"),
    }, columns=_COLUMNS)
    return mark(frame.reset_index(drop=True), TABLE)


class KV:
    """A key-value bucket: ``conn.kv(bucket)`` or ``natsbook.jetstream.kv(conn, bucket)``."""

    def __init__(self, conn: Link, bucket: str, *, timeout: float = 5.0) -> None:
        check_bucket(bucket)
        self.conn = conn
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self.prefix = f"$KV.{bucket}."
        self.timeout = timeout
        try:
            self.info = stream_info(conn, self.stream, timeout=timeout)
        except NotFoundError:
            raise not_found_error("bucket", bucket, kv_buckets(conn), "create it with "
                             f"conn.kv({bucket!r}, create=True)") from None
        self.direct = bool(self.info.get("config", {}).get("allow_direct"))

    # -- single keys -------------------------------------------------------------------------
    def get(self, key: str, *, revision: int | None = None) -> KVEntry:
        """The latest entry of `key` (or a given revision).

        Raises:
            NotFoundError: the key does not exist or was deleted.
        """
        _check_key(key)
        entry = self._entry(key, revision)
        if entry.operation != "PUT":
            raise self._missing(key, deleted=True)
        return entry

    def _entry(self, key: str, revision: int | None = None) -> KVEntry:
        """The latest entry of `key` (or a given revision), delete/purge markers included."""
        subject = self.prefix + key
        req: dict[str, Any] = {"seq": revision} if revision else {"last_by_subj": subject}
        if self.direct:
            msg = self.conn.request(f"{API}DIRECT.GET.{self.stream}", req, timeout=self.timeout)
            if msg.status == 404 or msg.headers is None:
                raise self._missing(key)
            if msg.status is not None:
                raise JetStreamError(f"get {key!r} from bucket {self.bucket!r}: "
                                     f"{msg.status} {msg.description}", code=msg.status)
            h = msg.headers
            got_subject, seq, ts = h["Nats-Subject"], int(h["Nats-Sequence"]), h[
                "Nats-Time-Stamp"]
            op = kv_operation(h.items_all())
            data = msg.data
        else:
            try:
                body = api_request(self.conn, f"STREAM.MSG.GET.{self.stream}", req,
                                   timeout=self.timeout)
            except JetStreamError as exc:
                if exc.code == 404:
                    raise self._missing(key) from None
                raise
            m = body["message"]
            got_subject, seq, ts = m["subject"], int(m["seq"]), m["time"]
            data = base64.b64decode(m.get("data") or b"")
            op = "PUT"
            if m.get("hdrs"):
                op = kv_operation_raw(base64.b64decode(m["hdrs"]))
        if got_subject != subject:
            raise NotFoundError("revision", f"{key}@{revision}", None)
        return KVEntry(self.bucket, key, data, seq, pd.Timestamp(ts), op)

    def _missing(self, key: str, deleted: bool = False) -> NotFoundError:
        err = NotFoundError("key", key, None)
        err.args = (f"natsbook: key {key!r} not found in bucket {self.bucket!r}"
                    + (" (it was deleted)" if deleted else "") + " - see kv.keys()",)
        return err

    def put(self, key: str, value: Any) -> int:
        """Store `value` (bytes, str, or JSON-able) under `key`; returns the new revision."""
        _check_key(key)
        return js_publish(self.conn, self.prefix + key, value, timeout=self.timeout).seq

    def create(self, key: str, value: Any, *, ttl: Any = None) -> int:
        """Store only if `key` holds no value: it never existed, or its latest entry is a
        delete or purge marker (as the official clients do). Returns the new revision.
        ``ttl`` (seconds, nats-server 2.11+, a bucket made with ``marker_ttl``): the key
        expires after it (as nats.go's ``KeyTTL``).

        Raises:
            JetStreamError: the key holds a value (``err_code`` 10071, "wrong last sequence").
        """
        _check_key(key)
        try:
            return js_publish(self.conn, self.prefix + key, value,
                              expected_last_subject_seq=0, ttl=ttl, timeout=self.timeout).seq
        except JetStreamError as exc:
            if exc.err_code != _WRONG_LAST_SEQUENCE:
                raise
            first = exc
        # The key has entries: if the latest one is a delete/purge marker, the key is absent
        # for the user, so replace that marker - and only that one (compare-and-set on its
        # revision, so a put racing with us still makes this create fail).
        try:
            latest: KVEntry | None = self._entry(key)
        except NotFoundError:  # purged away between the two requests: retry as new
            latest = None
        if latest is None or latest.operation != "PUT":
            try:
                return js_publish(self.conn, self.prefix + key, value,
                                  expected_last_subject_seq=latest.revision if latest else 0,
                                  ttl=ttl, timeout=self.timeout).seq
            except JetStreamError as exc:
                if exc.err_code != _WRONG_LAST_SEQUENCE:
                    raise
        raise JetStreamError(f"key {key!r} already exists in bucket {self.bucket!r} - use "
                             "put() to overwrite or update(key, value, last=revision)",
                             code=first.code, err_code=first.err_code) from None

    def update(self, key: str, value: Any, last: int) -> int:
        """Store only if the latest revision of `key` is `last` (compare-and-set)."""
        _check_key(key)
        return js_publish(self.conn, self.prefix + key, value, expected_last_subject_seq=last,
                          timeout=self.timeout).seq

    def delete(self, key: str) -> int:
        """Mark `key` deleted (its history stays); returns the delete marker's revision."""
        _check_key(key)
        return js_publish(self.conn, self.prefix + key, b"", headers={"KV-Operation": "DEL"},
                          timeout=self.timeout).seq

    def purge(self, key: str) -> int:
        """Delete `key` and drop its history."""
        _check_key(key)
        return js_publish(self.conn, self.prefix + key, b"",
                          headers={"KV-Operation": "PURGE", "Nats-Rollup": "sub"},
                          timeout=self.timeout).seq

    # -- whole bucket --------------------------------------------------------------------------
    def _latest(self) -> pa.Table:
        """The newest message of every key (puts and delete markers)."""
        state = stream_info(self.conn, self.stream, timeout=self.timeout).get("state", {})
        if not state.get("messages"):
            return read_stream(self.conn, self.stream, max_rows=0)
        if not self.direct:
            table = read_stream(self.conn, self.stream, timeout=self.timeout)
            return _last_per_subject(table)
        # One batched multi_last request gives each key's newest message; servers limit how
        # many subjects it may cover, so past that limit read the whole bucket instead.
        reader = Batches(self.conn, self.timeout)
        try:
            req = {"multi_last": [self.prefix + ">"],
                   "batch": int(state.get("num_subjects", 0)) + 1,
                   "up_to_seq": int(state.get("last_seq", 0))}
            end = reader.request(f"{API}DIRECT.GET.{self.stream}", req)
            complete = end.status == 204 and int(end.headers.get("Nats-Num-Pending", "0")) == 0
            table = parse_direct(reader.table()) if complete else None
        finally:
            reader.close()
        if table is None:
            table = _last_per_subject(read_stream(self.conn, self.stream, timeout=self.timeout))
        return table

    def to_pandas(self, decode: DecodeArg = "auto", *,
                  include_deleted: bool = False) -> pd.DataFrame:
        """Every key's latest entry: key, value, revision, created, operation (sorted by key).

        Args:
            decode: "auto" (text when UTF-8, else bytes), "text", "bytes" or "json" (values
                parsed into Python objects; None where a value is not JSON).
            include_deleted: keep keys whose latest entry is a delete/purge marker.
        """
        frame = _kv_frame(self._latest(), self.prefix, decode, include_deleted)
        return frame.sort_values("key", ignore_index=True)

    def keys(self) -> list[str]:
        """Keys that currently hold a value, sorted."""
        return self.to_pandas("bytes")["key"].tolist()

    def history(self, key: str, decode: DecodeArg = "auto") -> pd.DataFrame:
        """Every kept revision of `key` (deletes included), oldest first."""
        _check_key(key, pattern=True)
        table = read_stream(self.conn, self.stream, subject=self.prefix + key,
                            timeout=self.timeout)
        return _kv_frame(table, self.prefix, decode, include_deleted=True)

    def watch(self, keys: str = ">", *, include_history: bool = False,
              updates_only: bool = False, max_bytes: int | None = None) -> KVWatch:
        """Capture changes to `keys` (wildcards allowed) as they happen.

        By default the watch starts with each key's current entry, then every change;
        ``updates_only=True`` skips the current entries, ``include_history=True`` starts
        from every kept revision.
        """
        _check_key(keys, pattern=True)
        policy = "new" if updates_only else ("all" if include_history else "last_per_subject")
        cfg = {"deliver_policy": policy, "filter_subject": self.prefix + keys}
        return KVWatch(self, PushCapture(self.conn, self.stream, cfg, timeout=self.timeout,
                                         max_bytes=max_bytes))

    def __repr__(self) -> str:
        st = self.info.get("state", {})
        return f"<KV {self.bucket!r} keys~{st.get('num_subjects', '?')}>"


def _last_per_subject(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    subj = table["subject"].to_numpy(zero_copy_only=False)
    # Rows are in sequence order: the last occurrence of each subject is its newest entry.
    _, first_from_end = np.unique(subj[::-1], return_index=True)
    idx = np.sort(len(subj) - 1 - first_from_end)
    return table.take(pa.array(idx))


class KVWatch:
    """A running watch: ``to_pandas()`` lists every change seen so far, oldest first."""

    def __init__(self, bucket: KV, capture: PushCapture) -> None:
        self.kv = bucket
        self.capture = capture

    def to_pandas(self, decode: DecodeArg = "auto") -> pd.DataFrame:
        table, _ = self.capture.table()
        return _kv_frame(table, self.kv.prefix, decode, include_deleted=True)

    def stop(self) -> None:
        self.capture.stop()

    def __len__(self) -> int:
        return self.capture.table()[0].num_rows

    def __enter__(self) -> KVWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<KVWatch {self.kv.bucket!r} changes={len(self)}>"
