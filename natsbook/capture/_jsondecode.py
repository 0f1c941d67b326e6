"""JSON payloads -> DataFrame columns, by the written contract (README, "Decoding contract").

Every payload is read on its own, so a row's values never depend on the other rows of the
batch. Pure: lists of bytes in, columns out; no I/O.

Two ways to the same columns:

- fast (default): orjson parses every payload in one C-level ``map``; rows orjson rejects, and
  rows holding a float of magnitude >= 2**63 (orjson silently reads integers beyond 64 bits as
  such floats), are read again one by one by the careful parser. Objects with the same keys
  are cut into columns with one C-level ``map`` per key (telemetry has a handful of shapes,
  so this is a few passes, not a Python loop per cell).
- careful (``fast=False``): the stdlib parser on every payload and one flattening per row.

The property tests in ``tests/test_decoding.py`` hold both to a plain reference decoder.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EMPTY", "ERROR", "MAX_DEPTH", "RESERVED", "column_name", "decode_json", "depth_ok",
           "no_gc", "parse_careful", "split_name", "value_columns"]

#: Metadata column names. A top-level payload key with one of these names gets the column
#: ``data.<key>`` (so do all columns nested under it), whether or not the metadata column is in
#: this frame: the names never depend on the batch.
RESERVED = frozenset({"time", "subject", "reply", "headers", "header_error", "size", "data",
                      "json_error", "seq", "sub"})
_BOM = b"\xef\xbb\xbf"
_NONE = type(None)
#: Objects and arrays nested deeper than this make a bad payload (no recursion limit is hit,
#: by natsbook or by whoever reads the frame).
MAX_DEPTH = 256
_MIN_DEEP_BYTES = 2 * (MAX_DEPTH + 1)  # a shorter payload cannot nest deeper than MAX_DEPTH
_TWO_63 = 2.0**63  # orjson reads integers beyond 64 bits as floats, all of them this large


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: A zero-byte payload (no value, not an error).
EMPTY = _Marker("EMPTY")
#: A payload that is not exactly one JSON value in UTF-8.
ERROR = _Marker("ERROR")


# ------------------------------------------------------------------------------- names
def _escape(key: str) -> str:
    if "." in key or "\\" in key:
        return key.replace("\\", "\\\\").replace(".", "\\.")
    return key


def column_name(path: Sequence[str]) -> str:
    """The column of a key path: keys joined by ``.`` with ``.`` and ``\\`` inside a key
    escaped by ``\\``, and ``data.`` in front when the first key is a metadata name."""
    name = ".".join(map(_escape, path))
    return f"data.{name}" if path[0] in RESERVED else name


def split_name(name: str) -> list[str]:
    """The key path of a column name (inverse of `column_name`)."""
    if name.startswith("data."):
        name = name[5:]
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\" and i + 1 < len(name):
            cur.append(name[i + 1])
            i += 2
            continue
        if ch == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


# ------------------------------------------------------------------------------- parsing
def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is beyond the range of a double")
    return value


def depth_ok(value: Any) -> bool:
    """At most MAX_DEPTH nested objects/arrays (iterative: any depth is safe to check)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if type(v) is dict:
            children: Any = v.values()
        elif type(v) is list:
            children = v
        else:
            continue
        if d > MAX_DEPTH:
            return False
        stack.extend((c, d + 1) for c in children if type(c) is dict or type(c) is list)
    return True


