"""NATS services (the "micro" protocol, ADR-32): discover services and run one from a notebook.

``services(conn)`` scatter-gathers ``$SRV.INFO[.name]`` and ``$SRV.STATS[.name]`` and joins the
answers into one row per endpoint, for services written with any official client (Go, JS,
Python, Java ... micro libraries all answer the same schemas).

``add_service(conn, name, version)`` turns notebook functions into a service the official
tools see: each instance answers PING, INFO and STATS on ``$SRV.<VERB>``,
``$SRV.<VERB>.<name>`` and ``$SRV.<VERB>.<name>.<id>`` with the
``io.nats.micro.v1.{ping,info,stats}_response`` schemas; a handler's exception becomes an error
reply with the ``Nats-Service-Error`` / ``Nats-Service-Error-Code`` headers; the counters are
kept the way nats.go's ``micro`` keeps them (requests and errors counted when the handler
returns, processing time in nanoseconds, the average an integer division).

This module sits above the client: it uses only the Connection's public API.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from ..capture import FOLD, TABLE, mark
from ..errors import BadInputError, NatsbookError
from ..wire._msg import Msg, encode_payload

if TYPE_CHECKING:
    from ..core import Link, Subscription

__all__ = ["COLUMNS", "Endpoint", "Service", "add_service", "services"]

PREFIX = "$SRV"
PING_TYPE = "io.nats.micro.v1.ping_response"
INFO_TYPE = "io.nats.micro.v1.info_response"
STATS_TYPE = "io.nats.micro.v1.stats_response"
ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
DEFAULT_QUEUE = "q"
#: The ADR's name rule and the semver.org regular expression (as the official clients use).
NAME_RE = re.compile(r"^[A-Za-z0-9\-_]+$")
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
#: After the first answer, gathering stops once no more arrived for this long (or at timeout).
STALL = 0.3

#: Columns of ``services()`` and ``Service.stats()``, in order.
COLUMNS = ["name", "id", "version", "description", "endpoint", "subject", "queue_group",
           "requests", "errors", "processing_time", "average_processing_time", "last_error",
           "started", "metadata", "endpoint_metadata"]


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadInputError(f"bad {kind} name {name!r}: use letters, digits, '-' and '_' "
                            "only (the NATS service API's rule)")
    return name


def _check_version(version: Any) -> str:
    if not isinstance(version, str) or not SEMVER_RE.match(version):
        raise BadInputError(f"bad service version {version!r}: it must be a semantic version "
                            "such as '1.0.0' or '2.1.0-beta.1' (https://semver.org)")
    return version


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise BadInputError("metadata must be a dict of str to str (the service API sends "
                            "it as a JSON object of strings)")
    return dict(metadata)


def _rfc3339(t: datetime) -> str:
    # Microseconds and a Z: what nats.go's time parsing and nats-py's strptime both accept.
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------------------ discovery
def _gather(conn: Link, subjects: list[str], timeout: float) -> list[list[Msg]]:
    """Publish an empty request to each subject and collect every answer (scatter-gather).

    Returns when each subject has answered and gone quiet for ``STALL`` seconds, when the
    server says nobody listens (a 503 status), or after `timeout` seconds.
    """
    lock = threading.Lock()
    got: list[list[Msg]] = [[] for _ in subjects]
    last = [0.0] * len(subjects)
    done = [False] * len(subjects)
    wake = threading.Event()
    subs: list[Subscription] = []

    def collector(i: int) -> Callable[[Msg], None]:
        def on(msg: Msg) -> None:
            with lock:
                if msg.status == 503:
                    done[i] = True
                elif msg.status is None:
                    got[i].append(msg)
                    last[i] = time.monotonic()
            wake.set()
        return on

    deadline = time.monotonic() + timeout
    try:
        for i, subject in enumerate(subjects):
            inbox = conn.new_inbox()
            subs.append(conn.subscribe(inbox, callback=collector(i), capture=False,
                                       timeout=timeout))
            conn.publish(subject, b"", reply=inbox)
        while True:
            now = time.monotonic()
            with lock:
                quiet = all(done[i] or (got[i] and now - last[i] >= STALL)
                            for i in range(len(subjects)))
                nxt = min((last[i] + STALL for i in range(len(subjects))
                           if got[i] and not done[i]), default=deadline)
            if quiet or now >= deadline:
                break
            wake.clear()
            wake.wait(max(0.0, min(deadline, nxt) - now) + 0.001)
    finally:
        for sub in subs:
            try:
                conn.unsubscribe(sub)
            except NatsbookError:
                pass
    with lock:
        return [list(g) for g in got]


def _decode(msgs: list[Msg], schema: str) -> tuple[list[dict[str, Any]], int]:
    """JSON bodies of the given schema; the count of answers that were not."""
    out, bad = [], 0
    for msg in msgs:
        try:
            body = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(body, dict) or body.get("type", schema) != schema or "id" not in body:
            bad += 1
            continue
        out.append(body)
    return out, bad


def _ns(value: Any) -> Any:
    try:
        return pd.Timedelta(int(value or 0), unit="ns")
    except (TypeError, ValueError):
        return pd.NaT


def _frame(infos: list[dict[str, Any]], stats: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (instance, endpoint): INFO gives the endpoints, STATS their counters."""
    by_id = {s.get("id"): s for s in stats}
    rows: list[dict[str, Any]] = []
    for info in infos:
        st = by_id.get(info.get("id")) or {}
        counters = {e.get("name"): e for e in st.get("endpoints") or []}
        base = {"name": info.get("name"), "id": info.get("id"),
                "version": info.get("version"), "description": info.get("description") or "",
                "started": pd.Timestamp(st["started"]) if st.get("started") else pd.NaT,
                "metadata": info.get("metadata") or {}}
        endpoints = info.get("endpoints") or [{}]
        for ep in endpoints:
            c = counters.get(ep.get("name"))
            rows.append({**base, "endpoint": ep.get("name"), "subject": ep.get("subject"),
                         "queue_group": ep.get("queue_group"),
                         "requests": c.get("num_requests") if c else None,
                         "errors": c.get("num_errors") if c else None,
                         "processing_time": _ns(c.get("processing_time")) if c else pd.NaT,
                         "average_processing_time": (_ns(c.get("average_processing_time"))
                                                     if c else pd.NaT),
                         "last_error": (c.get("last_error") or "") if c else "",
                         "endpoint_metadata": ep.get("metadata") or {}})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("requests", "errors"):
        frame[col] = frame[col].astype("Int64")
    for col in ("processing_time", "average_processing_time"):
        frame[col] = pd.to_timedelta(frame[col])
    frame["started"] = pd.to_datetime(frame["started"], utc=True, format="ISO8601")
    # display only: what every endpoint shares (one instance's name, id, version) is said
    # once, above the table
    frame.attrs[FOLD] = ["name", "id", "version", "queue_group"]
    return mark(frame.sort_values(["name", "id", "endpoint"], ignore_index=True,
                                  na_position="first"), TABLE)


