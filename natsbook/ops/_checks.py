"""Health checks as a table: one pass / warn / fail row per thing checked, the way
``nats server check`` judges connections, JetStream, streams, consumers and servers - so a
notebook can be a runbook (``conn.check()``, then filter the rows that are not ``pass``).

The checks use only the connection: the JetStream API (``$JS.API.INFO``, stream and consumer
lists) of the connection's account, and - for a system-account user - every server's
``HEALTHZ`` through ``$SYS.REQ.SERVER.PING``. A threshold is a ``(warn, fail)`` pair; a
value at or past ``warn`` warns, at or past ``fail`` fails; ``None`` leaves a value unjudged
(reported, passing). An answer the server garbles is a failing row that says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from ..errors import BadInputError, NatsbookError
from ._sysmon import gather, is_system

if TYPE_CHECKING:
    from ..core import Link

__all__ = ["CHECK_COLUMNS", "check"]

#: Columns of :func:`check`, in order.
CHECK_COLUMNS = ["check", "target", "status", "value", "warn", "fail", "detail"]
_ORDER = {"pass": 0, "warn": 1, "fail": 2}
Threshold = tuple[float, float] | None


def _threshold(name: str, value: Any) -> Threshold:
    if value is None:
        return None
    try:
        warn, fail = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BadInputError(f"{name}={value!r} must be a (warn, fail) pair of numbers, "
                            "or None") from None
    if not 0 <= warn <= fail:
        raise BadInputError(f"{name}={value!r}: need 0 <= warn <= fail")
    return warn, fail


#: What reading a garbled info dict raises (a list where an object was due, text where a
#: number was): the row says so instead.
_GARBLED = (AttributeError, TypeError, ValueError, KeyError)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _judge(value: float | None, limits: Threshold) -> str:
    if value is None or limits is None:
        return "pass"
    return "fail" if value >= limits[1] else "warn" if value >= limits[0] else "pass"


class _Rows:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, check: str, target: str, status: str, value: Any = None,
            limits: Threshold = None, detail: str = "") -> None:
        self.rows.append({"check": check, "target": target, "status": status, "value": value,
                          "warn": limits[0] if limits else None,
                          "fail": limits[1] if limits else None, "detail": detail})

    def measure(self, check: str, target: str, value: float | None, limits: Threshold,
                detail: str = "") -> None:
        self.add(check, target, _judge(value, limits), value, limits, detail)


def _api(conn: Link, subject: str, body: Any, timeout: float) -> dict[str, Any]:
    """A JetStream API answer as a dict; NatsbookError with the server's text otherwise."""
    msg = conn.request("$JS.API." + subject, orjson.dumps(body) if body else b"",
                       timeout=timeout)
    try:
        answer = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        raise NatsbookError(f"$JS.API.{subject} answered {msg.data[:60]!r}, not JSON") from None
    if not isinstance(answer, dict):
        raise NatsbookError(f"$JS.API.{subject} answered {type(answer).__name__}, not an "
                            "object")
    if isinstance(answer.get("error"), dict):
        raise NatsbookError(str(answer["error"].get("description", answer["error"])))
    return answer


def _paged(conn: Link, subject: str, key: str, timeout: float) -> list[dict[str, Any]]:
    """Every item of a paged list. A garbled answer (a total that is not a count, a page
    that is not a list or brings nothing new) is a NatsbookError, never a loop."""
    out: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    while True:
        page = _api(conn, subject, {"offset": len(out)}, timeout)
        items, total = page.get(key) or [], page.get("total", 0)
        if not isinstance(items, list) or not isinstance(total, int) \
                or isinstance(total, bool):
            raise NatsbookError(f"$JS.API.{subject} answered a garbled page ({key} "
                                f"{type(items).__name__}, total {total!r})")
        fresh = [i for i in items if isinstance(i, dict)]
        keys = {orjson.dumps(i, option=orjson.OPT_SORT_KEYS) for i in fresh}
        if items and not keys - seen:
            raise NatsbookError(f"$JS.API.{subject} answered offset {len(out)} with items "
                                f"it had sent already (total {total}): a garbled listing")
        seen |= keys
        out.extend(fresh)
        if not items or len(out) >= total:
            return out


