"""Arrow capture tables -> pandas DataFrames, with payload decoding (json / text / bytes / auto).

JSON flattening is vectorised. Fast path: when every payload is a one-line JSON object, the
payloads are joined into one newline-delimited buffer inside Arrow and parsed by Arrow's
multi-threaded JSON reader (ISO-8601 strings then become timestamps). Otherwise (bad rows,
arrays, empty payloads) each payload is parsed with orjson in one comprehension, invalid ones
become nulls with ``json_error`` set, the objects become one Arrow struct array (type inference
and null filling in C++), and nested structs are flattened into dotted columns. Only when Arrow
cannot unify the types (one key holding a number and a string) does it fall back to one pandas
build from flattened dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ._protocol import parse_headers
from ._subjects import matches
from .errors import BadInputError

__all__ = ["META_COLUMNS", "Decode", "filter_table", "to_frame"]

Decode = Literal["auto", "json", "text", "bytes"]
META_COLUMNS = ("time", "subject", "reply", "headers", "size")
_DECODES = ("auto", "json", "text", "bytes")
_EMPTY_JSON = object()


def filter_table(table: pa.Table, *, subject: str | None = None, since: Any = None,
                 last: int | None = None) -> pa.Table:
    """Rows whose subject matches the pattern, received at or after `since`, newest `last`."""
    if subject is not None and table.num_rows:
        uniq = pc.unique(table["subject"]).to_pylist()
        keep = [s for s in uniq if s is not None and matches(subject, s)]
        table = table.filter(pc.is_in(table["subject"], value_set=pa.array(keep, pa.string())))
    if since is not None and table.num_rows:
        ts = pd.Timestamp(since)
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        scalar = pa.scalar(ts.value, pa.timestamp("ns", tz="UTC"))
        table = table.filter(pc.greater_equal(table["time"], scalar))
    if last is not None:
        if last < 0:
            raise BadInputError(f"last={last} must be >= 0")
        table = table.slice(max(table.num_rows - last, 0))
    return table


def _headers_column(col: pa.ChunkedArray) -> list[Any]:
    out: list[Any] = [None] * len(col)
    if col.null_count == len(col):
        return out
    # Publishers usually repeat the same header block: parse each distinct block once.
    parsed: dict[bytes, dict[str, list[str]]] = {}
    for i, block in enumerate(col.to_pylist()):
        if not block:
            continue
        d = parsed.get(block)
        if d is None:
            status, desc, items = parse_headers(block)
            d = {}
            for k, v in items:
                d.setdefault(k, []).append(v)
            if status is not None:
                d.setdefault("Status", [str(status)])
                if desc:
                    d.setdefault("Description", [desc])
            if len(parsed) < 65_536:
                parsed[block] = d
        else:
            d = {k: list(v) for k, v in d.items()}  # each row owns its dict
        out[i] = d
    return out


def _loads(payloads: list[bytes | None]) -> tuple[list[Any], list[bool]]:
    loads = orjson.loads
    values: list[Any] = []
    errors: list[bool] = []
    for p in payloads:
        try:
            values.append(loads(p) if p else _EMPTY_JSON)
            errors.append(False)
        except orjson.JSONDecodeError:
            values.append(None)
            errors.append(True)
    return values, errors


def _flatten_struct(arr: pa.Array, prefix: str, out: dict[str, pa.Array]) -> None:
    if pa.types.is_struct(arr.type):
        if arr.type.num_fields == 0:
            return
        children = arr.flatten()
        for fld, child in zip(arr.type, children, strict=True):
            _flatten_struct(child, f"{prefix}{fld.name}.", out)
    else:
        out[prefix[:-1]] = arr


def _flatten_py(obj: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            _flatten_py(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = v


def _json_fast(payload: pa.ChunkedArray) -> dict[str, Any] | None:
    """All payloads are one-line JSON objects: let Arrow's multi-threaded JSON reader parse
    them as one newline-delimited document. None when that does not hold (then the caller
    takes the row-by-row path that tolerates bad rows)."""
    if len(payload) == 0 or payload.null_count:
        return None
    arr = payload.combine_chunks() if isinstance(payload, pa.ChunkedArray) else payload
    if not pc.all(pc.greater(pc.binary_length(arr), 0)).as_py():
        return None
    try:
        joined = pc.binary_join_element_wise(arr, pa.scalar(b"\n", pa.binary()),
                                             pa.scalar(b"", pa.binary()))
        _, offsets, data = joined.buffers()
        offs = np.frombuffer(offsets, dtype=np.int32, count=len(joined) + 1,
                             offset=joined.offset * 4)
        text = data[int(offs[0]):int(offs[-1])]
        table = pj.read_json(pa.BufferReader(text),
                             read_options=pj.ReadOptions(block_size=max(1 << 20, len(text) // 8)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None
    if table.num_rows != len(arr):
        return None  # a payload spanning lines, or several objects in one payload
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    columns: dict[str, Any] = {name: table[name].to_pandas() for name in table.column_names}
    columns["\0json_error"] = pd.Series(np.zeros(len(arr), dtype=bool))
    return columns


def _json_columns(payloads: list[bytes | None]) -> dict[str, Any]:
    values, errors = _loads(payloads)
    objs = [v if isinstance(v, dict) else None for v in values]
    others = [None if (isinstance(v, dict) or v is _EMPTY_JSON) else v for v in values]
    columns: dict[str, Any] = {}
    try:
        struct = pa.array(objs)
        if not pa.types.is_struct(struct.type):  # all None
            raise pa.ArrowInvalid("no objects")
        flat: dict[str, pa.Array] = {}
        _flatten_struct(struct, "", flat)
        for name, arr in flat.items():
            columns[name] = arr.to_pandas(types_mapper=_types_mapper)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        rows: list[dict[str, Any]] = []
        for o in objs:
            d: dict[str, Any] = {}
            if o is not None:
                _flatten_py(o, "", d)
            rows.append(d)
        if any(rows):
            frame = pd.DataFrame.from_records(rows)
            for name in frame.columns:
                columns[str(name)] = frame[name]
    if any(v is not None for v in others):
        columns["\0data"] = pd.Series(others, dtype=object)
    columns["\0json_error"] = pd.Series(errors, dtype=bool)
    return columns


def _types_mapper(t: pa.DataType) -> Any:
    # Keep numeric columns as numpy floats/ints (nullable ints become float via Arrow default).
    return None


def _decode_text(col: pa.ChunkedArray) -> pd.Series:
    try:
        return pd.Series(col.cast(pa.string()).to_pandas(), copy=False)
    except pa.ArrowInvalid:
        return pd.Series(
            [None if b is None else b.decode("utf-8", "replace") for b in col.to_pylist()],
            dtype="str",
        )


def _choose(col: pa.ChunkedArray) -> str:
    n = len(col)
    if n == 0:
        return "bytes"
    sample = col.slice(0, min(n, 2000)).to_pylist()
    nonempty = [p for p in sample if p]
    if nonempty:
        values, _ = _loads(nonempty)
        n_obj = sum(isinstance(v, dict) for v in values)
        if n_obj * 2 >= len(nonempty):
            return "json"
    try:
        col.cast(pa.string())
        return "text"
    except pa.ArrowInvalid:
        return "bytes"


def to_frame(table: pa.Table, decode: str = "auto",
             extra: Iterable[tuple[str, pa.ChunkedArray | pa.Array]] = ()) -> pd.DataFrame:
    """Build the capture DataFrame.

    Columns: ``time`` (datetime64[ns, UTC]), ``subject``, ``reply``, ``headers`` (dict of
    key -> list of values, or None), ``size`` (payload bytes), then the decoded payload: ``data``
    for text/bytes, or one column per (dotted) JSON key plus ``json_error`` for json. Columns in
    `extra` (e.g. JetStream ``seq``) come right after ``time``.
    """
    if decode not in _DECODES:
        raise BadInputError(f"decode={decode!r} is not one of {', '.join(_DECODES)}")
    payload = table["payload"]
    mode = _choose(payload) if decode == "auto" else decode
    cols: dict[str, Any] = {"time": table["time"].to_pandas()}
    for name, arr in extra:
        cols[name] = arr.to_pandas()
    cols["subject"] = table["subject"].to_pandas()
    cols["reply"] = table["reply"].to_pandas()
    cols["headers"] = pd.Series(_headers_column(table["headers"]), dtype=object)
    cols["size"] = pc.binary_length(payload).to_pandas().fillna(0).astype("int64")
    if mode == "bytes":
        cols["data"] = pd.Series(payload.to_pandas(types_mapper=pd.ArrowDtype), copy=False)
    elif mode == "text":
        cols["data"] = _decode_text(payload)
    else:
        decoded = _json_fast(payload)
        if decoded is None:
            decoded = _json_columns(payload.to_pylist())
        for name, series in decoded.items():
            if name.startswith("\0"):
                key = name[1:]
                cols[key] = series
                continue
            key = f"data.{name}" if (name in cols or name in ("data", "json_error")) else name
            cols[key] = series
    frame = pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in cols.items()})
    return frame
