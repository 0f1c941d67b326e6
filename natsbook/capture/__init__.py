"""The capture layer: the bounded columnar store that received messages land in, the Arrow ->
pandas frames (the decoding contract), replay of a frame, SQL over captures (DuckDB) and the
refresher behind live views.

Imports the wire layer only; it knows nothing of sockets or connections.
"""

from __future__ import annotations

from ._binary import Decoder, register_decoder
from ._dataset import dataset_sql, is_dataset, read_dataset, read_dataset_table
from ._dsfiles import DATASET_SCHEMA, PartWriter
from ._frames import (
    ATTR,
    CAPTURE,
    FOLD,
    META_COLUMNS,
    REPORT,
    TABLE,
    Decode,
    DecodeArg,
    filter_table,
    mark,
    to_frame,
)
from ._live import MIN_EVERY, Refresher, capture_frame
from ._protobuf import protobuf
from ._replay import publish_frame
from ._source import Capture, Publisher
from ._sql import captures_sql, path_sql
from ._store import (
    DEFAULT_BUDGET,
    DEFAULT_MAX_BYTES,
    SCHEMA,
    CaptureBudget,
    CaptureStore,
    StoreStats,
)

__all__ = [
    "ATTR",
    "CAPTURE",
    "DATASET_SCHEMA",
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_BYTES",
    "FOLD",
    "META_COLUMNS",
    "MIN_EVERY",
    "REPORT",
    "SCHEMA",
    "TABLE",
    "Capture",
    "CaptureBudget",
    "CaptureStore",
    "Decode",
    "DecodeArg",
    "Decoder",
    "PartWriter",
    "Publisher",
    "Refresher",
    "StoreStats",
    "capture_frame",
    "captures_sql",
    "dataset_sql",
    "filter_table",
    "is_dataset",
    "mark",
    "path_sql",
    "protobuf",
    "publish_frame",
    "read_dataset",
    "read_dataset_table",
    "register_decoder",
    "to_frame",
]