def _connection(conn: Link, rows: _Rows, rtt: Threshold, timeout: float) -> bool:
    target = conn.connected_url or "?"
    if conn.is_closed:
        rows.add("connection", target, "fail", detail="the connection is closed")
        return False
    try:
        seconds = conn.flush(timeout)
    except NatsbookError as exc:
        rows.add("connection", target, "fail", detail=f"no round trip: {exc}")
        return False
    rows.measure("connection rtt", target, round(seconds * 1000, 3),
                 (rtt[0] * 1000, rtt[1] * 1000) if rtt else None, "milliseconds")
    return True


def _jetstream(conn: Link, rows: _Rows, usage: Threshold, timeout: float) -> bool:
    try:
        info = _api(conn, "INFO", None, timeout)
    except NatsbookError as exc:
        rows.add("jetstream", "account", "fail", detail=f"JetStream unavailable: {exc}")
        return False
    caps: dict[str, Any] = info["limits"] if isinstance(info.get("limits"), dict) else {}
    for resource, limit_key in (("memory", "max_memory"), ("storage", "max_storage"),
                                ("streams", "max_streams"), ("consumers", "max_consumers")):
        have = info.get(resource)
        cap = caps.get(limit_key)
        if not isinstance(have, int) or not isinstance(cap, int) or cap <= 0:
            rows.add(f"jetstream {resource}", "account", "pass", have,
                     detail="no account limit")
            continue
        percent = round(100.0 * have / cap, 2)
        rows.measure(f"jetstream {resource}", "account", percent, usage,
                     f"percent of the account limit ({have} of {cap})")
    return True


def _stream(rows: _Rows, info: dict[str, Any], lag: Threshold, seen: Threshold) -> None:
    name = str((info.get("config") or {}).get("name", "?"))
    cluster = info.get("cluster") or {}
    if not cluster.get("leader"):
        if cluster.get("replicas") or (info.get("config") or {}).get("num_replicas", 1) > 1:
            rows.add("stream leader", name, "fail", detail="no leader: the stream cannot "
                     "accept messages (replicas without quorum?)")
            return
        rows.add("stream", name, "pass", (info.get("state") or {}).get("messages"),
                 detail="messages stored (single replica)")
        return
    rows.add("stream leader", name, "pass", detail=str(cluster["leader"]))
    for peer in cluster.get("replicas") or []:
        target = f"{name}@{peer.get('name', '?')}"
        if peer.get("offline"):
            rows.add("stream replica", target, "fail", detail="replica offline")
            continue
        behind = peer.get("lag", 0)
        status = _judge(behind, lag)
        if not peer.get("current") and status == "pass":
            status = "warn"
        rows.add("stream replica", target, status, behind, lag,
                 "operations behind the leader" + ("" if peer.get("current") else
                                                   ", not current"))
        active = peer.get("active")
        if active == 0 and not peer.get("current"):
            # a leader elected since the replica went away has never heard from it
            rows.add("stream replica seen", target, "fail", None, seen,
                     "the leader has not heard from it since it became leader")
        elif isinstance(active, int) and not isinstance(active, bool):
            rows.measure("stream replica seen", target, round(active / 1e9, 3), seen,
                         "seconds since the leader last heard from it")


def _consumer(rows: _Rows, stream: str, info: dict[str, Any],
              limits: dict[str, Threshold]) -> None:
    target = f"{stream}/{info.get('name', '?')}"
    for check, key in (("consumer pending", "num_pending"),
                       ("consumer ack pending", "num_ack_pending"),
                       ("consumer redelivered", "num_redelivered")):
        value = info.get(key, 0)
        if not isinstance(value, int):
            rows.add(check, target, "fail", detail=f"{key} is {value!r}, not a count")
            continue
        rows.measure(check, target, value, limits[check], "messages")
    if info.get("paused"):
        rows.add("consumer paused", target, "warn", detail=f"until {info.get('pause_until')}")


def _servers(conn: Link, rows: _Rows, expected: list[str], timeout: float) -> None:
    try:
        got = gather(conn, "healthz", {}, timeout=timeout, stall=min(0.5, timeout),
                     expected=expected)
    except NatsbookError as exc:
        rows.add("server health", "system", "fail", detail=str(exc))
        return
    for server, data in sorted(got.replies, key=lambda r: str(r[0].get("name"))):
        name = str(server.get("name") or server.get("id") or "?")
        ok = data.get("status") == "ok"
        rows.add("server health", name, "pass" if ok else "fail",
                 detail=str(data.get("status")) if ok else str(data.get("error") or data))
    for name, err in got.errors.items():
        rows.add("server health", name, "fail", detail=err)
    for name in got.missing:
        rows.add("server health", name, "fail", detail="did not answer")