def _strings_ok(value: Any) -> bool:
    """No lone surrogates (``"\\ud800"``): such a string cannot be printed or stored."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_strings_ok(k) and _strings_ok(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_strings_ok, value))
    return True


def parse_careful(payload: bytes | None) -> Any:
    """One payload by the contract: EMPTY, ERROR, or the JSON value (ints of any size)."""
    if not payload:
        return EMPTY
    if payload.startswith(_BOM):
        payload = payload[3:]
    try:
        value = json.loads(payload.decode("utf-8"), parse_float=_parse_float,
                           parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ERROR
    return value if depth_ok(value) and _strings_ok(value) else ERROR


def _loads_one(payload: bytes | None) -> Any:
    try:
        return orjson.loads(payload)  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return parse_careful(payload)


def parse_payloads(col: pa.ChunkedArray | pa.Array, *,
                   fast: bool = True) -> tuple[list[bytes | None], list[Any]]:
    """Each payload of a binary column parsed on its own (EMPTY / ERROR / value).

    The fast way may leave a float where the payload held an integer beyond 64 bits
    (``_big_floats`` finds the rows to read again)."""
    payloads = col.to_pylist()
    if not fast:
        return payloads, [parse_careful(p) for p in payloads]
    try:
        values = list(map(orjson.loads, payloads))
    except orjson.JSONDecodeError:
        values = list(map(_loads_one, payloads))
    lengths = pc.binary_length(col).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(lengths >= _MIN_DEEP_BYTES).tolist():
        if values[i] is not ERROR and not depth_ok(values[i]):
            values[i] = ERROR
    return payloads, values


def _has_big_float(value: Any) -> bool:
    if type(value) is float:
        return abs(value) >= _TWO_63
    if type(value) is list:
        return any(map(_has_big_float, value))
    if type(value) is dict:
        return any(map(_has_big_float, value.values()))
    return False


def _big_floats(vals: Sequence[Any], kinds: set[type]) -> list[int]:
    """Rows of a column holding a float of magnitude >= 2**63, anywhere inside: orjson reads an
    integer beyond 64 bits as such a float (a genuine float there is read again, harmlessly)."""
    if float not in kinds and list not in kinds and dict not in kinds:
        return []
    if kinds <= {float, int, _NONE}:
        try:
            arr = np.array(vals, dtype=np.float64)
        except OverflowError:
            pass
        else:
            return np.flatnonzero(np.abs(arr) >= _TWO_63).tolist()
    return [i for i, v in enumerate(vals) if _has_big_float(v)]


# ------------------------------------------------------------------------------- columns
def flatten_row(obj: dict[str, Any], prefix: tuple[str, ...], out: dict[str, Any]) -> None:
    """One object's cells: nested non-empty objects dotted, everything else one cell."""
    for key, value in obj.items():
        path = (*prefix, key)
        if type(value) is dict and value:
            flatten_row(value, path, out)
        else:
            out[column_name(path)] = value


_Chunks = dict[str, list[tuple[Sequence[int], Sequence[Any], set[type]]]]


def _collect(objs: list[dict[str, Any]], rows: Sequence[int], prefix: tuple[str, ...],
             out: _Chunks) -> None:
    """Cut objects into column chunks, one group of objects with the same keys at a time."""
    ks0 = list(objs[0])
    groups: list[tuple[list[str], list[dict[str, Any]], Sequence[int]]] = []
    cols: list[Sequence[Any]] | None = None
    lens = list(map(len, objs))
    if lens.count(lens[0]) == len(lens):
        # Same size as the first object and holding each of its keys: the same keys.
        try:
            cols = [list(map(itemgetter(k), objs)) for k in ks0]
            groups.append((ks0, objs, rows))
        except KeyError:
            cols = None
    if cols is None and _collect_by_key(objs, rows, prefix, out):
        return
    if cols is None:
        by_keys: dict[tuple[str, ...], tuple[list[dict[str, Any]], list[int]]] = {}
        for k, o, r in zip(map(tuple, objs), objs, rows, strict=True):
            g = by_keys.get(k)
            if g is None:
                g = by_keys[k] = ([], [])
            g[0].append(o)
            g[1].append(r)
        groups = [(list(k), g[0], g[1]) for k, g in by_keys.items()]
    for ks, gobjs, grows in groups:
        if not ks:
            continue
        if cols is None or gobjs is not objs:
            cols = [list(map(itemgetter(k), gobjs)) for k in ks]
        for key, vals in zip(ks, cols, strict=True):
            path = (*prefix, key)
            kinds = set(map(type, vals))
            if dict not in kinds:
                out.setdefault(column_name(path), []).append((grows, vals, kinds))
                continue
            if len(kinds) == 1 and all(vals):  # a non-empty object in every row
                _collect(list(vals), grows, path, out)
                continue
            _mixed(grows, vals, None, path, out)