def services(conn: Link, name: str | None = None, *,
             timeout: float = 1.0) -> pd.DataFrame:
    """Every running service instance (or those called `name`), one row per endpoint.

    Args:
        conn: the connection to ask through.
        name: only services of this name (``$SRV.INFO.<name>``).
        timeout: the longest wait for answers; gathering ends earlier once every instance
            has answered and nothing more arrived for a moment.

    Returns:
        Columns ``name, id, version, description, endpoint, subject, queue_group, requests,
        errors, processing_time, average_processing_time`` (timedeltas), ``last_error,
        started, metadata, endpoint_metadata``. A service without endpoints gives one row
        with an empty endpoint. ``frame.attrs["skipped"]`` counts answers that were not
        valid service API JSON.

    Raises:
        BadInputError: `name` is not a valid service name.
    """
    suffix = "" if name is None else "." + _check_name("service", name)
    info_msgs, stats_msgs = _gather(conn, [f"{PREFIX}.INFO{suffix}", f"{PREFIX}.STATS{suffix}"],
                                    timeout)
    infos, bad_i = _decode(info_msgs, INFO_TYPE)
    stats, bad_s = _decode(stats_msgs, STATS_TYPE)
    frame = _frame(infos, stats)
    frame.attrs["skipped"] = bad_i + bad_s
    return frame


