"""Binary payloads (MessagePack, CBOR, registered formats) -> the decoding contract's columns.

A decoder turns each payload into a Python value; the values then go through the very code
that flattens JSON values (``_jsondecode.value_columns``), so an object gives the same
columns, names and values whichever format carried it. What JSON has no form for is mapped
to plain Python values by :func:`plain` (docs/capture.md, "Binary payloads").

Fast path (MessagePack, CBOR): every payload is decoded in one C-level ``map``, then
``orjson.dumps`` checks in one more C-level ``map`` that each value is already a JSON value
(text keys, 64-bit integers, no bytes, timestamps or extension types); only the values it
refuses are walked by :func:`plain`, one by one. A payload that does not decode is read
again on its own (so one bad payload never spoils its batch) and becomes a flagged row.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import io
import json
from collections.abc import Callable, Sequence
from typing import Any, cast

import cbor2
import msgpack
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ..errors import BadInputError
from ._jsondecode import EMPTY, ERROR, MAX_DEPTH, no_gc, value_columns
from ._mpcolumns import columns as msgpack_columns
from ._spill import DECODER_KEY  # the schema metadata key naming a capture's decoder

__all__ = ["BUILTIN", "CBOR", "DECODER_KEY", "MSGPACK", "Decoder", "declare", "declared_decoder",
           "json_texts", "plain", "register_decoder", "registered", "with_decoder"]

#: The formats natsbook ships besides json / text / bytes.
BUILTIN = ("msgpack", "cbor")
_PLAIN_NAMES = ("auto", "json", "text", "bytes")


class _Bad(Exception):
    """A decoded value with no place in a frame (a map key with no text form, too deep)."""


# ------------------------------------------------------------------------- the mapping
def _key(key: Any) -> str:
    """A map key as column text: text as it is; null, booleans and numbers as JSON writes
    them (``1`` -> ``"1"``, ``True`` -> ``"true"``); bytes when they are UTF-8."""
    if type(key) is str:
        return key
    if key is None or isinstance(key, bool):
        return "null" if key is None else ("true" if key else "false")
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        return repr(float(key))
    if isinstance(key, bytes | bytearray | memoryview):
        try:
            return _text(bytes(key).decode("utf-8"))
        except UnicodeDecodeError:
            raise _Bad from None
    raise _Bad


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad from None
    return value


def _timestamp(value: Any) -> Any:
    """A UTC pandas Timestamp; outside pandas' range (1677-2262) the value stays as it was."""
    try:
        if isinstance(value, msgpack.Timestamp):
            return pd.Timestamp(value.to_unix_nano(), tz="UTC")
        ts = pd.Timestamp(value).as_unit("ns")
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (OverflowError, ValueError):  # pandas' OutOfBoundsDatetime is a ValueError
        return value