def _collect_by_key(objs: list[dict[str, Any]], rows: Sequence[int], prefix: tuple[str, ...],
                    out: _Chunks) -> bool:
    """Objects of a few shapes that share most keys (telemetry with optional keys): one
    C-level pass per key over every object, None where the key is missing. False (nothing
    done) for many shapes or keys spread thin, where grouping by shape is cheaper."""
    shapes = dict.fromkeys(map(tuple, objs))
    if len(shapes) > 64:
        return False
    keys = dict.fromkeys(k for shape in shapes for k in shape)
    if len(keys) > 2 * max(map(len, shapes)):
        return False
    n = len(objs)
    for key in keys:
        path = (*prefix, key)
        vals = list(map(dict.get, objs, repeat(key, n)))
        kinds = set(map(type, vals))
        has: list[bool] | None = None
        if _NONE in kinds:  # missing or null: a column starts where the key first appears
            has = list(map(dict.__contains__, objs, repeat(key, n)))
        if dict not in kinds:
            first = 0 if has is None else has.index(True)
            if first:
                out.setdefault(column_name(path), []).append((rows[first:], vals[first:], kinds))
            else:
                out.setdefault(column_name(path), []).append((rows, vals, kinds))
            continue
        if len(kinds) == 1 and all(vals):  # a non-empty object in every row
            _collect(vals, rows, path, out)  # type: ignore[arg-type]
            continue
        _mixed(rows, vals, has, path, out)
    return True


def _mixed(rows: Sequence[int], vals: Sequence[Any], present: list[bool] | None,
           path: tuple[str, ...], out: _Chunks) -> None:
    """A key that holds a non-empty object in some rows and a leaf in others: the leaves are
    one chunk of its column (rows where `present` is False, the key missing, are left out),
    the objects are flattened further under it."""
    sub_objs: list[dict[str, Any]] = []
    sub_rows: list[int] = []
    leaf_vals: list[Any] = []
    leaf_rows: list[int] = []
    for i, (r, v) in enumerate(zip(rows, vals, strict=True)):
        if type(v) is dict and v:
            sub_objs.append(v)
            sub_rows.append(r)
        elif present is None or present[i]:
            leaf_vals.append(v)
            leaf_rows.append(r)
    if leaf_rows:
        out.setdefault(column_name(path), []).append(
            (leaf_rows, leaf_vals, set(map(type, leaf_vals))))
    if sub_objs:
        _collect(sub_objs, sub_rows, path, out)


def _objects(vals: Sequence[Any]) -> pd.Series:
    return pd.Series(list(vals), dtype=object)


def typed_column(vals: Sequence[Any], kinds: set[type]) -> Any:
    """One column from its cells (None: missing) and their types. Ints stay exact: int64, Int64
    (with missing), UInt64, else Python ints in an object column; never floats."""
    kinds = set(kinds)
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    if kinds == {int}:
        ints = [v for v in vals if v is not None] if nulls else vals
        lo, hi = min(ints), max(ints)
        if lo >= -(1 << 63) and hi < (1 << 63):
            return pd.array(vals, dtype="Int64") if nulls else np.array(vals, dtype=np.int64)
        if lo >= 0 and hi < (1 << 64):
            return pd.array(vals, dtype="UInt64") if nulls else np.array(vals, dtype=np.uint64)
        return _objects(vals)
    if kinds == {float}:
        return np.array(vals, dtype=np.float64)
    if kinds == {int, float}:
        # A float column only when every int converts exactly (|i| <= 2**53).
        if max(abs(v) for v in vals if type(v) is int) <= 1 << 53:
            return np.array(vals, dtype=np.float64)
        return _objects(vals)
    if kinds == {bool}:
        return pd.array(vals, dtype="boolean") if nulls else np.array(vals, dtype=bool)
    if kinds == {str}:
        return pd.Series(pa.array(vals, pa.large_string()), dtype="str")
    if kinds == {pd.Timestamp}:  # typed timestamps of binary formats (never JSON strings)
        return pd.Series(pd.DatetimeIndex(list(vals), tz="UTC").as_unit("ns"))
    return _objects(vals)


def _assemble(chunks: list[tuple[Sequence[int], Sequence[Any], set[type]]],
              n: int) -> tuple[Sequence[Any], set[type]]:
    if len(chunks) == 1:
        rows, vals, kinds = chunks[0]
        if len(vals) == n:  # every row, in order
            return vals, kinds
    # The chunks hold disjoint rows: scatter them into one object array (no Python loop per
    # cell; fromiter keeps a list value one cell), missing rows None.
    full = np.full(n, None, dtype=object)
    kinds = set()
    covered = 0
    for rows, vals, k in chunks:
        full[np.asarray(rows, dtype=np.intp)] = np.fromiter(vals, dtype=object, count=len(vals))
        kinds |= k
        covered += len(vals)
    if covered < n:
        kinds.add(_NONE)
    return full.tolist(), kinds


