"""Connection: the public API of natsbook, stated in one place.

Every public method is written here and delegates, with ordinary imports, to the layer that
does the work: the engine it owns (:class:`natsbook.core.Engine`: publish, subscribe,
requests, closing), ``natsbook.jetstream``, ``natsbook.ops`` and ``natsbook.capture``. This
layer sits above them all; they take any :class:`natsbook.core.Link`, never a Connection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from .. import jetstream, ops
from ..capture import (
    DEFAULT_MAX_BYTES,
    CaptureBudget,
    DecodeArg,
    capture_frame,
    captures_sql,
    publish_frame,
)
from ..core import (
    DEFAULT_PENDING_BYTES,
    DEFAULT_PENDING_MSGS,
    ConnectionInternals,
    DrainReport,
    Engine,
    Subscription,
    request_batch,
    request_many,
)
from ..jetstream import KV, Follow, ObjectStore, PubAck
from ..ops import Advisories, Service
from ..wire import Msg
from ..wire._protocol import RawMsg

__all__ = ["Connection"]


class Connection:
    """A NATS connection: publish, subscribe and capture, request/reply, JetStream, KV, the
    object store, services, SQL and live views over what it captured.

    Make one with :func:`natsbook.connect` (``with natsbook.connect(url) as conn:`` closes it
    at the end); the constructor takes the protocol engine that ``connect()`` builds and is
    not meant to be called directly. Every method is safe to call from any thread.
    """

    __slots__ = ("__weakref__", "_engine")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------ publish / request
    def publish(self, subject: str, data: Any = b"", *, reply: str | None = None,
                headers: Mapping[str, Any] | None = None) -> None:
        """Publish a message. Returns once queued; ``flush()`` waits until the server has it.

        Args:
            subject: a concrete subject (no wildcards).
            data: bytes-like, str (UTF-8), or a dict/list/number (sent as JSON).
            reply: optional reply subject.
            headers: mapping of key -> value or list of values (repeated keys are kept);
                numbers are sent as text (``5`` -> "5"), bools as "true"/"false".

        Raises:
            BadSubjectError, BadHeaderError, MaxPayloadError, BadInputError: bad input; nothing
                was sent.
            NotConnectedError: reconnecting and the reconnect buffer is full.
            ConnectionClosedError: the connection was closed.
        """
        self._engine.publish(subject, data, reply=reply, headers=headers)

    def flush(self, timeout: float = 10.0) -> float:
        """Barrier: returns once the server has processed everything sent before it.

        Returns the round-trip time in seconds. Waits through a reconnect within `timeout`;
        then it is a barrier on the new server only: publishes the old one had not processed
        when the connection dropped may be lost, and ``conn.gaps()`` shows that interval.

        Its PING counts against the send queue's bound like a publish: while the queue is past
        ``pending_size`` it waits for room (within `timeout`).

        Raises:
            FlushTimeout: no answer within `timeout`.
        """
        return self._engine.flush(timeout)

    def rtt(self, timeout: float = 5.0) -> float:
        """Round-trip time to the server in seconds (one PING/PONG)."""
        return self._engine.rtt(timeout)

    def new_inbox(self) -> str:
        """A unique inbox subject for this connection."""
        return self._engine.new_inbox()

    def request(self, subject: str, data: Any = b"", *, timeout: float = 5.0,
                headers: Mapping[str, Any] | None = None) -> Msg:
        """Send a request and wait for the first reply.

        Raises:
            NoRespondersError: nobody is subscribed to `subject`.
            RequestTimeout: no reply within `timeout` seconds.
            ServiceError: the responder answered with a Nats-Service-Error header.
            ProtocolError: the reply's header block is not NATS headers.
            MaxPayloadError, BadSubjectError: bad input; nothing was sent.
        """
        return self._engine.request(subject, data, timeout=timeout, headers=headers)

    def request_batch(self, subject: str, payloads: Iterable[Any], *, concurrency: int = 100,
                      timeout: float = 5.0, headers: Mapping[str, Any] | None = None,
                      decode: DecodeArg = "auto", progress: bool | None = None) -> pd.DataFrame:
        """Send every payload as a request, at most `concurrency` in flight, and collect the
        replies: the notebook way to load-test a service and look at its latencies.

        Runs on the calling thread (no thread per request). Ctrl-C stops it: requests not yet
        sent are taken back, those in flight are forgotten (a late reply counts in
        ``stats["late_replies"]``), and nothing more is sent.

        Args:
            subject: the service's subject.
            payloads: one request per item (bytes, str, or a dict/list/number as JSON).
            concurrency: requests in flight at most.
            timeout: seconds each request waits for its reply.
            headers: sent with every request.
            decode: how to show reply payloads, as in ``to_pandas``.
            progress: show a progress bar (default: on for runs of 2,000 or more).

        Returns:
            One row per payload, in input order: ``subject`` (the request's), ``reply`` (the
            inbox the reply came to), the reply's receive ``time``, ``headers``, ``size`` and
            data as a capture row shows them, ``latency_ms`` and
            ``error``: None, or the error's class name (``RequestTimeout``,
            ``NoRespondersError``, ``ServiceError``: a ``Nats-Service-Error`` header,
            ``ProtocolError``: a malformed reply header block); ``error_code``: the
            service's ``Nats-Service-Error-Code`` (500 when it sent none) or the status
            (503); ``error_text``: what ``request()`` would have raised with (the
            service's ``Nats-Service-Error`` text, ``no responders``, ``no reply within
            ...``).

        Raises:
            BadSubjectError, BadInputError, MaxPayloadError: bad input; nothing was sent.
            ConnectionClosedError: the connection closed during the run.
        """
        return request_batch(self._engine, subject, payloads, concurrency=concurrency,
                             timeout=timeout, headers=headers, decode=decode,
                             progress=progress)

    def request_many(self, subject: str, data: Any = b"", *, max_replies: int | None = None,
                     max_wait: float = 1.0, stall: float | None = None,
                     headers: Mapping[str, Any] | None = None,
                     decode: DecodeArg = "auto") -> pd.DataFrame:
        """Scatter-gather: send one request and collect every reply (nats.js ``requestMany``,
        ``nats req --replies``).

        Collects until `max_replies` replies arrived, or `max_wait` seconds passed, or, with
        `stall`, no reply came for `stall` seconds after the first one, whichever is first.

        Returns:
            One row per reply in arrival order, as a capture row shows it (``subject``: the
            request's, ``reply``: the inbox every reply came to), with
            ``latency_ms`` (since the request was sent). No reply within `max_wait`: an empty
            frame.

        Raises:
            NoRespondersError: nobody is subscribed to `subject`.
            BadSubjectError, BadInputError, MaxPayloadError: bad input; nothing was sent.
        """
        return request_many(self._engine, subject, data, max_replies=max_replies, max_wait=max_wait,
                            stall=stall, headers=headers, decode=decode)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, subject: str, *, queue: str | None = None, max_msgs: int | None = None,
                  callback: Callable[[Msg], Any] | None = None, capture: bool = True,
                  max_rows: int | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES,
                  spill: str | os.PathLike[str] | None = None,
                  pending_msgs: int = DEFAULT_PENDING_MSGS,
                  pending_bytes: int = DEFAULT_PENDING_BYTES,
                  batch_callback: Callable[[list[RawMsg], float], Any] | None = None,
                  timeout: float = 10.0, name: str | None = None,
                  decode: DecodeArg | None = None) -> Subscription:
        """Subscribe and capture. Returns once the server has registered the subscription.

        Args:
            subject: subject or pattern (``*`` one token, ``>`` the rest).
            queue: queue group: each message goes to one member of the group.
            max_msgs: unsubscribe automatically after this many messages.
            callback: called with each Msg on a dispatcher thread (never the reader);
                exceptions are counted in stats and reported in ``conn.errors``.
            capture: keep messages in the subscription's store (for ``to_pandas``).
            max_rows / max_bytes: store bounds; oldest rows are evicted first and counted.
            spill: directory for Parquet spill: sealed rows go to disk instead of eviction.
            pending_msgs / pending_bytes: callback queue limits; overflow is dropped, counted.
            batch_callback: for high rates: called on the dispatcher thread with each batch
                the reader received, as a list of raw ``(subject, reply, header block,
                payload)`` bytes tuples, and its receive time (seconds since the epoch).
            timeout: how long to wait for the server to confirm.
            name: a table name for this capture in ``conn.sql()`` (``FROM readings``); a
                later capture given the same name takes it over.
            decode: the capture's payload format ("msgpack", "cbor", a registered name or
                ``natsbook.protobuf(...)``): ``to_pandas()`` and SQL's ``data`` decode by it.
        """
        return self._engine.subscribe(
            subject, queue=queue, max_msgs=max_msgs, callback=callback, capture=capture,
            max_rows=max_rows, max_bytes=max_bytes, spill=spill, pending_msgs=pending_msgs,
            pending_bytes=pending_bytes, batch_callback=batch_callback, timeout=timeout,
            name=name, decode=decode)

    def unsubscribe(self, sub: Subscription | str, *, max_msgs: int | None = None) -> None:
        """Unsubscribe now, or after `max_msgs` messages in total (auto-unsubscribe)."""
        self._engine.unsubscribe(sub, max_msgs=max_msgs)

    @property
    def subscriptions(self) -> list[Subscription]:
        """Active subscriptions (user ones; the request inbox and natsbook's own JetStream
        readers are internal)."""
        return self._engine.subscriptions

    def serve(self, subject: str, handler: Callable[[Msg], Any], *, queue: str | None = None,
              capture: bool = False, **kwargs: Any) -> Subscription:
        """Answer requests on `subject` with `handler(msg)`'s return value.

        The return value is sent as the reply (bytes, str, dict/list as JSON; a Msg's data;
        None sends an empty reply). An exception becomes an error reply with the
        ``Nats-Service-Error`` / ``Nats-Service-Error-Code: 500`` headers; the responder keeps
        serving. Use ``queue=`` to run a pool of workers.
        """
        return self._engine.serve(subject, handler, queue=queue, capture=capture, **kwargs)

    # ------------------------------------------------------------------ closing
    def drain(self, timeout: float = 10.0) -> DrainReport:
        """Unsubscribe everything, let callbacks finish, send what is queued, then close.

        Interrupted (Ctrl-C), it closes at once, without waiting for the server."""
        return self._engine.drain(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Send what was published, then close: stop the I/O thread and callbacks.

        Messages published but not yet confirmed are flushed first: sent, and confirmed by
        a PING/PONG round trip (what nats.go's Drain() waits for; its Close() flushes its
        buffer to the socket), within `timeout` seconds, so a server that stops reading
        cannot hold close() longer. What could not be written by then is dropped, counted in
        ``stats["unsent_msgs"]`` and reported in ``conn.errors``. While reconnecting nothing
        is waited for: the reconnect buffer is dropped and counted (as nats.go does).
        ``with natsbook.connect(...) as conn:`` closes this way.

        Args:
            timeout: seconds to wait for the server to take what was published; stopping
                the I/O thread and each callback thread is given up to the same again (at
                most 2 s per callback thread).
        """
        self._engine.close(timeout)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> str:
        """"connected", "reconnecting", "draining" or "closed"."""
        return self._engine.status

    @property
    def is_connected(self) -> bool:
        """True while a server connection is up (not while reconnecting, draining or
        closed)."""
        return self._engine.is_connected

    @property
    def is_closed(self) -> bool:
        """True once ``close()`` or ``drain()`` finished, or reconnecting gave up (the
        reason is in ``conn.errors`` and ``gaps()``)."""
        return self._engine.is_closed

    @property
    def connected_url(self) -> str | None:
        """The URL of the server connected to now, credentials left out; None while not
        connected."""
        return self._engine.connected_url

    @property
    def servers(self) -> list[str]:
        """The server pool (configured and discovered), credentials left out."""
        return self._engine.servers

    @property
    def stats(self) -> dict[str, Any]:
        """Counters of this connection.

        ``out_msgs`` / ``out_bytes``: messages and bytes written to the socket (a message
        counts once wholly written, never when only queued). ``pending_msgs``: published
        messages not yet wholly written; ``pending_bytes``: bytes queued that the writer has
        not taken yet (control frames included). ``unsent_msgs``: messages dropped because
        the connection closed before they could be written (close()'s timeout ran out, or
        reconnecting gave up). Every message publish() accepted is in exactly one of
        ``out_msgs``, ``pending_msgs`` and ``unsent_msgs``, in every snapshot. A written
        message may still be lost if the connection drops before the server reads it:
        ``flush()`` confirms, ``gaps()`` shows drops.
        """
        return self._engine.stats

    @property
    def server_info(self) -> dict[str, Any]:
        """The server's INFO (checked field by field), as of the last connect."""
        return self._engine.server_info

    @property
    def max_payload(self) -> int:
        """The largest payload the server takes (its INFO ``max_payload``)."""
        return self._engine.max_payload

    @property
    def errors(self) -> Any:
        """The newest 200 asynchronous errors as ``(time, text)`` (also logged to the
        ``natsbook`` logger)."""
        return self._engine.errors

    @property
    def name(self) -> str | None:
        """The client name sent in CONNECT (what ``connz`` shows)."""
        return self._engine.name

    @property
    def capture_budget(self) -> CaptureBudget:
        """The one byte bound over every capture of this connection."""
        return self._engine.capture_budget

    @property
    def internals(self) -> ConnectionInternals:
        """natsbook's own layers' interface to this connection (internal inboxes, reconnect
        hooks, gap counts, error reports); not for notebooks. See
        ``natsbook/core/_internals.py``."""
        return self._engine.internals

    def gaps(self) -> pd.DataFrame:
        """Disconnected intervals as a DataFrame: start, end (NaT while ongoing), duration,
        server, reason."""
        return self._engine.gaps()

    # ------------------------------------------------------------------ captures
    def to_pandas(self, decode: DecodeArg = "auto", *, last: int | None = None, since: Any = None,
                  subject: str | None = None) -> pd.DataFrame:
        """Messages of every capture on this connection (active and finished), oldest first,
        with a ``sub`` column naming the subscription's subject pattern."""
        return capture_frame(self._engine.internals.captures(), decode, with_sub=True,
                             last=last, since=since, subject=subject)

    def sql(self, query: str) -> pd.DataFrame:
        """Run DuckDB SQL over every capture of this connection.

        The table ``messages`` holds every row of every capture you made (active, finished and
        spilled to Parquet; the connection's internal subscriptions are left out), with the
        columns ``time, sub, subject, reply, headers, size, data, payload``: ``data`` is the
        payload as text (``data::JSON ->> 'temp'``; ``TRY_CAST(data AS JSON)`` is NULL for a
        payload that is not JSON), ``payload`` its raw bytes. A capture made with
        ``subscribe(..., name="readings")`` is also the table ``readings``. The in-memory
        batches are scanned in place, without a copy.

        Returns:
            The query's result as a DataFrame.

        Raises:
            QueryError: DuckDB refused or failed the query (its message is in ``.detail``).
        """
        return captures_sql(self._engine.internals.captures(), query)

    def live(self, fn: Callable[[pd.DataFrame], Any] | str, *, every: float = 1.0,
             decode: DecodeArg = "auto", title: str | None = None) -> Any:
        """A view of ``fn(frame)`` over every capture (``frame`` as ``conn.to_pandas()``, with
        a ``sub`` column), or of a SQL query's result, re-rendered at most every `every`
        seconds and only when new rows arrived. See :meth:`Subscription.live`."""
        # A live view is a widget: an import of the front end, made when it is asked for
        # (tests/test_layers.py names it as the one exception to the layer rules).
        from ..notebook.widgets.live import LiveView

        return LiveView(self, fn, every=every, decode=decode, title=title)

    def publish_frame(self, df: pd.DataFrame, *, subject: str | None = None,
                      data: str | None = None, headers: str | None = None,
                      rate: float | None = None, progress: bool | None = None) -> int:
        """Publish a DataFrame's rows back as messages (replay captured telemetry).

        Args:
            df: e.g. a capture from ``to_pandas()``.
            subject: a column of subjects, or one literal subject for every row; default the
                ``subject`` column.
            data: the payload column. Default: a ``decode="json"`` frame (it has
                ``json_error``) is folded back into the JSON values it was decoded from (README,
                "Decoding contract"); else ``data`` if present; else the columns are folded
                into one object per row (dotted names nest; missing cells are left out).
            headers: a column of header dicts; default ``headers`` if present.
            rate: messages per second (None: as fast as the connection takes them).
            progress: show a progress bar (default: on for long runs).

        Returns:
            The number of messages published (all flushed to the server).

        Raises:
            BadInputError: a row cannot be folded back (a ``json_error`` row, two columns
                filling one key, a cell with no JSON form; the message names the column), or
                a row has a ``header_error`` while headers come from the frame.
        """
        return publish_frame(self, df, subject=subject, data=data, headers=headers, rate=rate,
                             progress=progress)

    # ------------------------------------------------------------------ JetStream
    def streams(self, *, timeout: float = 5.0) -> pd.DataFrame:
        """Every stream: name, subjects, messages, bytes, first/last seq and time, consumers,
        storage."""
        return jetstream.streams(self, timeout=timeout)

    def stream_info(self, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The stream's config and state as the JetStream API returns them."""
        return jetstream.stream_info(self, name, timeout=timeout)

    def stream_subjects(self, name: str, filter: str = ">", *,
                        timeout: float = 5.0) -> pd.DataFrame:
        """Stored message counts per subject (the data for a subject tree)."""
        return jetstream.stream_subjects(self, name, filter, timeout=timeout)

    def stream_history(self, name: str, *, subject: str | None = None,
                       start_seq: int | None = None, since: Any = None, until: Any = None,
                       last: int | None = None, max_rows: int | None = None,
                       decode: DecodeArg = "auto", method: str = "auto",
                       progress: bool | None = None, timeout: float = 10.0) -> pd.DataFrame:
        """A stream's stored messages as a capture DataFrame with ``seq`` and stored ``time``.
        See :func:`natsbook.jetstream.stream_history` for the arguments."""
        return jetstream.stream_history(
            self, name, subject=subject, start_seq=start_seq, since=since, until=until,
            last=last, max_rows=max_rows, decode=decode, method=method, progress=progress,
            timeout=timeout)

    def follow(self, name: str, *, subject: str | None = None, start_seq: int | None = None,
               since: Any = None, last: int | None = None, history: bool = True,
               max_bytes: int | None = None, progress: bool | None = None,
               timeout: float = 10.0) -> Follow:
        """History then live, with no gap and no duplicate at the seam. See
        :func:`natsbook.jetstream.follow`."""
        return jetstream.follow(self, name, subject=subject, start_seq=start_seq, since=since,
                                last=last, history=history, max_bytes=max_bytes,
                                progress=progress, timeout=timeout)

    def js_publish(self, subject: str, data: Any = b"", *,
                   headers: Mapping[str, Any] | None = None, msg_id: str | None = None,
                   expected_stream: str | None = None, expected_last_seq: int | None = None,
                   expected_last_subject_seq: int | None = None, ttl: Any = None,
                   timeout: float = 5.0) -> PubAck:
        """Publish into a stream and wait for the ack (stream, seq, duplicate). ``ttl``: the
        message's time to live (``Nats-TTL``, nats-server 2.11+, a stream with
        ``allow_msg_ttl``). See :func:`natsbook.jetstream.js_publish`."""
        return jetstream.js_publish(
            self, subject, data, headers=headers, msg_id=msg_id,
            expected_stream=expected_stream, expected_last_seq=expected_last_seq,
            expected_last_subject_seq=expected_last_subject_seq, ttl=ttl, timeout=timeout)

    def kv(self, bucket: str, *, create: bool = False, history: int = 1,
           ttl: float | None = None, storage: str = "file", max_bytes: int = -1,
           max_value_size: int = -1, description: str | None = None,
           marker_ttl: float | None = None, timeout: float = 5.0) -> KV:
        """A KV bucket; ``create=True`` creates it if missing, with the other options (see
        :func:`natsbook.jetstream.create_kv`). An existing bucket is opened as it is: the
        options never change it (``natsbook.jetstream.create_kv`` updates a bucket).

        Raises:
            NotFoundError: no such bucket and ``create=False`` ("did you mean" in the message).
        """
        return jetstream.kv(self, bucket, create=create, history=history, ttl=ttl,
                            storage=storage, max_bytes=max_bytes, max_value_size=max_value_size,
                            description=description, marker_ttl=marker_ttl, timeout=timeout)

    def add_consumer(self, stream: str, name: str, *,
                     filter_subject: str | list[str] | None = None,
                     ack_policy: str = "explicit", deliver_policy: str = "all",
                     timeout: float = 5.0, **config: Any) -> dict[str, Any]:
        """Create (or update) a durable pull consumer; returns its info. Other JetStream
        consumer options go in `config` by their API names (``max_deliver=5``). See
        :func:`natsbook.jetstream.add_consumer`."""
        return jetstream.add_consumer(self, stream, name, filter_subject=filter_subject,
                                      ack_policy=ack_policy, deliver_policy=deliver_policy,
                                      timeout=timeout, **config)

    def consumers(self, stream: str, *, timeout: float = 5.0) -> pd.DataFrame:
        """Every consumer of `stream`: pending, ack pending, redelivered, delivered and
        ack-floor sequences, last active, paused."""
        return jetstream.consumers(self, stream, timeout=timeout)

    def consumer_info(self, stream: str, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The consumer's info as the JetStream API returns it."""
        return jetstream.consumer_info(self, stream, name, timeout=timeout)

    def delete_consumer(self, stream: str, name: str, *, timeout: float = 5.0) -> None:
        """Delete a consumer of `stream`."""
        jetstream.delete_consumer(self, stream, name, timeout=timeout)

    def consumer_lag(self, stream: str, consumer: str | None = None, *, every: float = 1.0,
                     duration: float = 10.0, timeout: float = 5.0) -> pd.DataFrame:
        """Pending and ack-pending per consumer sampled over time (blocks for `duration`)."""
        return jetstream.consumer_lag(self, stream, consumer, every=every, duration=duration,
                                      timeout=timeout)

    def object_store(self, bucket: str, *, create: bool = False,
                     timeout: float = 5.0) -> ObjectStore:
        """An object store bucket (``create=True`` creates it if missing): ``.list()``,
        ``.put(name, data_or_path)``, ``.get(name[, path])``, ``.delete(name)``,
        ``.info(name)``. See :mod:`natsbook.jetstream._objstore`."""
        return jetstream.object_store(self, bucket, create=create, timeout=timeout)

    # ------------------------------------------------------------------ services
    def services(self, name: str | None = None, *, timeout: float = 1.0) -> pd.DataFrame:
        """Every running NATS service instance (any official client's micro library), one row
        per endpoint. See :func:`natsbook.ops._services.services`."""
        return ops.services(self, name, timeout=timeout)

    def add_service(self, name: str, version: str, *, description: str = "",
                    metadata: Mapping[str, str] | None = None) -> Service:
        """Run a NATS service from this connection; add endpoints with
        ``.endpoint(name, handler)``. See :class:`natsbook.ops._services.Service`."""
        return ops.add_service(self, name, version, description=description, metadata=metadata)

    # ------------------------------------------------------------------ JetStream 2.11+
    def pause_consumer(self, stream: str, consumer: str, until: Any, *,
                       timeout: float = 5.0) -> dict[str, Any]:
        """Pause a consumer until `until`, which must be in the future: a time (without a zone:
        UTC), a timedelta, a duration ("10m") or seconds from now (nats-server 2.11+). See
        :func:`natsbook.jetstream.pause_consumer`."""
        return jetstream.pause_consumer(self, stream, consumer, until, timeout=timeout)

    def resume_consumer(self, stream: str, consumer: str, *,
                        timeout: float = 5.0) -> dict[str, Any]:
        """Resume a paused consumer now."""
        return jetstream.resume_consumer(self, stream, consumer, timeout=timeout)

    def add_counter(self, name: str, subjects: list[str] | str | None = None, *,
                    timeout: float = 5.0, **config: Any) -> dict[str, Any]:
        """Create a counter stream (``allow_msg_counter``, nats-server 2.12+); returns its
        info. See :func:`natsbook.jetstream.add_counter`."""
        return jetstream.add_counter(self, name, subjects, timeout=timeout, **config)

    def counter_add(self, subject: str, delta: int = 1, *, timeout: float = 5.0) -> PubAck:
        """Add `delta` to the counter `subject`; ``PubAck.value`` is the new total."""
        return jetstream.counter_add(self, subject, delta, timeout=timeout)

    def counter_value(self, stream: str, subject: str, *, timeout: float = 5.0) -> int:
        """The current total of the counter `subject` in `stream`."""
        return jetstream.counter_value(self, stream, subject, timeout=timeout)

    def batch_publish(self, messages: Iterable[tuple[Any, ...]], *,
                      timeout: float = 5.0) -> PubAck:
        """Publish ``(subject, data[, headers])`` messages as one atomic batch (nats-server
        2.12+, ``allow_atomic``): all are stored or none. See
        :func:`natsbook.jetstream.batch_publish`."""
        return jetstream.batch_publish(self, messages, timeout=timeout)

    # ------------------------------------------------------------------ observability
    def trace(self, subject: str, payload: Any = b"", headers: Mapping[str, Any] | None = None,
              *, deliver: bool = True, timeout: float = 2.0) -> pd.DataFrame:
        """Publish one traced message (``Nats-Trace-Dest``, ADR-41; nats-server 2.11+) and
        return its path through the servers, one row per event: ``hop``, ``server``,
        ``kind`` (``ingress``, ``subject_mapping``, ``stream_export``, ``service_import``,
        ``jetstream``, ``egress``), ``link``, ``account``, ``subject``, ``stream``, ``name``
        (the receiving client, route, gateway or leaf node), ``error``, ``time``,
        ``offset_ms``. ``deliver=False`` traces without delivering (``Nats-Trace-Only``).
        See :func:`natsbook.ops.trace`."""
        return ops.trace(self, subject, payload, headers, deliver=deliver, timeout=timeout)

    def trace_subjects(self, frame: pd.DataFrame | Iterable[str], *, deliver: bool = False,
                       timeout: float = 2.0) -> pd.DataFrame:
        """Trace every distinct subject of a captured frame (trace-only by default): which
        streams store each, which subscribers and servers it reaches, flagging subjects
        stored by more than one stream or reaching no one. See
        :func:`natsbook.ops.trace_subjects`."""
        return ops.trace_subjects(self, frame, deliver=deliver, timeout=timeout)

    def advisories(self, kinds: Iterable[str] | str | None = None, *,
                   system: bool | None = None, timeout: float = 5.0) -> Advisories:
        """Capture JetStream advisories (``$JS.EVENT.ADVISORY.>``) and, for a system-account
        connection, server events (``$SYS.ACCOUNT.>``, ``$SYS.SERVER.>``). Its
        ``to_pandas()`` has typed columns: ``type``, ``kind``, ``action``, ``stream``,
        ``consumer``, ``stream_seq`` (joins ``stream_history``'s ``seq``), ``deliveries``,
        ``server``, ``account``... See :func:`natsbook.ops.advisories`."""
        return ops.advisories(self, kinds, system=system, timeout=timeout)

    def check(self, *, streams: Iterable[str] | None = None, jetstream: bool | None = None,
              rtt: Any = (0.5, 2.0), jetstream_usage: Any = (75.0, 90.0),
              stream_lag: Any = (100, 1000), replica_seen: Any = (5.0, 10.0),
              consumer_pending: Any = None, consumer_ack_pending: Any = None,
              consumer_redelivered: Any = None, server: bool | None = None,
              servers: Iterable[str] = (),
              timeout: float = 5.0) -> pd.DataFrame:
        """Health checks as rows (``check``, ``target``, ``status`` pass/warn/fail, ``value``,
        ``warn``/``fail`` thresholds, ``detail``) for the connection, JetStream, streams,
        consumers and - for a system-account user - every server, like ``nats server
        check``. See :func:`natsbook.ops.check`."""
        return ops.check(self, streams=streams, jetstream=jetstream, rtt=rtt,
                         jetstream_usage=jetstream_usage, stream_lag=stream_lag,
                         replica_seen=replica_seen, consumer_pending=consumer_pending,
                         consumer_ack_pending=consumer_ack_pending,
                         consumer_redelivered=consumer_redelivered, server=server,
                         servers=servers, timeout=timeout)

    def __repr__(self) -> str:
        return repr(self._engine)
