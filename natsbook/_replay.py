"""Replay a DataFrame's rows as messages, with a progress display on long runs."""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._frames import META_COLUMNS
from ._progress import Progress
from .errors import BadInputError

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["publish_frame"]

_SKIP = {*META_COLUMNS, "sub", "seq", "json_error"}


def _unflatten(row: dict[Hashable, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if value is pd.NA or value is pd.NaT:
            continue
        if hasattr(value, "item") and not isinstance(value, list | dict):
            value = value.item()  # numpy scalar -> Python
        name = str(key)
        if name.startswith("data."):
            name = name[5:]
        parts = name.split(".")
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def publish_frame(conn: Connection, df: pd.DataFrame, *, subject: str | None = None,
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
    if data is None and "data" in df.columns:
        data = "data"
    payloads: list[Any]
    if data is not None:
        if data not in df.columns:
            raise BadInputError(f"no column {data!r} in the frame - columns are {list(df.columns)}")
        payloads = df[data].tolist()
    else:
        cols = [c for c in df.columns if c not in _SKIP]
        if not cols:
            raise BadInputError("the frame has no payload columns - pass data='column'")
        payloads = [_unflatten(r) for r in df[cols].to_dict("records")]
    if headers is None and "headers" in df.columns:
        headers = "headers"
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