def check(conn: Link, *, streams: Iterable[str] | None = None, jetstream: bool | None = None,
          rtt: Any = (0.5, 2.0), jetstream_usage: Any = (75.0, 90.0),
          stream_lag: Any = (100, 1000), replica_seen: Any = (5.0, 10.0),
          consumer_pending: Any = None,
          consumer_ack_pending: Any = None, consumer_redelivered: Any = None,
          server: bool | None = None, servers: Iterable[str] = (),
          timeout: float = 5.0) -> pd.DataFrame:
    """Check the connection, JetStream, streams, consumers and (for a system-account user)
    every server's health; one row per check: ``check``, ``target``, ``status`` (``pass``,
    ``warn``, ``fail``), ``value``, the ``warn`` and ``fail`` thresholds, ``detail``.
    ``frame.attrs["status"]`` is the worst status.

    Args:
        streams: the streams to check (default: every stream of the account).
        jetstream: False skips JetStream (a core-NATS-only system); by default it is
            checked unless the connection is a system-account user (that account has no
            JetStream).
        rtt: round-trip (warn, fail) seconds.
        jetstream_usage: percent of the account's memory/storage/streams/consumers limits.
        stream_lag: replica lag behind the leader, in operations (clustered streams).
        replica_seen: seconds since the leader last heard from a replica.
        consumer_pending, consumer_ack_pending, consumer_redelivered: (warn, fail) message
            counts per consumer (None: reported, not judged).
        server: check every server's HEALTHZ (default: when the connection is a
            system-account user; True on another one is a failing row).
        servers: server names (or one name) that must answer the health check (a server
            that is down cannot say so: name it here to see it fail).
    """
    limits = {"consumer pending": _threshold("consumer_pending", consumer_pending),
              "consumer ack pending": _threshold("consumer_ack_pending", consumer_ack_pending),
              "consumer redelivered": _threshold("consumer_redelivered",
                                                 consumer_redelivered)}
    rtt_t, usage_t = _threshold("rtt", rtt), _threshold("jetstream_usage", jetstream_usage)
    lag_t = _threshold("stream_lag", stream_lag)
    seen_t = _threshold("replica_seen", replica_seen)
    chosen = None if streams is None else ([streams] if isinstance(streams, str)
                                           else list(streams))
    rows = _Rows()
    if _connection(conn, rows, rtt_t, timeout):
        is_sys = is_system(conn, timeout=min(1.0, timeout))
        system = is_sys if server is None else server
        if jetstream is None:
            jetstream = not is_sys
        if jetstream and _jetstream(conn, rows, usage_t, timeout):
            try:
                infos = _paged(conn, "STREAM.LIST", "streams", timeout)
            except NatsbookError as exc:
                rows.add("streams", "account", "fail", detail=str(exc))
                infos = []
            known = {str(_dict(i.get("config")).get("name")): i for i in infos}
            for name in chosen if chosen is not None else sorted(known):
                if name not in known:
                    rows.add("stream", name, "fail", detail="no such stream")
                    continue
                try:
                    _stream(rows, known[name], lag_t, seen_t)
                except _GARBLED as exc:
                    rows.add("stream", name, "fail", detail=f"garbled stream info: {exc!r}")
                try:
                    consumers = _paged(conn, f"CONSUMER.LIST.{name}", "consumers", timeout)
                except NatsbookError as exc:
                    rows.add("consumers", name, "fail", detail=str(exc))
                    continue
                for info in sorted(consumers, key=lambda c: str(c.get("name"))):
                    try:
                        _consumer(rows, name, info, limits)
                    except _GARBLED as exc:
                        rows.add("consumer", f"{name}/{info.get('name', '?')}", "fail",
                                 detail=f"garbled consumer info: {exc!r}")
        if system:  # one name is one server, not its letters
            names = [servers] if isinstance(servers, str) else list(servers)
            _servers(conn, rows, sorted(set(names)), timeout)
    frame = pd.DataFrame(rows.rows, columns=CHECK_COLUMNS)
    frame["warn"] = pd.to_numeric(frame["warn"], errors="coerce")
    frame["fail"] = pd.to_numeric(frame["fail"], errors="coerce")
    frame.attrs["status"] = max(frame["status"], key=_ORDER.__getitem__, default="pass")
    return frame