# ------------------------------------------------------------------------------ hosting
@dataclass(slots=True)
class Endpoint:
    """One endpoint of a :class:`Service` and its counters (guarded by the service's lock)."""

    name: str
    subject: str
    queue_group: str
    handler: Callable[[Msg], Any]
    metadata: dict[str, str]
    num_requests: int = 0
    num_errors: int = 0
    processing_time: int = 0
    last_error: str = ""
    sub: Subscription | None = field(default=None, repr=False)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "queue_group": self.queue_group,
                "metadata": self.metadata}

    def stats(self) -> dict[str, Any]:
        avg = self.processing_time // self.num_requests if self.num_requests else 0
        return {"name": self.name, "subject": self.subject, "queue_group": self.queue_group,
                "num_requests": self.num_requests, "num_errors": self.num_errors,
                "last_error": self.last_error, "processing_time": self.processing_time,
                "average_processing_time": avg, "data": None}


def _error_of(exc: BaseException) -> tuple[int, str]:
    """(code, description) of a handler's exception: a natsbook ServiceError (or any exception
    with an int ``code`` and a ``description``) keeps its own, anything else is a 500."""
    code, desc = getattr(exc, "code", None), getattr(exc, "description", None)
    if isinstance(code, int) and isinstance(desc, str):
        return code, desc
    return 500, f"{type(exc).__name__}: {exc}"


