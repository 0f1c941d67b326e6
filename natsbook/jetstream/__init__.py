"""JetStream and KV as DataFrames, over natsbook's own request/reply (the JetStream JSON API).

- :mod:`._jsapi`: the JSON API plumbing (requests, errors, names);
- :mod:`._jsread`: bulk history reads (batched direct get, or an ephemeral pull consumer);
- :mod:`._streams`: streams, history, follow, publish with ack;
- :mod:`._kv`: KV buckets;
- :mod:`._consumers`: consumers and their lag;
- :mod:`._objstore`: the object store (chunked like the official clients);
- :mod:`._recorder`: ``natsbook record``'s engine (a durable pull consumer into Parquet).
- :mod:`._features`: nats-server 2.11/2.12 features: per-message TTL, delete markers in KV,
  consumer pause, counters, atomic batches.

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
from ._features import (
    MAX_BATCH,
    add_counter,
    batch_publish,
    counter_add,
    counter_value,
    kv_operation,
    pause_consumer,
    resume_consumer,
)
from ._jsapi import api_request, stream_names, ttl_header
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
    "MAX_BATCH",
    "Follow",
    "KVEntry",
    "KVWatch",
    "ObjectStore",
    "PubAck",
    "PushCapture",
    "Recorder",
    "RecorderStats",
    "add_consumer",
    "add_counter",
    "add_stream",
    "api_request",
    "batch_publish",
    "consumer_info",
    "consumer_lag",
    "consumer_names",
    "consumers",
    "counter_add",
    "counter_value",
    "create_kv",
    "create_object_store",
    "delete_consumer",
    "delete_stream",
    "follow",
    "history_frame",
    "js_publish",
    "kv",
    "kv_buckets",
    "kv_operation",
    "object_store",
    "object_stores",
    "pause_consumer",
    "purge_stream",
    "read_stream",
    "resume_consumer",
    "stream_history",
    "stream_info",
    "stream_names",
    "stream_subjects",
    "streams",
    "ttl_header",
]