def _plain(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return _text(value)
    if value is None or kind is bool or kind is int or kind is float:
        return value
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise _Bad
        return {_key(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        if depth > MAX_DEPTH:
            raise _Bad
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, msgpack.Timestamp | _dt.datetime):
        return _timestamp(value)
    if value is cbor2.undefined:
        return None
    return value  # ExtType, CBORTag, Decimal, UUID, date, ...: kept as the decoder made them


def plain(value: Any) -> Any:
    """A decoded value by the contract's mapping, or ERROR when it has no place in a frame."""
    try:
        return _plain(value, 1)
    except (_Bad, RecursionError):
        return ERROR


_IS_JSON = functools.partial(orjson.dumps, option=orjson.OPT_PASSTHROUGH_DATETIME
                             | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _json_only(value: Any) -> Any:
    try:
        _IS_JSON(value)
    except orjson.JSONEncodeError:
        return plain(value)
    return value


def _one(loads: Callable[[bytes], Any], payload: bytes | None) -> Any:
    if not payload:
        return EMPTY
    try:
        value = loads(payload)
    except Exception:  # whatever the decoder raises, the row is flagged, never the frame
        return ERROR
    return plain(value)


# ------------------------------------------------------------------------- decoders
class Decoder:
    """One payload format: its name, how one payload becomes a Python value, and the
    schema metadata that declares it on a capture."""

    def __init__(self, name: str, loads: Callable[[bytes], Any], *,
                 strict: Callable[[bytes], Any] | None = None,
                 bulk: Callable[[Sequence[bytes], bytes], list[Any]] | None = None,
                 suspects: Callable[[Sequence[bytes], bytes], list[int]] | None = None,
                 columnar: Callable[[Any], dict[str, Any] | None] | None = None,
                 decode_empty: bool = False, metadata: dict[bytes, bytes] | None = None) -> None:
        #: ``decode=`` text that names this decoder.
        self.name = name
        #: One payload -> one Python value (any exception: a bad payload).
        self.loads = loads
        # A faster reading that may refuse payloads `loads` accepts (they are read again).
        self._strict = strict
        # `strict` over many payloads at once (raises when any is refused or bad); it and
        # `suspects` are also handed the payloads joined into one buffer.
        self._bulk = bulk
        # The payloads whose strict reading may still need the mapping (None: all of them).
        self._suspects = suspects
        # A whole payload column straight to columns, or None (not a batch it reads).
        self._columnar = columnar
        # Protobuf: zero bytes are a message with every field at its default.
        self.decode_empty = decode_empty
        self._metadata = {DECODER_KEY: name.encode(), **(metadata or {})}

    def __repr__(self) -> str:
        return f"<natsbook decoder {self.name!r}>"

    def metadata(self) -> dict[bytes, bytes]:
        """Schema metadata declaring this decoder on a capture (what it needs to be made
        again from a Parquet file: the name, and a protobuf decoder's descriptors)."""
        return dict(self._metadata)

    def values(self, payloads: Sequence[bytes | None], *, fast: bool = True) -> list[Any]:
        """EMPTY, ERROR or the plain value of each payload, each read on its own."""
        if self.decode_empty:
            payloads = [p if p is not None else b"" for p in payloads]
            careful = functools.partial(_one_or_empty, self.loads)
        else:
            careful = functools.partial(_one, self.loads)
        if not fast or self._strict is None:
            return list(map(careful, payloads))
        rows: list[int] | None = None
        if all(payloads):
            work = cast("list[bytes]", list(payloads))
        else:
            rows = [i for i, p in enumerate(payloads) if p]
            work = [cast(bytes, payloads[i]) for i in rows]
        joined = b"".join(work) if self._bulk is not None or self._suspects is not None else b""
        try:
            got = (self._bulk(work, joined) if self._bulk is not None
                   else list(map(self._strict, work)))
        except Exception:  # some payload is bad or needs the careful reading: row by row
            got = list(map(functools.partial(_strict_or, self._strict, careful), work))
        if self._suspects is not None:
            for i in self._suspects(work, joined):
                if got[i] is not ERROR:
                    got[i] = _json_only(got[i])
        else:
            try:
                for _ in map(_IS_JSON, got):
                    pass
            except orjson.JSONEncodeError:
                got = list(map(_json_only, got))
        if rows is None:
            return got
        out: list[Any] = [EMPTY] * len(payloads)
        for i, v in zip(rows, got, strict=True):
            out[i] = v
        return out

    def columns(self, col: pa.ChunkedArray | pa.Array, *, fast: bool = True) -> dict[str, Any]:
        """The contract's columns (as ``decode_json``) of a binary payload column."""
        if fast and self._columnar is not None:
            got = self._columnar(col)
            if got is not None:
                return got
        with no_gc():  # as decode_json: millions of small dicts, none in a cycle
            values = self.values(col.to_pylist(), fast=fast)
            columns = value_columns(values, fast=fast)
            del values
        return columns


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "data": base64.b64encode(value.data).decode("ascii")}
    if isinstance(value, msgpack.Timestamp):
        return {"ext": -1, "seconds": value.seconds, "nanoseconds": value.nanoseconds}
    if isinstance(value, pd.Timedelta):
        return value.isoformat()
    return str(value)  # Decimal, UUID, a CBOR tag, ...: its text


def _json_text(value: Any) -> str | None:
    if value is EMPTY or value is ERROR:
        return None
    try:
        return orjson.dumps(value, default=_json_default,
                            option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: the stdlib writes any size
        return json.dumps(value, default=_json_default, ensure_ascii=False)


def json_texts(decoder: Decoder, payloads: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each payload as JSON text for SQL's ``data`` column (docs/capture.md): NULL for an
    empty or bad payload (so ``data::JSON`` never fails; ``size`` tells them apart); bytes as
    base64, timestamps as ISO 8601 text."""
    with no_gc():
        values = decoder.values(payloads.to_pylist())
        texts = list(map(_json_text, values))
        del values
    return pa.array(texts, pa.string())


def _strict_or(strict: Callable[[bytes], Any], careful: Callable[[bytes], Any],
               payload: bytes) -> Any:
    try:
        return strict(payload)
    except Exception:
        return careful(payload)


def _one_or_empty(loads: Callable[[bytes], Any], payload: bytes) -> Any:
    try:
        return plain(loads(payload))
    except Exception:
        return ERROR


def _cbor_loads(payload: bytes) -> Any:
    """One CBOR item that fills the payload (cbor2.loads ignores trailing bytes)."""
    fp = io.BytesIO(payload)
    value = cbor2.CBORDecoder(fp).decode()
    if fp.tell() != len(payload):
        raise ValueError("bytes after the CBOR item")
    return value


# The fast MessagePack reading refuses (so the payload is read carefully) every value JSON has
# no form for: a map key other than text or bytes, a non-empty bin, any ext with data (a
# timestamp, an ExtType). What it lets through is JSON but for an empty bin (b"", fine as a
# value, not as a map key) and nesting deeper than MAX_DEPTH: `_msgpack_suspects` finds the
# payloads that may hold either.
_MSGPACK_STRICT = functools.partial(msgpack.unpackb, raw=False, timestamp=0, max_bin_len=0,
                                    max_ext_len=0)
_MSGPACK = functools.partial(msgpack.unpackb, raw=False, timestamp=0, strict_map_key=False)
_EMPTY_BINS = (b"\xc4\x00", b"\xc5\x00\x00", b"\xc6\x00\x00\x00\x00")


def _msgpack_suspects(payloads: Sequence[bytes], joined: bytes) -> list[int]:
    """Payloads long enough to nest deeper than MAX_DEPTH, or holding an empty bin's bytes
    (`joined`: the payloads end to end). A few more may be named (a pattern across two
    payloads): harmless, they are only checked again."""
    n = len(payloads)
    sizes = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
    rows = set(np.flatnonzero(sizes > MAX_DEPTH).tolist())
    # Every place in all payloads that starts one of the patterns, found by numpy in one pass
    # over the bytes: each pattern is 0xc4, 0xc5 or 0xc6 followed by zeros.
    data = np.frombuffer(joined + bytes(8), dtype=np.uint8)
    at = np.flatnonzero((data >= 0xC4) & (data <= 0xC6))
    for pattern in _EMPTY_BINS:
        hit = at[(data[at] == pattern[0]) & (at + len(pattern) <= len(joined))]
        for j in range(1, len(pattern)):
            hit = hit[data[hit + j] == 0]
        if len(hit):  # the payload each hit starts in
            rows.update(np.searchsorted(np.cumsum(sizes), hit, side="right").tolist())
    return sorted(rows)


def _msgpack_bulk(payloads: Sequence[bytes], joined: bytes) -> list[Any]:
    """The strict reading of every payload in one streaming pass over them all (`joined`, no
    keyword parsing per payload); raises unless each payload held exactly one value."""
    unpacker = msgpack.Unpacker(raw=False, timestamp=0, max_bin_len=0, max_ext_len=0,
                                max_buffer_size=max(len(joined), 1))
    unpacker.feed(joined)
    values: list[Any] = []
    ends: list[int] = []
    add, end, tell = values.append, ends.append, unpacker.tell
    for value in unpacker:
        add(value)
        end(tell())
    sizes = np.fromiter(map(len, payloads), dtype=np.int64, count=len(payloads))
    if len(ends) != len(payloads) or not np.array_equal(np.cumsum(sizes), ends):
        raise ValueError("a payload is not exactly one MessagePack value")
    return values


MSGPACK = Decoder("msgpack", _MSGPACK, strict=_MSGPACK_STRICT, bulk=_msgpack_bulk,
                  suspects=_msgpack_suspects, columnar=msgpack_columns)
CBOR = Decoder("cbor", _cbor_loads, strict=_cbor_loads)
_BUILTIN = {"msgpack": MSGPACK, "cbor": CBOR}
_registered: dict[str, Decoder] = {}


def register_decoder(name: str, fn: Callable[[bytes], Any]) -> None:
    """Teach natsbook a payload format: ``decode=name`` then works wherever ``decode=`` does.

    `fn` turns one payload (bytes, never empty) into a Python value; natsbook flattens that
    value by the decoding contract, as it would the same value sent as JSON (mapping what
    JSON has no form for as docs/capture.md says). A payload for which `fn` raises is a
    flagged row (``json_error``), never an exception. Registering a name again replaces it.

    Args:
        name: the ``decode=`` name: letters, digits, ``_``, ``-`` or ``.``; not one of
            auto, json, text, bytes, msgpack, cbor.
        fn: one payload -> one Python value (an Avro reader with its schema, a company's
            framing, ...).

    Raises:
        BadInputError: `name` is taken by a built-in decoding or is not a plain name, or
            `fn` is not callable.
    """
    if not isinstance(name, str) or not name or not all(
            c.isalnum() or c in "_-." for c in name) or not name.isascii():
        raise BadInputError(f"decoder name {name!r} is not a plain name - use letters, digits, "
                            "'_', '-' or '.'")
    if name in _PLAIN_NAMES or name in _BUILTIN or name.startswith("protobuf:"):
        raise BadInputError(f"decoder name {name!r} is natsbook's own - choose another name")
    if not callable(fn):
        raise BadInputError(f"register_decoder({name!r}, fn): fn must be callable (one "
                            "payload's bytes -> a Python value)")
    _registered[name] = Decoder(name, fn)


def registered(name: str) -> Decoder | None:
    """The built-in or registered decoder called `name`, if any."""
    return _BUILTIN.get(name) or _registered.get(name)


def declare(decode: str | Decoder | None) -> str | Decoder | None:
    """What a capture declares for ``subscribe(..., decode=...)``: None (no declaration: auto
    guesses), json / text / bytes, or a decoder.

    Raises:
        BadInputError: `decode` names no decoding natsbook knows.
    """
    if decode is None or decode == "auto":
        return None
    if isinstance(decode, Decoder) or decode in _PLAIN_NAMES:
        return decode
    found = registered(decode) if isinstance(decode, str) else None
    if found is None:
        raise BadInputError(f"decode={decode!r} is not one of {', '.join(_PLAIN_NAMES + BUILTIN)}"
                            ", a name given to natsbook.register_decoder, or "
                            "natsbook.protobuf(...)")
    return found


def with_decoder(schema: pa.Schema, decoder: str | Decoder | None) -> pa.Schema:
    """`schema` declaring `decoder` (unchanged for None)."""
    if decoder is None:
        return schema
    if isinstance(decoder, str):
        return schema.with_metadata({DECODER_KEY: decoder.encode()})
    return schema.with_metadata(decoder.metadata())


def declared_decoder(schema: pa.Schema) -> str | Decoder | None:
    """The decoder a capture's schema declares, or None.

    Raises:
        BadInputError: it declares a registered name not registered in this process.
    """
    meta = schema.metadata
    if not meta or DECODER_KEY not in meta:
        return None
    name = meta[DECODER_KEY].decode("utf-8", "replace")
    if name in _PLAIN_NAMES:
        return name
    if name.startswith("protobuf:"):
        from ._protobuf import from_metadata

        return from_metadata(meta)
    decoder = registered(name)
    if decoder is None:
        raise BadInputError(f"this capture declares decoder {name!r}, which is not registered "
                            f"here - call natsbook.register_decoder({name!r}, fn) first, or "
                            "pass decode= explicitly")
    return decoder