class Service:
    """A running service instance: its endpoints answer requests, the instance answers the
    service API (PING, INFO, STATS). Made by ``conn.add_service(name, version)``."""

    def __init__(self, conn: Link, name: str, version: str, *, description: str = "",
                 metadata: Mapping[str, str] | None = None) -> None:
        self.conn = conn
        self.name = _check_name("service", name)
        self.version = _check_version(version)
        if not isinstance(description, str):
            raise BadInputError("description must be a str")
        self.description = description
        self.metadata = _check_metadata(metadata)
        self.id = uuid.uuid4().hex
        self.started = datetime.now(timezone.utc)
        self._lock = threading.Lock()
        self._endpoints: list[Endpoint] = []
        self._verb_subs: list[Subscription] = []
        self._stopped = False
        try:
            for verb, reply in (("PING", self.ping), ("INFO", self.info), ("STATS", self._stats)):
                for subject in (f"{PREFIX}.{verb}", f"{PREFIX}.{verb}.{name}",
                                f"{PREFIX}.{verb}.{name}.{self.id}"):
                    self._verb_subs.append(conn.subscribe(
                        subject, callback=self._answer(reply), capture=False))
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _answer(reply: Callable[[], dict[str, Any]]) -> Callable[[Msg], None]:
        def on(msg: Msg) -> None:
            if msg.reply:
                msg.respond(orjson.dumps(reply()))
        return on

    # -- the service API answers ---------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "version": self.version,
                "metadata": self.metadata}

    def ping(self) -> dict[str, Any]:
        """This instance's PING answer."""
        return {"type": PING_TYPE, **self._identity()}

    def info(self) -> dict[str, Any]:
        """This instance's INFO answer: identity, description and endpoints."""
        with self._lock:
            endpoints = [e.info() for e in self._endpoints]
        return {"type": INFO_TYPE, **self._identity(), "description": self.description,
                "endpoints": endpoints}

    def _stats(self) -> dict[str, Any]:
        with self._lock:
            endpoints = [e.stats() for e in self._endpoints]
            started = self.started
        return {"type": STATS_TYPE, **self._identity(), "started": _rfc3339(started),
                "endpoints": endpoints}

    # -- public --------------------------------------------------------------------------------
    def endpoint(self, name: str, handler: Callable[[Msg], Any], *, subject: str | None = None,
                 queue: str | None = DEFAULT_QUEUE,
                 metadata: Mapping[str, str] | None = None) -> Service:
        """Answer requests on `subject` (default: the endpoint's name) with `handler(msg)`.

        The handler's return value is the reply (bytes, str, dict/list as JSON; None sends an
        empty reply). An exception becomes an error reply with the ``Nats-Service-Error`` and
        ``Nats-Service-Error-Code`` headers (500, or the ``code``/``description`` of a
        :class:`natsbook.ServiceError`) and counts as an error in STATS.

        Args:
            name: endpoint name (letters, digits, '-', '_').
            handler: called with each request Msg on a dispatcher thread.
            subject: the subject to listen on (wildcards allowed); default `name`.
            queue: queue group (default ``"q"``, as the official clients); None for none.
            metadata: str-to-str metadata shown in INFO.

        Returns:
            The service (so calls chain).

        Raises:
            BadInputError: bad name, subject, queue or metadata, or the name is taken.
        """
        _check_name("endpoint", name)
        if not callable(handler):
            raise BadInputError("handler must be callable: it receives a Msg, returns the reply")
        meta = _check_metadata(metadata)
        with self._lock:
            if self._stopped:
                raise BadInputError(f"service {self.name!r} is stopped - add a new one")
            if any(e.name == name for e in self._endpoints):
                raise BadInputError(f"service {self.name!r} already has an endpoint {name!r}")
        ep = Endpoint(name, subject or name, queue or "", handler, meta)
        ep.sub = self.conn.subscribe(ep.subject, queue=queue, callback=self._handle(ep),
                                     capture=False)
        with self._lock:
            self._endpoints.append(ep)
        return self

    def _handle(self, ep: Endpoint) -> Callable[[Msg], None]:
        def on(msg: Msg) -> None:
            start = time.perf_counter_ns()
            error = None
            data: bytes = b""
            headers: dict[str, Any] | None = None
            try:
                result = ep.handler(msg)
                if isinstance(result, Msg):
                    data = result.data
                    headers = result.headers.to_dict() if result.headers else None
                else:
                    data = encode_payload(result)  # a payload it cannot send is its error
            except Exception as exc:
                code, desc = _error_of(exc)
                error = f"{code}:{desc}"
                data = desc.encode("utf-8", "replace")
                headers = {ERROR_HEADER: " ".join(desc.splitlines()) or "error",
                           ERROR_CODE_HEADER: str(code)}
            elapsed = time.perf_counter_ns() - start
            # Counted before the reply goes out: a requester holding the reply sees it counted.
            with self._lock:
                ep.num_requests += 1
                ep.processing_time += elapsed
                if error is not None:
                    ep.num_errors += 1
                    ep.last_error = error
            if msg.reply:
                msg.respond(data, headers=headers)
        return on

    @property
    def endpoints(self) -> list[str]:
        """Endpoint names, in the order they were added."""
        with self._lock:
            return [e.name for e in self._endpoints]

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stats(self) -> pd.DataFrame:
        """This instance's counters, one row per endpoint (the columns of ``services()``)."""
        return _frame([self.info()], [self._stats()])

    def reset(self) -> None:
        """Zero every endpoint's counters and restart the ``started`` clock (as STATS shows)."""
        with self._lock:
            for e in self._endpoints:
                e.num_requests = e.num_errors = e.processing_time = 0
                e.last_error = ""
            self.started = datetime.now(timezone.utc)

    def stop(self) -> None:
        """Stop answering: endpoints first, then the service API. Idempotent."""
        with self._lock:
            self._stopped = True
            subs = [e.sub for e in self._endpoints if e.sub is not None] + self._verb_subs
            self._verb_subs = []
            for e in self._endpoints:
                e.sub = None
        for sub in subs:
            try:
                self.conn.unsubscribe(sub)
            except NatsbookError:
                pass  # the connection is closed: nothing is listening any more

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return (f"<Service {self.name} {self.version} id={self.id} {state} "
                f"endpoints={self.endpoints}>")


def add_service(conn: Link, name: str, version: str, *, description: str = "",
                metadata: Mapping[str, str] | None = None) -> Service:
    """Start a service instance answering the service API; add endpoints with
    ``.endpoint(name, handler)``.

    Raises:
        BadInputError: `name` is not letters/digits/'-'/'_', or `version` is not semver.
    """
    return Service(conn, name, version, description=description, metadata=metadata)
