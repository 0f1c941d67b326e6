"""SQL over captures with DuckDB: ``conn.sql()``, ``sub.sql()`` and ``natsbook.sql()``.

Each query gets a fresh in-memory DuckDB database in which natsbook only registers tables;
the query text goes to DuckDB as it is. Every capture becomes one view over its rows:

- the in-memory Arrow batches, taken from the store under its lock together with the list of
  spilled Parquet parts (:meth:`CaptureStore.snapshot`), so each row is seen exactly once;
  DuckDB scans those batches in place (no copy). A batch whose payloads are all UTF-8 (checked
  by Arrow, ~15 ms per million rows) also offers them as text without a copy; in any other
  batch DuckDB decodes ``data`` row by row;
- the spilled parts, as a pyarrow dataset that DuckDB scans lazily from disk, so a capture
  larger than memory is aggregated part by part.

The table ``messages`` is the union of the captures asked for (every user capture of a
connection, or one subscription's); a capture named with ``subscribe(..., name="readings")``
is also the table ``readings``. Columns:

==========  ===========  ====================================================================
time        TIMESTAMPTZ  receive time (ns, UTC)
sub         VARCHAR      the subscription's subject pattern (NULL when read from files)
subject     VARCHAR      the message's subject
reply       VARCHAR      reply subject or NULL
headers     VARCHAR      the raw NATS header block (``NATS/1.0\\r\\nKey: value...``) or NULL
size        BIGINT       payload bytes
data        VARCHAR      the payload as text, unparsed (``data::JSON ->> 'temp'``); invalid
                         UTF-8 bytes become ``?``. For a capture with a declared binary
                         decoder (``subscribe(..., decode="msgpack")``) the payload decoded
                         and written as JSON text (NULL where it is empty or does
                         not decode)
payload     BLOB         the payload's raw bytes
==========  ===========  ====================================================================

``data::JSON`` fails on a payload that is not JSON; ``TRY_CAST(data AS JSON)`` gives NULL
there instead (and ``json_valid(data)`` tells which rows are JSON).

This module imports no widget code (the live views build on it from the notebook layer).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BadInputError, QueryError
from ._binary import Decoder, declared_decoder, json_texts
from ._frames import CAPTURE, TABLE, mark
from ._spill import read_part, spill_files
from ._store import SCHEMA

if TYPE_CHECKING:
    from ._source import Capture

__all__ = ["COLUMNS", "captures_sql", "check_name", "path_sql", "version"]

COLUMNS = ("time", "sub", "subject", "reply", "headers", "size", "data", "payload")
_RESERVED = {"messages"}
_PREFIX = "_natsbook_"
_TEXT_SCHEMA = SCHEMA.append(pa.field("data", pa.string()))
_RAW_COLS = "time, subject, reply, headers, payload"
_DECODE = "decode(payload, 'replace') AS data"


@dataclass(slots=True)
class _Part:
    """One capture's rows as DuckDB will see them."""

    sub: str | None
    name: str | None
    spilled: list[Path]
    batches: list[pa.RecordBatch]
    #: The capture's declared decoder: a binary one makes ``data`` the decoded JSON text.
    decoder: str | Decoder | None = None


def check_name(name: str | None) -> None:
    """A capture name must be a plain SQL identifier other than ``messages`` (or None)."""
    if name is None:
        return
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise BadInputError(f"capture name {name!r} is not a plain identifier - use letters, "
                            "digits and _ (it becomes a SQL table name)")
    if name.lower() in _RESERVED or name.lower().startswith(_PREFIX):
        raise BadInputError(f"capture name {name!r} is taken - `messages` is every capture "
                            f"together and names starting with {_PREFIX!r} are natsbook's")


def version(subs: Sequence[Capture]) -> int:
    """A number that grows whenever any of the captures stored a new row."""
    return sum(s.store.stats.received for s in subs if s.store is not None) + len(subs)


def _parts(subs: Sequence[Capture]) -> list[_Part]:
    out = []
    for s in subs:
        if s.store is None:
            continue
        spilled, batches, _ = s.store.snapshot()
        out.append(_Part(s.subject, s.name, spilled, batches, s.store.decoder))
    return out


def captures_sql(captures: Sequence[Capture], query: str) -> pd.DataFrame:
    """``conn.sql`` (every user capture of the connection) and ``sub.sql`` (one capture):
    ``messages`` is the union of `captures`, and each named one is also its own table."""
    return run(query, _parts(captures))


