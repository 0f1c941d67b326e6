"""Every server's monitoring answer through the system account (scatter-gather).

nats-server answers ``$SYS.REQ.SERVER.PING.<ENDPOINT>`` (VARZ, CONNZ, SUBSZ, JSZ, HEALTHZ,
ROUTEZ, GATEWAYZ, LEAFZ, ACCOUNTZ) from *every* server of the cluster / super-cluster, each
reply ``{"server": {"name", "id", "cluster", ...}, "data": {...}}`` (or ``"error"``) to the one
reply subject. :func:`gather` sends one request and collects replies on an internal
subscription until every expected server answered, replies stall for ``stall`` seconds, or
``timeout`` passes.

Who should answer? A system request cannot tell a dead server from one that never existed, so
the caller keeps the list: :class:`natsbook.ops.Monitor` seeds it from a
``$SYS.REQ.SERVER.PING`` (every answering server plus the route peers each one names), adds
every server that ever answers, and takes ``expected=`` names from the user. A known server
that does not answer a later request is reported missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import MonitorError, NatsbookError, NoRespondersError

if TYPE_CHECKING:
    from ..core import Link
    from ..wire._protocol import RawMsg

__all__ = ["ENDPOINTS", "Gathered", "gather", "is_system", "sys_options"]

PING = "$SYS.REQ.SERVER.PING"
#: After every expected server answered, wait this long for servers not known yet.
SETTLE = 0.05
ENDPOINTS = ("varz", "connz", "subsz", "jsz", "healthz", "routez", "gatewayz", "leafz",
             "accountz")
#: Link states as the system request encodes them (HTTP: ?state=open|closed|all).
_STATES = {"open": 0, "closed": 1, "all": 2}
#: HTTP query parameter -> system request option, where the names differ.
_RENAME = {"subs": "subscriptions", "acc": "account", "accs": "accounts",
           "consumers": "consumer"}


@dataclass(slots=True)
class Gathered:
    """What one scatter-gather request brought back."""

    #: ``(server, data)`` per answering server, in arrival order (``server`` is the reply's
    #: server block: name, id, cluster, host, ver...).
    replies: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    #: server name -> the error it answered instead of data.
    errors: dict[str, str] = field(default_factory=dict)
    #: Expected servers that did not answer, sorted.
    missing: list[str] = field(default_factory=list)


def sys_options(endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    """The JSON options of a system request from the HTTP query parameters of `endpoint`."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or value is False:
            continue
        if key == "state":
            out["state"] = _STATES[value]
        elif key == "subs" and value == "detail":
            out["subscriptions_detail"] = True
            out["subscriptions"] = True
        elif key == "acc" and endpoint == "connz":
            out["acc"] = value  # connz alone keeps the short name
        else:
            out[_RENAME.get(key, key)] = value
    return out


def gather(conn: Link, endpoint: str | None, options: dict[str, Any] | None = None, *,
           timeout: float = 2.0, stall: float = 0.5, expected: Iterable[str] = ()
           ) -> Gathered:
    """Send ``$SYS.REQ.SERVER.PING[.<ENDPOINT>]`` and collect every server's reply.

    Ends when every `expected` server answered, when no reply came for `stall` seconds after
    the last one, or after `timeout` seconds.

    Raises:
        MonitorError: nobody answered at all: the connection is not in the system account.
    """
    subject = PING + (f".{endpoint.upper()}" if endpoint else "")
    want = set(expected)
    cond = threading.Condition()
    rows: list[RawMsg] = []

    def sink(batch: list[RawMsg], now: float) -> None:  # I/O thread: hand over, never block
        with cond:
            rows.extend(batch)
            cond.notify_all()

    inbox = conn.new_inbox()
    sub = conn.internals.subscribe(inbox, sink=sink, timeout=timeout)
    out = Gathered()
    seen: set[str] = set()
    try:
        conn.publish(subject, orjson.dumps(options or {}), reply=inbox)
        start = last = time.monotonic()
        taken = 0
        refused = False
        while not refused:
            with cond:
                new = rows[taken:]
                taken = len(rows)
            for raw in new:
                # "503 no responders": nobody serves system requests to this account.
                refused = refused or bool(raw[2] and raw[2].startswith(b"NATS/1.0 503"))
                if not refused:
                    _take(raw, out, seen)
                    last = time.monotonic()
            now = time.monotonic()
            if want and want <= seen and now - last >= min(stall, SETTLE):
                break  # (a moment more: a server that joined since is learnt, not missed)
            if now - start >= timeout or (seen and now - last >= stall):
                break
            with cond:
                if len(rows) == taken:
                    cond.wait(min(0.05, timeout))
    finally:
        conn.internals.release(sub)
    if not out.replies and not out.errors:
        raise MonitorError(f"no server answered {subject!r} - is this connection a "
                           "system-account user (system_account in the server config)?",
                           subject)
    out.missing = sorted(want - seen)
    return out


def _take(raw: RawMsg, out: Gathered, seen: set[str]) -> None:
    try:
        body = orjson.loads(raw[3])
    except orjson.JSONDecodeError:
        return
    if not isinstance(body, dict):
        return
    server = body.get("server") or {}
    name = str(server.get("name") or server.get("id") or "?")
    if name in seen:
        return  # one answer per server
    seen.add(name)
    err = body.get("error")
    if err:
        out.errors[name] = str(err.get("description", err) if isinstance(err, dict) else err)
        return
    data = body.get("data")
    if data is None:  # the plain PING answers with "statsz"
        data = body.get("statsz") or {}
    out.replies.append((server, data))


def is_system(conn: Link, timeout: float = 1.0) -> bool:
    """True when `conn` can make system requests (a system-account user)."""
    try:
        conn.request(PING + ".HEALTHZ", b"{}", timeout=timeout)
    except NoRespondersError:
        return False
    except NatsbookError:
        return False
    return True
