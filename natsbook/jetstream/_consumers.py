"""JetStream consumers as DataFrames: what each consumer of a stream has delivered, what is
still pending and waiting for acks, and how that moves over time ("is my consumer keeping up?").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..capture import FOLD, TABLE, mark
from ..errors import BadInputError, JetStreamError
from ._jsapi import (
    api_request,
    check_name,
    not_found_error,
    paged,
    stream_call,
    stream_not_found,
)

if TYPE_CHECKING:
    from ..core import Link

__all__ = ["CONSUMER_COLUMNS", "LAG_COLUMNS", "add_consumer", "consumer_info", "consumer_lag",
           "consumer_names", "consumers", "delete_consumer"]

CONSUMER_COLUMNS = ["name", "durable", "filter_subjects", "deliver_policy", "ack_policy",
                    "pending", "ack_pending", "redelivered", "waiting", "delivered_stream_seq",
                    "ack_floor_stream_seq", "last_active", "paused", "push", "created"]
LAG_COLUMNS = ["time", "consumer", "pending", "ack_pending", "redelivered", "waiting",
               "delivered_stream_seq", "ack_floor_stream_seq"]
#: JetStream's "consumer not found" and "stream not found" error codes.
_CONSUMER_NOT_FOUND = 10014
_STREAM_NOT_FOUND = 10059


def _ts(value: Any) -> pd.Timestamp | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    return pd.Timestamp(value)


def _row(info: dict[str, Any]) -> dict[str, Any]:
    cfg = info.get("config") or {}
    delivered = info.get("delivered") or {}
    floor = info.get("ack_floor") or {}
    filters = cfg.get("filter_subjects") or ([cfg["filter_subject"]]
                                             if cfg.get("filter_subject") else [])
    return {"name": info.get("name"), "durable": bool(cfg.get("durable_name")),
            "filter_subjects": list(filters), "deliver_policy": cfg.get("deliver_policy"),
            "ack_policy": cfg.get("ack_policy"), "pending": info.get("num_pending", 0),
            "ack_pending": info.get("num_ack_pending", 0),
            "redelivered": info.get("num_redelivered", 0),
            "waiting": info.get("num_waiting", 0),
            "delivered_stream_seq": delivered.get("stream_seq", 0),
            "ack_floor_stream_seq": floor.get("stream_seq", 0),
            "last_active": _ts(delivered.get("last_active")),
            "paused": bool(info.get("paused")), "push": bool(cfg.get("deliver_subject")),
            "created": _ts(info.get("created"))}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=CONSUMER_COLUMNS)
    for col in ("last_active", "created"):
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    for col in ("pending", "ack_pending", "redelivered", "waiting", "delivered_stream_seq",
                "ack_floor_stream_seq"):
        frame[col] = frame[col].astype("int64")
    # display only: settings every consumer shares are said once, above the table
    frame.attrs[FOLD] = ["durable", "deliver_policy", "ack_policy", "paused", "push"]
    return mark(frame.sort_values("name", ignore_index=True), TABLE)


def _list(conn: Link, stream: str, timeout: float) -> list[dict[str, Any]]:
    return paged(lambda offset: stream_call(conn, "CONSUMER.LIST", stream, {"offset": offset},
                                             timeout=timeout), "consumers")


def consumers(conn: Link, stream: str, *, timeout: float = 5.0) -> pd.DataFrame:
    """Every consumer of `stream`, one row each.

    Returns:
        Columns ``name, durable, filter_subjects`` (a list), ``deliver_policy, ack_policy,
        pending`` (stream messages not yet delivered), ``ack_pending`` (delivered, not yet
        acknowledged), ``redelivered, waiting`` (pull requests waiting), ``delivered_stream_seq,
        ack_floor_stream_seq, last_active`` (last delivery), ``paused, push, created``.

    Raises:
        NotFoundError: no such stream (with a close name as a suggestion).
        JetStreamError: JetStream is not enabled.
    """
    return _frame([_row(info) for info in _list(conn, stream, timeout)])


def consumer_names(conn: Link, stream: str, *, timeout: float = 5.0) -> list[str]:
    """Names of the consumers of `stream`, sorted."""
    return sorted(paged(lambda offset: stream_call(conn, "CONSUMER.NAMES", stream,
                                                    {"offset": offset}, timeout=timeout),
                        "consumers"))


def consumer_info(conn: Link, stream: str, name: str, *,
                  timeout: float = 5.0) -> dict[str, Any]:
    """The consumer's info as the JetStream API returns it (``config``, ``delivered``,
    ``ack_floor``, ``num_pending``...).

    Raises:
        NotFoundError: no such stream or consumer (with a close name as a suggestion).
    """
    check_name(stream)
    _check_consumer(name)
    try:
        return api_request(conn, f"CONSUMER.INFO.{stream}.{name}", timeout=timeout)
    except JetStreamError as exc:
        if exc.err_code == _STREAM_NOT_FOUND:
            raise stream_not_found(conn, stream) from None
        if exc.err_code != _CONSUMER_NOT_FOUND:
            raise
    raise not_found_error(f"consumer of stream {stream!r}", name,
                     consumer_names(conn, stream, timeout=timeout), None,
                     "the stream has no consumers yet") from None


def _check_consumer(name: Any) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in " .*>\t\r\n"):
        raise BadInputError(f"bad consumer name {name!r}: names cannot be empty or contain "
                            "spaces, '.', '*' or '>'")


def add_consumer(conn: Link, stream: str, name: str, *,
                 filter_subject: str | list[str] | None = None, ack_policy: str = "explicit",
                 deliver_policy: str = "all", timeout: float = 5.0,
                 **config: Any) -> dict[str, Any]:
    """Create (or update) the durable pull consumer `name` on `stream`; returns its info.

    Args:
        filter_subject: one subject or a list (``filter_subjects``) the consumer selects.
        ack_policy / deliver_policy: as the JetStream API spells them.
        **config: any other consumer configuration field (``max_ack_pending=100``...).
    """
    check_name(stream)
    _check_consumer(name)
    cfg: dict[str, Any] = {"durable_name": name, "ack_policy": ack_policy,
                           "deliver_policy": deliver_policy, **config}
    if isinstance(filter_subject, str):
        cfg["filter_subject"] = filter_subject
    elif filter_subject is not None:
        cfg["filter_subjects"] = list(filter_subject)
    return _create(conn, stream, name, cfg, timeout)


def _create(conn: Link, stream: str, name: str, cfg: dict[str, Any],
            timeout: float) -> dict[str, Any]:
    try:
        return api_request(conn, f"CONSUMER.CREATE.{stream}.{name}",
                           {"stream_name": stream, "config": cfg}, timeout=timeout)
    except JetStreamError as exc:
        if exc.err_code == _STREAM_NOT_FOUND:
            raise stream_not_found(conn, stream) from None
        raise


def delete_consumer(conn: Link, stream: str, name: str, *, timeout: float = 5.0) -> None:
    """Delete the consumer `name` of `stream`.

    Raises:
        NotFoundError: no such stream or consumer.
    """
    consumer_info(conn, stream, name, timeout=timeout)  # a clear not-found error first
    api_request(conn, f"CONSUMER.DELETE.{stream}.{name}", timeout=timeout)


def consumer_lag(conn: Link, stream: str, consumer: str | None = None, *,
                 every: float = 1.0, duration: float = 10.0,
                 timeout: float = 5.0) -> pd.DataFrame:
    """Sample the consumers' pending and ack-pending counts every `every` seconds for
    `duration` seconds (blocking; Ctrl-C / interrupt stops early and keeps the samples).

    Args:
        stream: the stream.
        consumer: only this consumer (default: every consumer of the stream).
        every: seconds between samples (>= 0.05).
        duration: seconds to sample for; the first sample is taken at once, so
            ``duration=0`` gives one sample.

    Returns:
        A long DataFrame, one row per (sample, consumer): ``time`` (UTC), ``consumer,
        pending, ack_pending, redelivered, waiting, delivered_stream_seq,
        ack_floor_stream_seq``. Pivot it for a plot:
        ``lag.pivot(index="time", columns="consumer", values="pending").plot()``.
    """
    if not isinstance(every, (int, float)) or every < 0.05:
        raise BadInputError(f"every={every!r} must be a number of seconds >= 0.05")
    if not isinstance(duration, (int, float)) or duration < 0:
        raise BadInputError(f"duration={duration!r} must be a number of seconds >= 0")
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    n = 0
    try:
        while True:
            now = pd.Timestamp.now(tz="UTC")
            if consumer is not None:
                infos = [consumer_info(conn, stream, consumer, timeout=timeout)]
            else:
                infos = _list(conn, stream, timeout)
            for info in infos:
                r = _row(info)
                rows.append({"time": now, "consumer": r["name"],
                             **{c: r[c] for c in LAG_COLUMNS[2:]}})
            n += 1
            wake = start + n * every
            if wake - start > duration + 1e-9:
                break
            time.sleep(max(0.0, wake - time.monotonic()))
    except KeyboardInterrupt:
        pass
    frame = pd.DataFrame(rows, columns=LAG_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return mark(frame, TABLE)