def path_sql(query: str, path: str | os.PathLike[str]) -> pd.DataFrame:
    """``natsbook.sql``: ``messages`` is a spill directory or a ``to_parquet`` file."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"no capture at {os.fspath(path)!r} - give a .parquet file or a "
                            "spill directory")
    files = [f for parts in spill_files(p) for f in parts] if p.is_dir() else [p]
    # Files of captures that declared a binary decoder are decoded (to JSON text) apart.
    plain: list[Path] = []
    decoded: dict[str, _Part] = {}
    for f in files:
        try:
            decoder = declared_decoder(pq.read_schema(f))
        except (OSError, pa.ArrowException) as exc:
            raise BadInputError(f"cannot read the capture's Parquet parts: {exc}") from None
        if isinstance(decoder, Decoder):
            decoded.setdefault(decoder.name, _Part(None, None, [], [], decoder)).spilled.append(f)
        else:
            plain.append(f)
    return run(query, [_Part(None, None, plain, []), *decoded.values()])


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _split(batches: list[pa.RecordBatch]) -> tuple[list[pa.RecordBatch],
                                                   list[pa.RecordBatch]]:
    """Batches whose payloads are all UTF-8, with a zero-copy ``data`` text column added, and
    the others (DuckDB decodes those, replacing invalid bytes, row by row)."""
    text, raw = [], []
    for b in batches:
        view = b.column(4).view(pa.string())
        try:
            view.validate(full=True)
        except pa.ArrowInvalid:
            raw.append(b)
            continue
        text.append(pa.RecordBatch.from_arrays([*b.columns, view], schema=_TEXT_SCHEMA))
    return text, raw


def _register(con: Any, parts: list[_Part]) -> None:
    import pyarrow.dataset as ds

    selects = []
    named: dict[str, str] = {}
    if not parts:
        parts = [_Part(None, None, [], [])]
    for i, part in enumerate(parts):
        sources = []
        if isinstance(part.decoder, Decoder):
            _register_decoded(con, i, part, part.decoder)
            sources.append(f"SELECT {_RAW_COLS}, data FROM {_PREFIX}decoded_{i}")
        elif part.spilled:
            try:
                dataset = ds.dataset([os.fspath(f) for f in part.spilled], schema=SCHEMA,
                                     format="parquet")
            except (pa.ArrowInvalid, OSError) as exc:
                raise BadInputError(f"cannot read the capture's Parquet parts: {exc}") from None
            con.register(f"{_PREFIX}spill_{i}", dataset)
            sources.append(f"SELECT {_RAW_COLS}, {_DECODE} FROM {_PREFIX}spill_{i}")
        text, raw = _split([] if isinstance(part.decoder, Decoder) else part.batches)
        if text:
            # Zero-copy: the store's batches plus `data`, their payload buffers seen as text.
            con.register(f"{_PREFIX}text_{i}", pa.Table.from_batches(text, _TEXT_SCHEMA))
            sources.append(f"SELECT {_RAW_COLS}, data FROM {_PREFIX}text_{i}")
        if raw or not sources:
            con.register(f"{_PREFIX}raw_{i}", pa.Table.from_batches(raw, SCHEMA))
            sources.append(f"SELECT {_RAW_COLS}, {_DECODE} FROM {_PREFIX}raw_{i}")
        view = f"{_PREFIX}capture_{i}"
        con.execute(
            f"CREATE VIEW {view} AS SELECT time, {_quote_text(part.sub)}::VARCHAR AS sub, "
            "subject, reply, decode(headers, 'replace') AS headers, "
            "CAST(coalesce(octet_length(payload), 0) AS BIGINT) AS size, "
            "data, payload "
            f"FROM ({' UNION ALL '.join(sources)})")
        selects.append(f"SELECT * FROM {view}")
        if part.name is not None:
            named[part.name] = view  # the newest capture with a name takes it
    con.execute(f"CREATE VIEW messages AS {' UNION ALL '.join(selects)}")
    for name, view in named.items():
        con.execute(f"CREATE VIEW {_quote_ident(name)} AS SELECT * FROM {view}")


def _register_decoded(con: Any, i: int, part: _Part, decoder: Decoder) -> None:
    """A capture with a binary decoder: its rows (spilled parts read now) with ``data`` the
    decoded payloads as JSON text."""
    tables = []
    for path in part.spilled:
        got = read_part(path, SCHEMA)
        if isinstance(got, str):
            raise BadInputError(f"cannot read the capture's Parquet part {path.name}: {got}")
        tables.append(got.select(SCHEMA.names))
    tables.append(pa.Table.from_batches(part.batches, SCHEMA))
    table = pa.concat_tables(tables).replace_schema_metadata(None)
    table = table.append_column("data", json_texts(decoder, table["payload"]))
    con.register(f"{_PREFIX}decoded_{i}", table)


def result_frame(rel: Any) -> pd.DataFrame:
    frame = rel.df()
    for col, typ in zip(rel.columns, rel.types, strict=True):
        t = str(typ)
        if not (t.startswith("TIMESTAMPTZ") or t == "TIMESTAMP WITH TIME ZONE"):
            continue
        # DuckDB returns TIMESTAMPTZ_NS as naive UTC: give it back its zone, as to_pandas does.
        series = frame[col]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            frame[col] = series.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(series.dtype):
            frame[col] = series.dt.tz_localize("UTC")
    # rows that are messages display as a capture does (times to the millisecond)
    return mark(frame, CAPTURE if {"time", "subject"} <= set(frame.columns) else TABLE)


_SUGGESTION = re.compile(r'\s*Did you mean "([^"]*)"\?')


def _public_detail(detail: str, parts: list[_Part]) -> str:
    """DuckDB's message without a "Did you mean" that names a table the user cannot use (one
    of natsbook's own views, a DuckDB catalog table): only ``messages`` and capture names."""
    visible = {"messages"} | {p.name.lower() for p in parts if p.name}

    def keep(m: re.Match[str]) -> str:
        return m.group(0) if m.group(1).lower() in visible else ""

    return _SUGGESTION.sub(keep, detail)


def run(query: str, parts: list[_Part]) -> pd.DataFrame:
    """Run `query` in a fresh DuckDB database holding `parts`; the result as a DataFrame
    (empty when the last statement returns no rows, e.g. a ``CREATE``)."""
    import duckdb

    if not isinstance(query, str) or not query.strip():
        raise BadInputError("the SQL query is empty - e.g. conn.sql('SELECT count(*) FROM "
                            "messages')")
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        _register(con, parts)
        try:
            rel = con.sql(query)
            return pd.DataFrame() if rel is None else result_frame(rel)
        except duckdb.Error as exc:
            raise QueryError(query, _public_detail(str(exc).strip(), parts)) from None
    finally:
        con.close()
