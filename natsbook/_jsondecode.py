"""JSON payloads -> DataFrame columns, by the written contract (README, "Decoding contract").

Every payload is read on its own, so a row's values never depend on the other rows of the
batch. Pure: lists of bytes in, columns out; no I/O.

Two ways to the same columns:

- fast (default): orjson parses every payload in one C-level ``map``; rows orjson rejects, and
  rows holding a run of 19+ digits (orjson silently turns integers beyond 64 bits into floats),
  are re-read one by one by the careful parser. Objects are grouped by their key tuple and each
  group is cut into columns with one ``zip`` (telemetry has a handful of shapes, so this is a
  few C-level passes, not a Python loop per cell).
- careful (``fast=False``): the stdlib parser on every payload and one flattening per row.

The property tests in ``tests/test_decoding.py`` hold both to a plain reference decoder.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EMPTY", "ERROR", "RESERVED", "column_name", "decode_json", "parse_careful",
           "split_name"]

#: Metadata column names. A top-level payload key with one of these names gets the column
#: ``data.<key>`` (so do all columns nested under it), whether or not the metadata column is in
#: this frame: the names never depend on the batch.
RESERVED = frozenset({"time", "subject", "reply", "headers", "size", "data", "json_error", "seq",
                      "sub"})
_BOM = b"\xef\xbb\xbf"
_NONE = type(None)
_RISKY_DIGITS = "[0-9]{19}"  # the shortest integer orjson may read as a float has 19 digits


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
    return value if _strings_ok(value) else ERROR


def _loads_one(payload: bytes | None) -> Any:
    try:
        return orjson.loads(payload)  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return parse_careful(payload)


def parse_payloads(col: pa.ChunkedArray | pa.Array, *, fast: bool = True) -> list[Any]:
    """Each payload of a binary column parsed on its own (EMPTY / ERROR / value)."""
    payloads = col.to_pylist()
    if not fast:
        return [parse_careful(p) for p in payloads]
    try:
        values = list(map(orjson.loads, payloads))
    except orjson.JSONDecodeError:
        values = list(map(_loads_one, payloads))
    risky = pc.match_substring_regex(col, _RISKY_DIGITS)
    if risky.true_count if isinstance(risky, pa.Array) else pc.any(risky).as_py():
        mask = risky.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(mask):
            values[i] = parse_careful(payloads[i])
    return values


# ------------------------------------------------------------------------------- columns
def flatten_row(obj: dict[str, Any], prefix: tuple[str, ...], out: dict[str, Any]) -> None:
    """One object's cells: nested non-empty objects dotted, everything else one cell."""
    for key, value in obj.items():
        path = (*prefix, key)
        if type(value) is dict and value:
            flatten_row(value, path, out)
        else:
            out[column_name(path)] = value


_Chunks = dict[str, list[tuple[Sequence[int], Sequence[Any]]]]


def _collect(objs: list[dict[str, Any]], rows: Sequence[int], prefix: tuple[str, ...],
             out: _Chunks) -> None:
    """Cut objects into column chunks, one group of objects with the same key tuple at a time."""
    keys = list(map(tuple, objs))
    if keys.count(keys[0]) == len(keys):
        groups: list[tuple[tuple[str, ...], list[dict[str, Any]], Sequence[int]]] = [
            (keys[0], objs, rows)]
    else:
        by_keys: dict[tuple[str, ...], tuple[list[dict[str, Any]], list[int]]] = {}
        for k, o, r in zip(keys, objs, rows, strict=True):
            g = by_keys.get(k)
            if g is None:
                g = by_keys[k] = ([], [])
            g[0].append(o)
            g[1].append(r)
        groups = [(k, g[0], g[1]) for k, g in by_keys.items()]
    for ks, gobjs, grows in groups:
        if not ks:
            continue
        if len(ks) == 1:
            cols: list[Sequence[Any]] = [list(map(itemgetter(ks[0]), gobjs))]
        else:
            cols = list(zip(*map(dict.values, gobjs), strict=True))
        for key, vals in zip(ks, cols, strict=True):
            path = (*prefix, key)
            if dict not in set(map(type, vals)):
                out.setdefault(column_name(path), []).append((grows, vals))
                continue
            sub_objs: list[dict[str, Any]] = []
            sub_rows: list[int] = []
            leaf_vals: list[Any] = []
            leaf_rows: list[int] = []
            for r, v in zip(grows, vals, strict=True):
                if type(v) is dict and v:
                    sub_objs.append(v)
                    sub_rows.append(r)
                else:
                    leaf_vals.append(v)
                    leaf_rows.append(r)
            if leaf_rows:
                out.setdefault(column_name(path), []).append((leaf_rows, leaf_vals))
            if sub_objs:
                _collect(sub_objs, sub_rows, path, out)


def _objects(vals: Sequence[Any]) -> pd.Series:
    return pd.Series(list(vals), dtype=object)


def typed_column(vals: Sequence[Any]) -> Any:
    """One column from its cells (None: missing). Ints stay exact: int64, Int64 (with missing),
    UInt64, else Python ints in an object column; never floats."""
    kinds = set(map(type, vals))
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
        return pd.Series(vals, dtype="str")
    return _objects(vals)


def _assemble(chunks: list[tuple[Sequence[int], Sequence[Any]]], n: int) -> Sequence[Any]:
    if len(chunks) == 1:
        rows, vals = chunks[0]
        if len(vals) == n:  # every row, in order
            return vals
    full: list[Any] = [None] * n
    for rows, vals in chunks:
        for r, v in zip(rows, vals, strict=True):
            full[r] = v
    return full


@contextmanager
def _no_gc() -> Iterator[None]:
    # Building a million small dicts trips the cyclic GC dozens of times for nothing: none of
    # these objects can form a cycle. Restores the caller's setting.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def decode_json(col: pa.ChunkedArray | pa.Array, *, fast: bool = True) -> dict[str, Any]:
    """Payload columns (first-appearance order), then ``data`` when some payload is a JSON value
    other than an object, then ``json_error``."""
    n = len(col)
    with _no_gc():
        values = parse_payloads(col, fast=fast)
        types = list(map(type, values))
        n_obj = types.count(dict)
        if n_obj == n:
            obj_rows: Sequence[int] = range(n)
            objs: list[dict[str, Any]] = values
        else:
            obj_rows = [i for i, t in enumerate(types) if t is dict]
            objs = [values[i] for i in obj_rows]
        cells: dict[str, Sequence[Any]] = {}
        first: dict[str, int] = {}
        if objs and fast:
            chunks: _Chunks = {}
            _collect(objs, obj_rows, (), chunks)
            for name, ch in chunks.items():
                first[name] = min(rows[0] for rows, _ in ch)
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
            cells = dict(flat)
        # Column order: by the first row holding the column, then by place within that row.
        place: dict[int, dict[str, int]] = {}
        for r in set(first.values()):
            row = {}
            flatten_row(values[r], (), row)
            place[r] = {name: i for i, name in enumerate(row)}
        order = sorted(cells, key=lambda c: (first[c], place[first[c]][c]))
        columns: dict[str, Any] = {name: typed_column(cells[name]) for name in order}
        if n_obj + types.count(_Marker) < n:
            data = np.empty(n, dtype=object)
            data[:] = pd.NA
            for i, t in enumerate(types):
                if t is not dict and t is not _Marker:
                    data[i] = values[i]
            columns["data"] = pd.Series(data, dtype=object)
        if n_obj == n:
            columns["json_error"] = np.zeros(n, dtype=bool)
        else:
            columns["json_error"] = np.fromiter((v is ERROR for v in values), dtype=bool, count=n)
    return columns
