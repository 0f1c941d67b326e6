"""JetStream and KV as DataFrames, over natsbook's own request/reply (the JetStream JSON API).

- :mod:`._jsapi`: the JSON API plumbing (requests, errors, names);
- :mod:`._jsread`: bulk history reads (batched direct get, or an ephemeral pull consumer);
- :mod:`._streams`: streams, history, follow, publish with ack;
- :mod:`._kv`: KV buckets;
- :mod:`._consumers`: consumers and their lag;
- :mod:`._objstore`: the object store (chunked like the official clients);
- :mod:`._recorder`: ``natsbook record``'s engine (a durable pull consumer into Parquet).

``Connection``'s JetStream methods (``conn.streams()``, ``conn.kv()``, ...) call these
functions; they take any :class:`natsbook.core.Link` (a Connection is one).
"""

from __future__ import annotations

from ._consumers import (
    add_consumer,
    consumer_info,
    consumer_lag,
    consumer_names,
    consumers,
    delete_consumer,
)
from ._jsapi import api_request, stream_names
from ._jsread import PushCapture
from ._kv import KV, KVEntry, KVWatch, create_kv, kv, kv_buckets
from ._objstore import CHUNK_SIZE, ObjectStore, create_object_store, object_store, object_stores
from ._recorder import Recorder, RecorderStats
from ._streams import (
    Follow,
    PubAck,
    add_stream,
    delete_stream,
    follow,
    history_frame,
    js_publish,
    purge_stream,
    read_stream,
    stream_history,
    stream_info,
    stream_subjects,
    streams,
)

__all__ = [
    "CHUNK_SIZE",
    "KV",
    "Follow",
    "KVEntry",
    "KVWatch",
    "ObjectStore",
    "PubAck",
    "PushCapture",
    "Recorder",
    "RecorderStats",
    "add_consumer",
    "add_stream",
    "api_request",
    "consumer_info",
    "consumer_lag",
    "consumer_names",
    "consumers",
    "create_kv",
    "create_object_store",
    "delete_consumer",
    "delete_stream",
    "follow",
    "history_frame",
    "js_publish",
    "kv",
    "kv_buckets",
    "object_store",
    "object_stores",
    "purge_stream",
    "read_stream",
    "stream_history",
    "stream_info",
    "stream_names",
    "stream_subjects",
    "streams",
]
