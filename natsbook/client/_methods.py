"""JetStream and KV as Connection methods: thin delegations to natsbook.jetstream / .kv, so
``conn.streams()`` and ``natsbook.jetstream.streams(conn)`` are one implementation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..jetstream import _consumers as _cons
from ..jetstream import _objstore as _obj
from ..ops import _services as _srv
from ..jetstream import _streams as _js
from ..jetstream import _kv as _kv

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["DataMethods"]


class DataMethods:
    """Mixed into Connection."""

    def streams(self, *, timeout: float = 5.0) -> pd.DataFrame:
        """Every stream: name, subjects, messages, bytes, first/last seq and time, consumers,
        storage."""
        return _js.streams(self._as_conn(), timeout=timeout)

    def stream_info(self, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The stream's config and state as the JetStream API returns them."""
        return _js.stream_info(self._as_conn(), name, timeout=timeout)

    def stream_subjects(self, name: str, filter: str = ">", *,
                        timeout: float = 5.0) -> pd.DataFrame:
        """Stored message counts per subject (the data for a subject tree)."""
        return _js.stream_subjects(self._as_conn(), name, filter, timeout=timeout)

    def stream_history(self, name: str, **kwargs: Any) -> pd.DataFrame:
        """A stream's stored messages as a capture DataFrame with ``seq`` and stored ``time``.
        See :func:`natsbook.jetstream.stream_history` for the arguments."""
        return _js.stream_history(self._as_conn(), name, **kwargs)

    def follow(self, name: str, **kwargs: Any) -> _js.Follow:
        """History then live, with no gap and no duplicate at the seam."""
        return _js.follow(self._as_conn(), name, **kwargs)

    def js_publish(self, subject: str, data: Any = b"", **kwargs: Any) -> _js.PubAck:
        """Publish into a stream and wait for the ack (stream, seq, duplicate)."""
        return _js.js_publish(self._as_conn(), subject, data, **kwargs)

    def kv(self, bucket: str, *, create: bool = False, **kwargs: Any) -> _kv.KV:
        """A KV bucket (``create=True`` creates it if missing)."""
        if create:
            return _kv.create_kv(self._as_conn(), bucket, **kwargs)
        return _kv.kv(self._as_conn(), bucket, **kwargs)

    # -- issue 15: services (micro protocol) and JetStream consumers --------------------------
    def services(self, name: str | None = None, *, timeout: float = 1.0) -> pd.DataFrame:
        """Every running NATS service instance (any official client's micro library), one row
        per endpoint. See :func:`natsbook.ops._services.services`."""
        return _srv.services(self._as_conn(), name, timeout=timeout)

    def add_service(self, name: str, version: str, *, description: str = "",
                    metadata: Mapping[str, str] | None = None) -> _srv.Service:
        """Run a NATS service from this connection; add endpoints with
        ``.endpoint(name, handler)``. See :class:`natsbook.ops._services.Service`."""
        return _srv.add_service(self._as_conn(), name, version, description=description,
                                metadata=metadata)

    def consumers(self, stream: str, *, timeout: float = 5.0) -> pd.DataFrame:
        """Every consumer of `stream`: pending, ack pending, redelivered, delivered and
        ack-floor sequences, last active, paused."""
        return _cons.consumers(self._as_conn(), stream, timeout=timeout)

    def consumer_info(self, stream: str, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The consumer's info as the JetStream API returns it."""
        return _cons.consumer_info(self._as_conn(), stream, name, timeout=timeout)

    def add_consumer(self, stream: str, name: str, **kwargs: Any) -> dict[str, Any]:
        """Create (or update) a durable pull consumer; returns its info. See
        :func:`natsbook.jetstream._consumers.add_consumer` for the options."""
        return _cons.add_consumer(self._as_conn(), stream, name, **kwargs)

    def delete_consumer(self, stream: str, name: str, *, timeout: float = 5.0) -> None:
        """Delete a consumer of `stream`."""
        _cons.delete_consumer(self._as_conn(), stream, name, timeout=timeout)

    def consumer_lag(self, stream: str, consumer: str | None = None, *, every: float = 1.0,
                     duration: float = 10.0, timeout: float = 5.0) -> pd.DataFrame:
        """Pending and ack-pending per consumer sampled over time (blocks for `duration`)."""
        return _cons.consumer_lag(self._as_conn(), stream, consumer, every=every,
                                  duration=duration, timeout=timeout)
    # -- end issue 15 (services, consumers) ----------------------------------------------------
    def object_store(self, bucket: str, *, create: bool = False,
                     timeout: float = 5.0) -> _obj.ObjectStore:
        """An object store bucket (``create=True`` creates it if missing): ``.list()``,
        ``.put(name, data_or_path)``, ``.get(name[, path])``, ``.delete(name)``,
        ``.info(name)``. See :mod:`natsbook.jetstream._objstore`."""
        return _obj.object_store(self._as_conn(), bucket, create=create, timeout=timeout)

    def _as_conn(self) -> Connection:
        return self  # type: ignore[return-value]
