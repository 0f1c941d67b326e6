"""Replay a DataFrame's rows as messages, with a progress display on long runs."""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from .._progress import Progress
from ..errors import BadInputError
from ._frames import META_COLUMNS
from ._jsondecode import split_name

if TYPE_CHECKING:
    from ._source import Publisher

__all__ = ["publish_frame"]

_SKIP = {*META_COLUMNS, "header_error", "sub", "seq", "json_error", "data"}
_MISSING = object()


def _plain(value: Any, column: str) -> Any:
    """A cell as a JSON-ready Python value, or _MISSING (None / NaN / NA: the key is left out)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return _MISSING
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _MISSING if math.isnan(value) else value
    if isinstance(value, str | int | bool | list | dict):
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    raise BadInputError(f"column {column!r} holds a {type(value).__name__} ({value!r}), which "
                        "has no JSON form - convert or drop that column before publish_frame")


def _fold(row: Mapping[Hashable, Any], paths: Mapping[Hashable, list[str]],
          i: int) -> dict[str, Any]:
    """One row's columns folded back into the object they were flattened from."""
    out: dict[str, Any] = {}
    for label, path in paths.items():
        name = str(label)
        value = _plain(row[label], name)
        if value is _MISSING:
            continue
        node = out
        for key in path[:-1]:
            nxt = node.setdefault(key, {})
            if not isinstance(nxt, dict):
                raise BadInputError(f"cannot fold column {name!r} back into row {i}: key "
                                    f"{key!r} already holds {nxt!r}")
            node = nxt
        leaf = path[-1]
        if leaf in node:
            raise BadInputError(f"cannot fold column {name!r} back into row {i}: key {leaf!r} "
                                "is also filled by another column")
        node[leaf] = value
    return out


def _dumps(value: Any, i: int) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an int beyond 64 bits: the stdlib writes ints of any size
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode()
        except (TypeError, ValueError) as exc:  # bytes inside an array (a binary payload)
            raise BadInputError(f"row {i} holds a value with no JSON form ({exc}) - convert or "
                                "drop it before publish_frame") from None


def _json_payloads(df: pd.DataFrame) -> list[bytes]:
    """A decoded JSON frame's rows as the payloads they were decoded from (as JSON values)."""
    n = len(df)
    errors = df["json_error"].to_numpy(dtype=bool, na_value=False)
    if errors.any():
        i = int(np.flatnonzero(errors)[0])
        raise BadInputError(f"row {i} has json_error=True: its payload was not JSON, so column "
                            "'json_error' cannot be folded back - replay to_pandas('bytes') for "
                            "raw payloads, or drop those rows")
    data = df["data"].tolist() if "data" in df.columns else [pd.NA] * n
    sizes = df["size"].tolist() if "size" in df.columns else [None] * n
    names = [c for c in df.columns if str(c) not in _SKIP]
    paths: dict[Hashable, list[str]] = {name: split_name(str(name)) for name in names}
    rows = df[names].to_dict("records") if names else [{}] * n
    out: list[bytes] = []
    for i in range(n):
        d = data[i]
        if d is not pd.NA and not (isinstance(d, float) and math.isnan(d)):
            out.append(_dumps(d, i))  # a non-object JSON value (None: a JSON null)
            continue
        obj = _fold(rows[i], paths, i)
        out.append(b"" if not obj and sizes[i] == 0 else _dumps(obj, i))
    return out


def _check_header_errors(df: pd.DataFrame) -> None:
    """A row whose header block was not NATS headers cannot be sent back as it came."""
    if "header_error" not in df.columns:
        return
    bad = df["header_error"].notna().to_numpy(dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BadInputError(f"row {i} has a header_error ({df['header_error'].iloc[i]}): its "
                            "header block was not NATS headers, so it cannot be sent back as "
                            "it came - drop those rows, or drop the header_error column to "
                            "send them without headers")


def publish_frame(conn: Publisher, df: pd.DataFrame, *, subject: str | None = None,
                  data: str | None = None, headers: str | None = None,
                  rate: float | None = None, progress: bool | None = None,
                  flush_timeout: float = 30.0) -> int:
    """Publish each row of `df` as a message; see Connection.publish_frame."""
    n = len(df)
    if subject is None:
        if "subject" not in df.columns:
            raise BadInputError("the frame has no 'subject' column - pass subject='a.b' or the "
                                "name of a column holding subjects")
        subjects = df["subject"].astype(str).tolist()
    elif subject in df.columns:
        subjects = df[subject].astype(str).tolist()
    else:
        subjects = [subject] * n
    payloads: list[Any]
    if data is None and "json_error" in df.columns:
        payloads = _json_payloads(df)
    elif data is not None or "data" in df.columns:
        data = "data" if data is None else data
        if data not in df.columns:
            raise BadInputError(f"no column {data!r} in the frame - columns are {list(df.columns)}")
        payloads = df[data].tolist()
    else:
        cols = [c for c in df.columns if str(c) not in _SKIP]
        if not cols:
            raise BadInputError("the frame has no payload columns - pass data='column'")
        paths: dict[Hashable, list[str]] = {c: split_name(str(c)) for c in cols}
        payloads = [_dumps(_fold(r, paths, i), i)
                    for i, r in enumerate(df[cols].to_dict("records"))]
    if headers is None and "headers" in df.columns:
        headers = "headers"
        _check_header_errors(df)
    hdrs = df[headers].tolist() if headers is not None else [None] * n
    show = progress if progress is not None else n >= 50_000 or (rate is not None and n / rate > 3)
    bar = Progress(n, "replay", enabled=show)
    interval = 1.0 / rate if rate else 0.0
    start = time.monotonic()
    done = 0
    try:
        for i in range(n):
            if interval:
                due = start + i * interval
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            p = payloads[i]
            if p is None or (isinstance(p, float) and math.isnan(p)):
                p = b""
            h = hdrs[i]
            conn.publish(subjects[i], p, headers=h if isinstance(h, dict) and h else None)
            done = i + 1
            if done & 1023 == 0:
                bar.update(done)
        conn.flush(flush_timeout)
    finally:
        bar.close(done)
    return done