@contextmanager
def no_gc() -> Iterator[None]:
    # Building a million small dicts trips the cyclic GC dozens of times for nothing: none of
    # these objects can form a cycle. Restores the caller's setting.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _cells(values: list[Any], types: list[type], n: int,
           fast: bool) -> tuple[dict[str, tuple[Sequence[Any], set[type]]], list[str]]:
    """Each payload column's cells (None where missing) and their types, in column order."""
    n_obj = types.count(dict)
    if n_obj == n:
        obj_rows: Sequence[int] = range(n)
        objs: list[dict[str, Any]] = values
    else:
        obj_rows = [i for i, t in enumerate(types) if t is dict]
        objs = [values[i] for i in obj_rows]
    cells: dict[str, tuple[Sequence[Any], set[type]]] = {}
    first: dict[str, int] = {}
    if objs and fast:
        chunks: _Chunks = {}
        _collect(objs, obj_rows, (), chunks)
        for name, ch in chunks.items():
            first[name] = min(c[0][0] for c in ch)
            cells[name] = _assemble(ch, n)
    elif objs:
        flat: dict[str, list[Any]] = {}
        for r, o in zip(obj_rows, objs, strict=True):
            row: dict[str, Any] = {}
            flatten_row(o, (), row)
            for name, v in row.items():
                column = flat.get(name)
                if column is None:
                    column = flat[name] = [None] * n
                    first[name] = r
                column[r] = v
        cells = {name: (vals, set(map(type, vals))) for name, vals in flat.items()}
    # Column order: by the first row holding the column, then by place within that row.
    place: dict[int, dict[str, int]] = {}
    for r in set(first.values()):
        row = {}
        flatten_row(values[r], (), row)
        place[r] = {name: i for i, name in enumerate(row)}
    order = sorted(cells, key=lambda c: (first[c], place[first[c]][c]))
    return cells, order


def decode_json(col: pa.ChunkedArray | pa.Array, *, fast: bool = True) -> dict[str, Any]:
    """Payload columns (first-appearance order), then ``data`` when some payload is a JSON value
    other than an object, then ``json_error``."""
    with no_gc():
        payloads, values = parse_payloads(col, fast=fast)
        columns = value_columns(values, fast=fast, payloads=payloads if fast else None)
        del payloads, values  # freed while the GC is off (see value_columns)
    return columns


def value_columns(values: list[Any], *, fast: bool = True,
                  payloads: list[bytes | None] | None = None) -> dict[str, Any]:
    """The columns of parsed payloads (EMPTY / ERROR / a value each), by the contract: payload
    columns, then ``data`` when some value is not an object, then ``json_error``.

    `payloads` (JSON read by orjson only) are the raw payloads, read again by the careful
    parser where a float may stand for an integer beyond 64 bits. Other formats hand in
    exact values and no payloads."""
    n = len(values)
    with no_gc():
        types = list(map(type, values))
        others = [i for i, t in enumerate(types) if t is not dict and t is not _Marker] \
            if types.count(dict) + types.count(_Marker) < n else []
        cells, order = _cells(values, types, n, fast)
        if payloads is not None:
            again = {i for vals, kinds in cells.values() for i in _big_floats(vals, kinds)}
            again.update(i for i in others if _has_big_float(values[i]))
            if again:
                for i in again:
                    values[i] = parse_careful(payloads[i])
                cells, order = _cells(values, types, n, fast)
        columns: dict[str, Any] = {name: typed_column(*cells[name]) for name in order}
        if others:
            data = np.empty(n, dtype=object)
            data[:] = pd.NA
            for i in others:
                data[i] = values[i]
            columns["data"] = pd.Series(data, dtype=object)
        if types.count(dict) == n:
            columns["json_error"] = np.zeros(n, dtype=bool)
        else:
            columns["json_error"] = np.fromiter((v is ERROR for v in values), dtype=bool, count=n)
        # Free the parsed objects while the GC is still off: freed, they are no longer counted,
        # so turning it back on does not trace millions of dead objects once.
        del values, cells, payloads
    return columns
