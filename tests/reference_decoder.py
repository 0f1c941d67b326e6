"""A plain reading of the decoding contract (docs/capture.md), one payload at a time.

Written from that page (once the README's), not from natsbook's code, and kept obviously
correct rather than fast: no batches, no Arrow, no orjson. The property tests hold every
decoding path to it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: "a key that clashes with a metadata column": these names, always.
METADATA = ("time", "subject", "reply", "headers", "header_error", "size", "data", "json_error",
            "seq", "sub")
MISSING = object()  # no value in this cell
DEEPEST = 256  # "objects and arrays nested deeper than 256 levels" make a bad payload


@dataclass(slots=True)
class Row:
    json_error: bool
    data: Any = MISSING  # the payload's value when it is JSON but not an object
    cells: dict[str, Any] = field(default_factory=dict)  # column name -> value (None = null)


def name_of(path: list[str]) -> str:
    parts = []
    for key in path:
        parts.append(key.replace("\\", "\\\\").replace(".", "\\."))
    name = ".".join(parts)
    if path[0] in METADATA:
        name = "data." + name
    return name


def _no_constants(text: str) -> Any:
    raise ValueError(text)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


def _too_deep(value: Any) -> bool:
    todo = [(value, 1)]
    while todo:
        v, level = todo.pop()
        if isinstance(v, dict | list):
            if level > DEEPEST:
                return True
            todo.extend((c, level + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def _printable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return True
        except UnicodeEncodeError:
            return False
    if isinstance(value, list):
        return all(_printable(v) for v in value)
    if isinstance(value, dict):
        return all(_printable(k) and _printable(v) for k, v in value.items())
    return True


def read_value(payload: bytes) -> tuple[bool, Any]:
    """(ok, value) for one payload; an empty payload is (True, MISSING)."""
    if payload == b"":
        return True, MISSING
    if payload.startswith(b"\xef\xbb\xbf"):
        payload = payload[3:]
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return False, None
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except (ValueError, RecursionError):
        return False, None
    if _too_deep(value) or not _printable(value):
        return False, None
    return True, value


def _cells(obj: dict[str, Any], path: list[str], out: dict[str, Any]) -> None:
    for key, value in obj.items():
        if isinstance(value, dict) and len(value) > 0:
            _cells(value, [*path, key], out)
        else:
            out[name_of([*path, key])] = value


def decode(payload: bytes) -> Row:
    return row_of(*read_value(payload))


def row_of(ok: bool, value: Any) -> Row:
    """The row of a payload read as (ok, value), whatever its format (MISSING: empty)."""
    if not ok:
        return Row(json_error=True)
    if value is MISSING:
        return Row(json_error=False)
    if isinstance(value, dict):
        row = Row(json_error=False)
        _cells(value, [], row.cells)
        return row
    return Row(json_error=False, data=value)


def columns_in_order(rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for name in row.cells:
            seen.setdefault(name, None)
    return list(seen)


# ------------------------------------------------------------------------- comparing
def plain(cell: Any) -> Any:
    """A DataFrame cell as a plain Python value; MISSING for None / NaN / NA."""
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return MISSING
    if isinstance(cell, np.generic):
        cell = cell.item()
    if isinstance(cell, float) and math.isnan(cell):
        return MISSING
    return cell


def same(a: Any, b: Any) -> bool:
    """JSON equality, strict about kinds: a bool is not a number, numbers compare exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is bool and type(b) is bool and a == b
    if isinstance(a, int | float) or isinstance(b, int | float):
        return isinstance(a, int | float) and isinstance(b, int | float) and a == b
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(same(a[k], b[k]) for k in a))
    return type(a) is type(b) and a == b


def check_json_frame(df: pd.DataFrame, payloads: list[bytes], meta: list[str]) -> None:
    """`df` (decode="json") says what the reference says about `payloads`, row by row."""
    assert df["size"].tolist() == [len(p) for p in payloads]
    check_rows(df, [decode(p) for p in payloads], meta)


def check_rows(df: pd.DataFrame, rows: list[Row], meta: list[str]) -> None:
    """`df` holds exactly `rows` (the reference's reading of its payloads), row by row."""
    assert len(df) == len(rows)
    expect = [*meta, *columns_in_order(rows)]
    if any(r.data is not MISSING for r in rows):
        expect.append("data")
    expect.append("json_error")
    assert list(df.columns) == expect
    assert df["json_error"].tolist() == [r.json_error for r in rows]
    for name in columns_in_order(rows):
        col = df[name]
        values = [r.cells.get(name, MISSING) for r in rows]
        given = [v for v in values if v is not MISSING and v is not None]
        if given and all(type(v) is int for v in given):
            assert col.dtype.kind in "iuO", (name, col.dtype)  # ints never become floats
        for i, (cell, want) in enumerate(zip(col.tolist(), values, strict=True)):
            got = plain(cell)
            want = MISSING if want is None else want
            if want is MISSING:
                assert got is MISSING, (name, i, cell)
            else:
                assert got is not MISSING and same(got, want), (name, i, cell, want)
    if "data" in df.columns:
        for i, (cell, row) in enumerate(zip(df["data"].tolist(), rows, strict=True)):
            if row.data is MISSING:
                assert cell is pd.NA, (i, cell)
            elif row.data is None:
                assert cell is None, (i, cell)
            else:
                assert same(plain(cell), row.data), (i, cell, row.data)


def same_payload(a: bytes, b: bytes) -> bool:
    """Two payloads carry the same JSON (nulls inside objects count as absent keys)."""
    ra, rb = decode(a), decode(b)
    if ra.json_error or rb.json_error or ra.json_error != rb.json_error:
        return False
    if (a == b"") != (b == b""):
        return False
    if (ra.data is MISSING) != (rb.data is MISSING):
        return False
    if ra.data is not MISSING and not (ra.data is None and rb.data is None) \
            and not same(ra.data, rb.data):
        return False
    ca = {k: v for k, v in ra.cells.items() if v is not None}
    cb = {k: v for k, v in rb.cells.items() if v is not None}
    return ca.keys() == cb.keys() and all(same(ca[k], cb[k]) for k in ca)
