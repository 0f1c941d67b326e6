"""JetStream, KV, object store, consumers and services as Connection methods, without the
client layer importing the layers above it.

``conn.streams()`` and ``natsbook.jetstream.streams(conn)`` are one implementation. The
methods here are thin and typed; each calls the function that the higher layer registered
under its name with :func:`provide` when it was imported (``natsbook.jetstream``,
``natsbook.ops``; ``import natsbook`` imports both, so the table is full whenever a Connection
exists).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import NatsbookError

if TYPE_CHECKING:
    from ..jetstream import KV, Follow, ObjectStore, PubAck
    from ..ops import Service
    from ._connection import Connection

__all__ = ["DataMethods", "provide"]

_TABLE: dict[str, Callable[..., Any]] = {}


def provide(**functions: Callable[..., Any]) -> None:
    """Register the implementations of Connection methods (called by the higher layers)."""
    _TABLE.update(functions)


def _impl(name: str) -> Callable[..., Any]:
    try:
        return _TABLE[name]
    except KeyError:
        raise NatsbookError(f"natsbook: conn.{name}() is not available: import natsbook "
                            "(it loads the layers that provide it)") from None


class DataMethods:
    """Mixed into Connection."""

    def streams(self, *, timeout: float = 5.0) -> pd.DataFrame:
        """Every stream: name, subjects, messages, bytes, first/last seq and time, consumers,
        storage."""
        return _impl("streams")(self._as_conn(), timeout=timeout)

    def stream_info(self, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The stream's config and state as the JetStream API returns them."""
        return _impl("stream_info")(self._as_conn(), name, timeout=timeout)

    def stream_subjects(self, name: str, filter: str = ">", *,
                        timeout: float = 5.0) -> pd.DataFrame:
        """Stored message counts per subject (the data for a subject tree)."""
        return _impl("stream_subjects")(self._as_conn(), name, filter, timeout=timeout)

    def stream_history(self, name: str, **kwargs: Any) -> pd.DataFrame:
        """A stream's stored messages as a capture DataFrame with ``seq`` and stored ``time``.
        See :func:`natsbook.jetstream.stream_history` for the arguments."""
        return _impl("stream_history")(self._as_conn(), name, **kwargs)

    def follow(self, name: str, **kwargs: Any) -> Follow:
        """History then live, with no gap and no duplicate at the seam."""
        return _impl("follow")(self._as_conn(), name, **kwargs)

    def js_publish(self, subject: str, data: Any = b"", **kwargs: Any) -> PubAck:
        """Publish into a stream and wait for the ack (stream, seq, duplicate)."""
        return _impl("js_publish")(self._as_conn(), subject, data, **kwargs)

    def kv(self, bucket: str, *, create: bool = False, **kwargs: Any) -> KV:
        """A KV bucket (``create=True`` creates it if missing)."""
        if create:
            return _impl("create_kv")(self._as_conn(), bucket, **kwargs)
        return _impl("kv")(self._as_conn(), bucket, **kwargs)

    # -- issue 15: services (micro protocol) and JetStream consumers --------------------------
    def services(self, name: str | None = None, *, timeout: float = 1.0) -> pd.DataFrame:
        """Every running NATS service instance (any official client's micro library), one row
        per endpoint. See :func:`natsbook.ops._services.services`."""
        return _impl("services")(self._as_conn(), name, timeout=timeout)

    def add_service(self, name: str, version: str, *, description: str = "",
                    metadata: Mapping[str, str] | None = None) -> Service:
        """Run a NATS service from this connection; add endpoints with
        ``.endpoint(name, handler)``. See :class:`natsbook.ops._services.Service`."""
        return _impl("add_service")(self._as_conn(), name, version, description=description,
                                metadata=metadata)

    def consumers(self, stream: str, *, timeout: float = 5.0) -> pd.DataFrame:
        """Every consumer of `stream`: pending, ack pending, redelivered, delivered and
        ack-floor sequences, last active, paused."""
        return _impl("consumers")(self._as_conn(), stream, timeout=timeout)

    def consumer_info(self, stream: str, name: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The consumer's info as the JetStream API returns it."""
        return _impl("consumer_info")(self._as_conn(), stream, name, timeout=timeout)

    def add_consumer(self, stream: str, name: str, **kwargs: Any) -> dict[str, Any]:
        """Create (or update) a durable pull consumer; returns its info. See
        :func:`natsbook.jetstream._consumers.add_consumer` for the options."""
        return _impl("add_consumer")(self._as_conn(), stream, name, **kwargs)

    def delete_consumer(self, stream: str, name: str, *, timeout: float = 5.0) -> None:
        """Delete a consumer of `stream`."""
        _impl("delete_consumer")(self._as_conn(), stream, name, timeout=timeout)

    def consumer_lag(self, stream: str, consumer: str | None = None, *, every: float = 1.0,
                     duration: float = 10.0, timeout: float = 5.0) -> pd.DataFrame:
        """Pending and ack-pending per consumer sampled over time (blocks for `duration`)."""
        return _impl("consumer_lag")(self._as_conn(), stream, consumer, every=every,
                                  duration=duration, timeout=timeout)
    # -- end issue 15 (services, consumers) ----------------------------------------------------
    def object_store(self, bucket: str, *, create: bool = False,
                     timeout: float = 5.0) -> ObjectStore:
        """An object store bucket (``create=True`` creates it if missing): ``.list()``,
        ``.put(name, data_or_path)``, ``.get(name[, path])``, ``.delete(name)``,
        ``.info(name)``. See :mod:`natsbook.jetstream._objstore`."""
        return _impl("object_store")(self._as_conn(), bucket, create=create, timeout=timeout)

    def _as_conn(self) -> Connection:
        return self  # type: ignore[return-value]
