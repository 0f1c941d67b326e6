"""Reading a dataset written by ``natsbook record``: ``read_capture(dataset, since=, until=,
subject=)`` and ``natsbook.sql(query, dataset)``.

Only what is needed is opened. ``since`` / ``until`` prune whole ``date=/hour=`` folders
before any file is touched (a folder listing, no reads); inside the hours kept, the row filter
goes to Arrow's scanner, which skips row groups by their ``time`` statistics; a subject
without wildcards is pushed down too. DuckDB scans the Arrow dataset lazily.

Each message once: a recorder killed after writing a part but before acking it leaves a part
whose messages are delivered again, to some recorder, and written a second time. Parts are
named by their sequence range; parts whose ranges overlap no other part cannot hold a
duplicate and are scanned as they are. Only where ranges overlap (several recorders, or a
crash) is the ``stream_seq`` column of those parts read, and only the parts that hold a
sequence seen in an earlier part are loaded and filtered (in memory: crash leftovers, a few
parts at most).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import BadInputError, DatasetError, QueryError
from ..wire._subjects import matches
from ._dsfiles import DATASET_SCHEMA, META_NAME, Location, locate, read_meta
from ._frames import DecodeArg, filter_table, to_frame

__all__ = ["dataset_sql", "is_dataset", "read_dataset", "read_dataset_table"]

_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_HOUR = re.compile(r"hour=(\d{2})")
_PART = re.compile(r"part-(\d+)-(\d+)(?:-[^.]*)?\.parquet")
_HOUR_NS = 3_600_000_000_000


def is_dataset(path: str | os.PathLike[str]) -> bool:
    """A URL, or a folder with ``_natsbook.json`` or ``date=...`` folders in it."""
    text = os.fspath(path)
    if "://" in text and not text.startswith("file://"):
        return True
    text = text.removeprefix("file://")
    if not os.path.isdir(text):
        return False
    return os.path.exists(os.path.join(text, META_NAME)) or any(
        _DATE.fullmatch(e) for e in os.listdir(text))


def _ns(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"{name}={value!r} is not a time ({exc}) - give a datetime, a "
                            "pandas Timestamp or an ISO text like '2026-01-31 14:00'") from None
    if ts is pd.NaT:
        raise BadInputError(f"{name}={value!r} is not a time - give a datetime, a pandas "
                            "Timestamp or an ISO text like '2026-01-31 14:00'")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def _bounds(since: Any, until: Any) -> tuple[int | None, int | None]:
    """[since, until) in ns (a time without a zone is UTC); until must come after since."""
    lo, hi = _ns(since, "since"), _ns(until, "until")
    if lo is not None and hi is not None and hi <= lo:
        raise BadInputError(f"until={until!r} is not after since={since!r}: nothing can be "
                            "in [since, until) - swap them (until is excluded)")
    return lo, hi


def _listing(loc: Location, path: str) -> list[pafs.FileInfo]:
    try:
        return loc.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"cannot list {loc.url!r}: {exc}", url=loc.url) from None


def pruned_files(loc: Location, lo: int | None, hi: int | None) -> list[str]:
    """The part files of the hours that can hold a time in [lo, hi), in sequence order."""
    if loc.local and not os.path.isdir(loc.root):
        raise BadInputError(f"no dataset at {loc.url!r} - give the folder (or URL) that "
                            "`natsbook record --out` wrote")
    files: list[tuple[int, str]] = []
    for d in _listing(loc, loc.root):
        m = _DATE.fullmatch(d.base_name)
        if d.type != pafs.FileType.Directory or not m:
            continue
        day = int(np.datetime64(m.group(1), "ns").astype(np.int64))
        if (lo is not None and day + 24 * _HOUR_NS <= lo) or (hi is not None and day >= hi):
            continue
        for h in _listing(loc, d.path):
            mh = _HOUR.fullmatch(h.base_name)
            if h.type != pafs.FileType.Directory or not mh:
                continue
            start = day + int(mh.group(1)) * _HOUR_NS
            if (lo is not None and start + _HOUR_NS <= lo) or (hi is not None and start >= hi):
                continue
            for f in _listing(loc, h.path):
                mp = _PART.fullmatch(f.base_name)
                if f.type == pafs.FileType.File and mp:
                    files.append((int(mp.group(1)), f.path))
    return [p for _, p in sorted(files)]


@dataclass(slots=True)
class Plan:
    """The parts to scan as they are, and the rows of the others, duplicates removed."""

    clean: list[str]
    fixed: pa.Table | None
    duplicates: int


def _range(path: str) -> tuple[int, int]:
    m = _PART.fullmatch(path.rsplit("/", 1)[-1])
    assert m is not None  # pruned_files keeps only part names
    return int(m.group(1)), int(m.group(2))


def plan(loc: Location, files: list[str]) -> Plan:
    """Which parts can hold a duplicate (their sequence ranges overlap), and those parts'
    rows with every sequence kept once (the copy in the part listed first)."""
    groups: list[list[str]] = []
    end = -1
    for f in files:  # sorted by first sequence
        first, last = _range(f)
        if groups and first <= end:
            groups[-1].append(f)
            end = max(end, last)
        else:
            groups.append([f])
            end = last
    clean: list[str] = []
    fixed: list[pa.Table] = []
    dups = 0
    for group in groups:
        if len(group) == 1:
            clean.extend(group)
            continue
        seqs = [_read(loc, f, ["stream_seq"])["stream_seq"].to_numpy() for f in group]
        allseq = np.concatenate(seqs)
        order = np.argsort(allseq, kind="stable")  # the copy in the earliest part first
        again_sorted = np.zeros(len(allseq), dtype=bool)
        again_sorted[1:] = allseq[order][1:] == allseq[order][:-1]
        again = np.empty_like(again_sorted)
        again[order] = again_sorted
        start = 0
        for f, s in zip(group, seqs, strict=True):
            mine = again[start:start + len(s)]
            start += len(s)
            if not mine.any():
                clean.append(f)
                continue
            dups += int(mine.sum())
            fixed.append(_read(loc, f, None).filter(pa.array(~mine)))
    return Plan(clean, pa.concat_tables(fixed) if fixed else None, dups)


def _read(loc: Location, path: str, columns: list[str] | None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns, filesystem=loc.fs, schema=DATASET_SCHEMA)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"cannot read part {path!r}: {exc} - a damaged part can be moved "
                           "aside; its messages are then missing from reads", url=loc.url) from None


def _filter(lo: int | None, hi: int | None, subject: str | None) -> ds.Expression | None:
    expr = None
    t = ds.field("time")
    for bound, op in ((lo, "ge"), (hi, "lt")):
        if bound is None:
            continue
        scalar = pa.scalar(bound, pa.timestamp("ns", tz="UTC"))
        e = (t >= scalar) if op == "ge" else (t < scalar)
        expr = e if expr is None else expr & e
    if subject and not any(tok in ("*", ">") for tok in subject.split(".")):
        e = ds.field("subject") == subject
        expr = e if expr is None else expr & e
    return expr


def read_dataset_table(path: str | os.PathLike[str], *, since: Any = None, until: Any = None,
                       subject: str | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """The dataset's rows in [since, until) on `subject`, each sequence once, in sequence
    order; and its ``_natsbook.json`` ({} when it has none)."""
    loc = locate(path)
    lo, hi = _bounds(since, until)
    p = plan(loc, pruned_files(loc, lo, hi))
    expr = _filter(lo, hi, subject)
    parts = []
    if p.clean:
        try:
            parts.append(ds.dataset(p.clean, schema=DATASET_SCHEMA, filesystem=loc.fs,
                                    format="parquet").to_table(filter=expr))
        except (OSError, pa.ArrowException) as exc:
            raise DatasetError(f"cannot read part: {exc} - a damaged part can be moved aside; "
                               "its messages are then missing from reads", url=loc.url) from None
    if p.fixed is not None:
        parts.append(p.fixed.filter(expr) if expr is not None else p.fixed)
    table = pa.concat_tables(parts) if parts else DATASET_SCHEMA.empty_table()
    if subject is not None and table.num_rows:
        uniq = pc.unique(table["subject"]).to_pylist()
        keep = [s for s in uniq if s is not None and matches(subject, s)]
        table = table.filter(pc.is_in(table["subject"], value_set=pa.array(keep, pa.string())))
    return table.sort_by("stream_seq"), read_meta(loc) or {}


def read_dataset(path: str | os.PathLike[str], decode: DecodeArg | None = None, *,
                 since: Any = None, until: Any = None, subject: str | None = None,
                 last: int | None = None) -> pd.DataFrame:
    """``read_capture`` of a recorded dataset: the capture frame plus ``stream_seq`` (right
    after ``time``); `decode` None means the one the dataset declares (else auto)."""
    table, meta = read_dataset_table(path, since=since, until=until, subject=subject)
    table = filter_table(table, last=last)
    mode = decode if decode is not None else str(meta.get("decode") or "auto")
    return to_frame(table, mode, [("stream_seq", table["stream_seq"])])


_VIEW = ("SELECT time, NULL::VARCHAR AS sub, subject, reply, decode(headers, 'replace') AS "
         "headers, CAST(coalesce(octet_length(payload), 0) AS BIGINT) AS size, "
         "decode(payload, 'replace') AS data, payload, stream_seq FROM {src}")


def dataset_sql(query: str, path: str | os.PathLike[str], *, since: Any = None,
                until: Any = None) -> pd.DataFrame:
    """``natsbook.sql`` over a recorded dataset: ``messages`` holds its rows (the capture
    columns plus ``stream_seq``), each sequence once; `since` / `until` prune hours first."""
    import duckdb

    from ._sql import result_frame

    if not isinstance(query, str) or not query.strip():
        raise BadInputError("the SQL query is empty - e.g. natsbook.sql('SELECT count(*) FROM "
                            "messages', 'recordings/')")
    loc = locate(path)
    lo, hi = _bounds(since, until)
    p = plan(loc, pruned_files(loc, lo, hi))
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        srcs = []
        if p.clean:
            con.register("_natsbook_parts", ds.dataset(
                p.clean, schema=DATASET_SCHEMA, filesystem=loc.fs, format="parquet"))
            srcs.append(_VIEW.format(src="_natsbook_parts"))
        if p.fixed is not None or not srcs:
            fixed = p.fixed if p.fixed is not None else DATASET_SCHEMA.empty_table()
            con.register("_natsbook_fixed", fixed)
            srcs.append(_VIEW.format(src="_natsbook_fixed"))
        where = []
        if lo is not None:
            where.append(f"time >= make_timestamp_ns({lo})::TIMESTAMPTZ_NS")
        if hi is not None:
            where.append(f"time < make_timestamp_ns({hi})::TIMESTAMPTZ_NS")
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        con.execute(f"CREATE VIEW messages AS SELECT * FROM ({' UNION ALL '.join(srcs)}){cond}")
        try:
            rel = con.sql(query)
            return pd.DataFrame() if rel is None else result_frame(rel)
        except duckdb.Error as exc:
            if "'_natsbook_parts'" in str(exc):  # scanning a part failed, not the query
                raise DatasetError(f"cannot read part: {str(exc).strip()} - a damaged part "
                                   "can be moved aside; its messages are then missing from "
                                   "reads", url=loc.url) from None
            raise QueryError(query, str(exc).strip()) from None
    finally:
        con.close()
