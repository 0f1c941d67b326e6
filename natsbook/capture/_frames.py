"""Arrow capture tables -> pandas DataFrames, with payload decoding (json / text / bytes / auto).

JSON decoding (``_jsondecode``) reads every payload on its own by the README's decoding
contract, so a row's values never depend on the rest of the batch. Arrow's JSON reader is not
used: it crashed the interpreter on a bare ``null`` and disagrees with the contract on integers
beyond 2**53, dotted keys and timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import BadInputError
from ..wire._protocol import header_block_error, parse_headers
from ..wire._subjects import matches
from ._binary import CBOR, MSGPACK, Decoder, declare, declared_decoder
from ._jsondecode import EMPTY, decode_json, parse_payloads

__all__ = ["ATTR", "CAPTURE", "FOLD", "META_COLUMNS", "REPORT", "TABLE", "Decode", "DecodeArg",
           "filter_table", "mark", "resolve_decode", "to_frame"]

#: ``DataFrame.attrs`` key naming how a frame displays in a notebook (the notebook layer's
#: formatter reads it; the data is never changed for display).
ATTR = "natsbook.display"
CAPTURE = "capture"
#: Any other table natsbook returns (monitoring, JetStream, services, SQL results): the same
#: display policy as a capture frame.
TABLE = "table"
REPORT = "report"
#: ``DataFrame.attrs`` key listing columns the display may say once in its note, instead of
#: repeating them down the table, when they hold the same text in every row (connz's
#: ``kind``, ``type``, ``ip``, ``lang``, ``version``).
FOLD = "natsbook.fold"


def mark(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Tag `frame` (in place) to display as `kind`; returns it."""
    frame.attrs[ATTR] = kind
    return frame

Decode = Literal["auto", "json", "text", "bytes", "msgpack", "cbor"]
#: What ``decode=`` accepts: a name (one of `Decode`, or one given to ``register_decoder``)
#: or a decoder object (``natsbook.protobuf(...)``).
DecodeArg = str | Decoder
META_COLUMNS = ("time", "subject", "reply", "headers", "size")
_DECODES = ("auto", "json", "text", "bytes")


def resolve_decode(decode: DecodeArg) -> str | Decoder:
    """`decode` as one of auto/json/text/bytes or a Decoder.

    Raises:
        BadInputError: it names no decoding natsbook knows.
    """
    return declare(decode) or "auto"


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


def _headers_column(col: pa.ChunkedArray) -> tuple[list[Any], list[str | None] | None]:
    """Each row's headers (a dict of key -> list of values, or None) and, when some header
    block is not NATS headers, each row's ``header_error`` (None for the good rows).

    A bad block is that row's problem only: its headers are None and its error says why; its
    raw bytes stay in the capture (``to_arrow()``, SQL ``headers``, ``to_parquet``)."""
    out: list[Any] = [None] * len(col)
    if col.null_count == len(col):
        return out, None
    errors: list[str | None] | None = None
    # Publishers usually repeat the same header block: parse each distinct block once.
    parsed: dict[bytes, dict[str, list[str]] | str] = {}
    for i, block in enumerate(col.to_pylist()):
        if not block:
            continue
        d = parsed.get(block)
        if d is None:
            bad = header_block_error(block)
            if bad is not None:
                d = bad
            else:
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
            if isinstance(d, dict):
                out[i] = d
                continue
        elif isinstance(d, dict):
            out[i] = {k: list(v) for k, v in d.items()}  # each row owns its dict
            continue
        if errors is None:
            errors = [None] * len(col)
        errors[i] = d
    return out, errors


def _decode_text(col: pa.ChunkedArray) -> pd.Series:
    try:
        return pd.Series(col.cast(pa.string()).to_pandas(), copy=False)
    except pa.ArrowInvalid:
        return pd.Series(
            [None if b is None else b.decode("utf-8", "replace") for b in col.to_pylist()],
            dtype="str",
        )


def _choose(col: pa.ChunkedArray) -> str | Decoder:
    n = len(col)
    if n == 0:
        return "bytes"
    sample = col.slice(0, min(n, 2000))
    values = [v for v in parse_payloads(sample)[1] if v is not EMPTY]
    if values and sum(type(v) is dict for v in values) * 2 >= len(values):
        return "json"
    try:
        col.cast(pa.string())
        return "text"
    except pa.ArrowInvalid:
        pass
    # Not text: MessagePack or CBOR when at least half of the sampled payloads are maps of
    # that format. A map's first byte differs between JSON ({), MessagePack (0x80-0x8f,
    # 0xde, 0xdf) and CBOR (0xa0-0xbf), so no payload is a map in two of them.
    for decoder in (MSGPACK, CBOR):
        values = [v for v in decoder.values(sample.to_pylist()) if v is not EMPTY]
        if values and sum(type(v) is dict for v in values) * 2 >= len(values):
            return decoder
    return "bytes"


def to_frame(table: pa.Table, decode: DecodeArg = "auto",
             extra: Iterable[tuple[str, pa.ChunkedArray | pa.Array]] = (), *,
             fast: bool = True) -> pd.DataFrame:
    """Build the capture DataFrame.

    Columns: ``time`` (datetime64[ns, UTC]), ``subject``, ``reply``, ``headers`` (dict of
    key -> list of values, or None), ``header_error`` (only when some row's header block is
    not NATS headers: why, for those rows; missing for the others; their ``headers`` are None),
    ``size`` (payload bytes), then the decoded payload: ``data``
    for text/bytes, or one column per (dotted) JSON key plus ``json_error`` for json. Columns in
    `extra` (e.g. JetStream ``seq``, ``sub``) come right after ``time``. The JSON columns
    follow the README's decoding contract (see ``_jsondecode``); ``fast=False`` takes the
    careful per-row path (the tests hold both to one reference). A binary decoding
    (msgpack, cbor, a registered name, ``natsbook.protobuf(...)``) gives the columns JSON
    gives for the same values (see ``_binary``). ``auto`` first uses the decoder the capture
    declares (``subscribe(..., decode=...)``, kept in the table's schema metadata).
    """
    mode = resolve_decode(decode)
    payload = table["payload"]
    if mode == "auto":
        mode = declared_decoder(table.schema) or _choose(payload)
    cols: dict[str, Any] = {"time": table["time"].to_pandas()}
    for name, arr in extra:
        cols[name] = arr.to_pandas()
    cols["subject"] = table["subject"].to_pandas()
    cols["reply"] = table["reply"].to_pandas()
    headers, header_errors = _headers_column(table["headers"])
    cols["headers"] = pd.Series(headers, dtype=object)
    if header_errors is not None:
        cols["header_error"] = pd.Series(header_errors, dtype="str")
    cols["size"] = pc.binary_length(payload).to_pandas().fillna(0).astype("int64")
    if mode == "bytes":
        cols["data"] = pd.Series(payload.to_pandas(types_mapper=pd.ArrowDtype), copy=False)
    elif mode == "text":
        cols["data"] = _decode_text(payload)
    elif isinstance(mode, Decoder):
        cols.update(mode.columns(payload, fast=fast))
    else:
        # Payload keys named like metadata columns are already renamed (data.<key>).
        cols.update(decode_json(payload, fast=fast))
    frame = pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in cols.items()})
    # Display only: a notebook shows it readably (see _display); the data stays as built.
    return mark(frame, CAPTURE)
