"""The server's monitoring endpoints as DataFrames, over HTTP or through the system account.

>>> mon = natsbook.monitor("http://127.0.0.1:8222")   # or natsbook.monitor(local_server)
>>> mon.varz()                     # one row: version, uptime, connections, in/out msgs...
>>> mon.connz(state="closed")      # closed connections with their close *reason*
>>> sys_mon = natsbook.monitor(natsbook.connect(url, user="sys", password="..."))
>>> sys_mon.varz()                 # one row per server of the cluster, ``server_name`` first

Through a system-account connection every method asks every server at once
(``$SYS.REQ.SERVER.PING.<ENDPOINT>``, see :mod:`natsbook.ops._sysmon`) and returns one frame with a
``server_name`` column; servers that were expected but did not answer are in
``frame.attrs["missing"]`` and in a :class:`MissingServersWarning`.

Units are converted once, the same for both transports (:mod:`natsbook.ops._monframes`): times
become UTC timestamps, durations ``pd.Timedelta`` whether the server wrote them as nanoseconds
(``ping_interval``, ``write_deadline``), seconds (``auth_timeout``) or Go strings (``"881µs"``,
``"1h2m3s"``, ``"2d3h"``); byte counts stay integers in bytes. The only place a server-side
slow-consumer kick leaves a trace is the close reason of ``/connz?state=closed``:
:meth:`Monitor.slow_consumers` lists those.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any

import pandas as pd

from ..capture import FOLD, REPORT, TABLE, mark
from ..core import Link
from ..errors import BadInputError, MonitorError
from ._monframes import CONNZ_FIRST, parse_duration, records, stack
from ._sysmon import Gathered, gather, sys_options

__all__ = ["MissingServersWarning", "Monitor", "MonitorError", "SystemMonitor", "monitor",
           "parse_duration"]

DEFAULT_MONITOR_URL = "http://127.0.0.1:8222"
#: Connections asked of each server per system request (no paging over the system account).
SYS_CONNZ_LIMIT = 10_000


class MissingServersWarning(UserWarning):
    """Servers that should have answered a system-account monitoring request did not."""


class Monitor:
    """A nats-server monitoring endpoint (``-m PORT`` / ``http: host:port``)."""

    def __init__(self, url: str = DEFAULT_MONITOR_URL, *, timeout: float = 5.0) -> None:
        if "://" not in url:
            url = "http://" + url
        parsed = urllib.parse.urlsplit(url)
        if "@" in parsed.netloc:
            # urllib cannot send them, and the URL would show them in repr() and errors.
            raise BadInputError("a monitoring URL cannot carry credentials (user:password@ is "
                                "not shown here) - nats-server's monitoring port has no auth; "
                                "give http(s)://host:port")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BadInputError(f"monitoring URL {url!r} is not http(s)://host:port - the "
                                "server's monitoring port is 8222 by default")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        """GET ``/<endpoint>`` with query parameters (None values left out); raw JSON."""
        query = {k: _qs(v) for k, v in params.items() if v is not None and v is not False}
        url = f"{self.url}/{endpoint.lstrip('/')}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                data = json.loads(body)
            except ValueError:
                raise MonitorError(f"{url} answered HTTP {exc.code}: {body[:200]!r}", url,
                                   exc.code) from None
            if isinstance(data, dict):
                data.setdefault("http_status", exc.code)
                return data
            raise MonitorError(f"{url} answered HTTP {exc.code}", url, exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MonitorError(f"cannot reach the monitoring endpoint {self.url} ({reason}) - "
                               "is nats-server running with monitoring on (-m 8222)? "
                               "natsbook.local_server() has it at .monitor_url", url) from None
        try:
            data = json.loads(body)
        except ValueError:
            raise MonitorError(f"{url} did not answer JSON: {body[:120]!r} - is this a "
                               "nats-server monitoring port?", url) from None
        if not isinstance(data, dict):
            raise MonitorError(f"{url} answered {type(data).__name__}, expected an object", url)
        return data

    # -- transport hooks: the system-account monitor overrides these three ----------------
    def _answers(self, endpoint: str, **params: Any) -> list[tuple[str | None, dict[str, Any]]]:
        """Each server's answer: here the one server behind the URL (name None)."""
        return [(None, self.get(endpoint, **params))]

    def _pages(self, endpoint: str, key: str, limit: int | None, **params: Any
               ) -> list[tuple[str | None, list[dict[str, Any]], dict[str, Any]]]:
        """Each server's rows under `key`, fetched in pages of 1024, with the last answer."""
        rows: list[dict[str, Any]] = []
        data: dict[str, Any] = {}
        while True:
            page_limit = 1024 if limit is None else min(1024, limit - len(rows))
            data = self.get(endpoint, limit=page_limit, offset=len(rows), **params)
            got = data.get(key) or []
            rows.extend(got)
            if not got or len(rows) >= data.get("total", len(rows)) or (
                    limit is not None and len(rows) >= limit):
                return [(None, rows, data)]

    def _finish(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Every frame goes out through here: tagged for natsbook's notebook display."""
        return mark(frame, TABLE)

    # -- endpoints -------------------------------------------------------------------------
    def varz(self) -> pd.DataFrame:
        """General server information and counters, one row per server (nested fields
        dotted)."""
        keep = frozenset({"http_req_stats", "tags", "feature_flags"})
        return _report(self._finish(stack([(n, records([d], keep=keep))
                                           for n, d in self._answers("varz")])))

    def connz(self, state: str = "open", *, subs: bool | str = False, sort: str | None = None,
              limit: int | None = None, cid: int | None = None, auth: bool = False,
              account: str | None = None) -> pd.DataFrame:
        """Connections, one row each.

        Args:
            state: "open", "closed" (with ``stop`` and ``reason``) or "all".
            subs: True for each connection's subjects, "detail" for per-subscription stats.
            sort: server-side sort ("cid", "msgs_to", "bytes_to", "pending", "rtt", ...).
            limit: at most this many connections (None: all over HTTP, fetched in pages;
                through the system account at most 10,000 per server).
        """
        if state not in ("open", "closed", "all"):
            raise BadInputError(f"state={state!r} must be 'open', 'closed' or 'all'")
        frames = []
        total = 0
        for name, rows, data in self._pages("connz", "connections", limit, state=state,
                                             subs=subs, sort=sort, cid=cid, auth=auth,
                                             acc=account):
            frame = records(rows, CONNZ_FIRST, keep=frozenset())
            frames.append((name, frame if len(frame) else pd.DataFrame(columns=CONNZ_FIRST)))
            total += int(data.get("total", len(rows)))
        frame = self._finish(stack(frames))
        frame.attrs["total"] = total
        # display only: what is the same for every client is said once, above the table
        frame.attrs[FOLD] = ["kind", "type", "ip", "lang", "version", "account",
                             "tls_version", "tls_cipher_suite", "pending_bytes"]
        return frame

    def closed(self) -> pd.DataFrame:
        """Recently closed connections and why (the server keeps the last ~10k)."""
        return self.connz(state="closed")

    def slow_consumers(self) -> pd.DataFrame:
        """Closed connections the server dropped as slow consumers (reason says so)."""
        frame = self.closed()
        if not len(frame):
            return frame
        mask = frame["reason"].fillna("").astype(str).str.contains("Slow Consumer", case=False)
        out = frame[mask].reset_index(drop=True)
        out.attrs.update(frame.attrs)
        return out

    def subsz(self, test: str | None = None, *, subs: bool = True,
              account: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Subscriptions, one row each (``test=subject``: only those that match it).

        The routing-table statistics (num_subscriptions, cache hit rate, fanout) are in
        ``frame.attrs["stats"]``; ``subs=False`` returns them as a one-row frame instead.
        """
        if not subs and test is None:
            return _report(self._finish(stack([
                (n, records([{k: v for k, v in d.items() if k != "subscriptions_list"}]))
                for n, d in self._answers("subsz")])))
        cols = ["account", "subject", "qgroup", "sid", "msgs", "cid", "max"]
        frames = []
        stats: dict[str, Any] = {}
        for name, rows, data in self._pages("subsz", "subscriptions_list", limit, subs=True,
                                            test=test, acc=account):
            frame = pd.DataFrame(rows)
            for c in ("subject", "account", "cid"):
                if c not in frame.columns:
                    frame[c] = pd.Series(dtype=object)
            frames.append((name, frame[[c for c in cols if c in frame.columns]
                                       + [c for c in frame.columns if c not in cols]]))
            part = {k: v for k, v in data.items() if k != "subscriptions_list"}
            stats = part if name is None else {**stats, name: part}
        frame = self._finish(stack(frames))
        frame.attrs["stats"] = stats
        return frame

    def jsz(self, *, streams: bool = False, consumers: bool = False,
            account: str | None = None) -> pd.DataFrame:
        """JetStream usage, one row per server; ``streams=True``: one row per stream
        (replica) instead (``consumers=True`` adds each stream's consumers as a list).

        Raises:
            MonitorError: JetStream is not enabled (on any server).
        """
        answers = [(n, d) for n, d in self._answers(
            "jsz", accounts=streams or consumers or None, streams=streams or None,
            consumers=consumers or None, acc=account)
            if not d.get("disabled") and ("config" in d or "memory" in d)]
        if not answers:
            raise MonitorError(f"JetStream is not enabled on the server at {self.url} - start "
                               "nats-server with -js", self.url)
        if not (streams or consumers):
            return _report(self._finish(stack([
                (n, records([{k: v for k, v in d.items() if k != "account_details"}]))
                for n, d in answers])))
        first = ["account", "name", "created"]
        frames = []
        for name, data in answers:
            rows = [{"account": acc.get("name"), **st}
                    for acc in data.get("account_details") or []
                    for st in acc.get("stream_detail") or []]
            frame = records(rows, first, keep=frozenset({"config", "consumer_detail"}))
            frames.append((name, frame if len(frame) else pd.DataFrame(
                columns=[*first, "state.messages", "state.bytes"])))
        return self._finish(stack(frames))

    def healthz(self, *, js_enabled_only: bool = False, js_server_only: bool = False) -> Any:
        """The health check: over HTTP a dict, ``{"status": "ok", "ok": True, ...}`` or the
        error and HTTP status; through the system account a frame, one row per server.

        Note: ``js_enabled_only=True`` answers ok even without JetStream; use :meth:`jsz` to
        find out whether JetStream is on.
        """
        out = []
        for name, data in self._answers("healthz", **{
                "js-enabled-only": js_enabled_only or None,
                "js-server-only": js_server_only or None}):
            data.setdefault("http_status", data.get("status_code", 200))
            data["ok"] = data.get("status") == "ok"
            out.append((name, data))
        if len(out) == 1 and out[0][0] is None:
            return out[0][1]
        return self._finish(stack([(n, records([d], keep=frozenset({"errors"})))
                                   for n, d in out]))

    def routez(self, *, subs: bool = False) -> pd.DataFrame:
        """Cluster routes, one row each (empty without a cluster); ``remote_name`` counts
        the distinct peers (``num_routes`` counts pooled routes)."""
        first = ["rid", "remote_id", "remote_name", "did_solicit", "is_configured", "ip", "port",
                 "start", "last_activity", "rtt", "uptime", "idle", "pending_size", "in_msgs",
                 "out_msgs", "in_bytes", "out_bytes", "subscriptions"]
        frames, num = [], 0
        for name, data in self._answers("routez", subs=subs):
            frame = records(data.get("routes") or [], first, keep=frozenset())
            frames.append((name, frame if len(frame) else pd.DataFrame(columns=first)))
            num += int(data.get("num_routes", 0))
        frame = self._finish(stack(frames))
        frame.attrs["num_routes"] = num
        return frame

    def gatewayz(self, *, accounts: bool = False) -> pd.DataFrame:
        """Gateway connections (super-clusters), one row per gateway connection with its
        ``direction`` (outbound/inbound) and remote ``gateway`` name."""
        first = ["gateway", "direction", "configured", "connection.name", "connection.ip",
                 "connection.port", "connection.start", "connection.rtt"]
        frames = []
        for name, data in self._answers("gatewayz", accs=accounts):
            rows = [{"gateway": gw, "direction": "outbound", **info}
                    for gw, info in (data.get("outbound_gateways") or {}).items()]
            rows += [{"gateway": gw, "direction": "inbound", **info}
                     for gw, infos in (data.get("inbound_gateways") or {}).items()
                     for info in infos]
            frame = records(rows, first, keep=frozenset({"accounts"}))
            frames.append((name, frame if len(frame) else pd.DataFrame(columns=first)))
        return self._finish(stack(frames))

    def leafz(self, *, subs: bool = False) -> pd.DataFrame:
        """Leaf node connections, one row each (empty without leaf nodes)."""
        first = ["name", "is_spoke", "account", "ip", "port", "rtt", "in_msgs", "out_msgs",
                 "in_bytes", "out_bytes", "subscriptions"]
        frames = []
        for name, data in self._answers("leafz", subs=subs):
            frame = records(data.get("leafs") or [], first, keep=frozenset())
            frames.append((name, frame if len(frame) else pd.DataFrame(columns=first)))
        return self._finish(stack(frames))

    def accountz(self, account: str | None = None) -> pd.DataFrame:
        """Accounts, one row each with ``system`` marking the system account; with
        `account`, that account's details (one row, nested fields dotted)."""
        frames = []
        for name, data in self._answers("accountz", acc=account):
            if account is not None:
                detail = data.get("account_detail") or {}
                frames.append((name, records([detail], keep=frozenset(
                    {"exports", "imports", "jetstream_tiers", "mappings", "sublist_stats"}))))
                continue
            names = sorted(data.get("accounts") or [])
            frames.append((name, pd.DataFrame({
                "account": pd.Series(names, dtype="str"),
                "system": pd.Series([n == data.get("system_account") for n in names],
                                    dtype=bool)})))
        frame = self._finish(stack(frames))
        return _report(frame) if account is not None else frame

    def __repr__(self) -> str:
        return f"<natsbook.Monitor {self.url}>"


class SystemMonitor(Monitor):
    """Every server's monitoring through a system-account connection.

    Who should answer: the servers named in `expected`, every server that answered the
    discovery ping when this monitor was made (plus the route peers each one named), and
    every server that answered since. A known server that does not answer within the
    timeout is listed in ``frame.attrs["missing"]`` and warned about.

    Args:
        conn: a Connection authenticated as a user of the system account.
        timeout: seconds one request may take at most.
        stall: stop waiting this long after the last reply (a dead server costs this).
        expected: server names that must answer (e.g. the whole cluster's).
    """

    def __init__(self, conn: Link, *, timeout: float = 2.0, stall: float = 0.5,
                 expected: list[str] | None = None) -> None:
        self.conn = conn
        self.timeout = timeout
        self.stall = stall
        self.url = f"system account via {conn.connected_url}"
        self.expected = set(expected or ())
        found = gather(conn, None, timeout=timeout, stall=stall, expected=self.expected)
        self.known: set[str] = set(self.expected) | set(found.errors)
        for server, statsz in found.replies:
            self.known.add(str(server.get("name")))
            self.known.update(str(r["name"]) for r in statsz.get("routes") or []
                              if r.get("name"))
        self.last: Gathered = found

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        """Every server's raw answer to ``<endpoint>`` by server name (HTTP query parameter
        names, as for the HTTP monitor)."""
        return {str(n): d for n, d in self._answers(endpoint, **params)}

    def _answers(self, endpoint: str, **params: Any) -> list[tuple[str | None, dict[str, Any]]]:
        got = gather(self.conn, endpoint, sys_options(endpoint, params),
                     timeout=self.timeout, stall=self.stall, expected=self.known)
        self.known.update(str(s.get("name")) for s, _ in got.replies)
        self.known.update(got.errors)
        self.last = got
        if got.errors and not got.replies:
            raise MonitorError(f"{endpoint}: every server answered with an error: "
                               + "; ".join(f"{n}: {e}" for n, e in sorted(got.errors.items())),
                               self.url)
        return sorted(((str(s.get("name")), d) for s, d in got.replies),
                      key=lambda nd: nd[0] or "")

    def _pages(self, endpoint: str, key: str, limit: int | None, **params: Any
               ) -> list[tuple[str | None, list[dict[str, Any]], dict[str, Any]]]:
        answers = self._answers(endpoint, limit=limit or SYS_CONNZ_LIMIT, **params)
        return [(n, d.get(key) or [], d) for n, d in answers]

    def _finish(self, frame: pd.DataFrame) -> pd.DataFrame:
        got = self.last
        frame.attrs["servers"] = sorted({str(s.get("name")) for s, _ in got.replies})
        frame.attrs["missing"] = list(got.missing)
        frame.attrs["errors"] = dict(got.errors)
        if got.missing:
            warnings.warn(f"natsbook: {len(got.missing)} server(s) did not answer within "
                          f"{self.timeout:g}s: {', '.join(got.missing)} - down, partitioned "
                          "or slow (raise timeout=/stall=); they are missing from this "
                          "result", MissingServersWarning, stacklevel=3)
        return super()._finish(frame)

    def __repr__(self) -> str:
        return f"<natsbook.SystemMonitor {len(self.known)} servers via {self.conn.connected_url}>"


def _report(frame: pd.DataFrame) -> pd.DataFrame:
    """One server's record (varz, jsz, subsz stats) displays as a vertical report grouped by
    topic, like ``nats server info``; several servers' stay a table."""
    return mark(frame, REPORT) if len(frame) == 1 else frame


def _qs(value: Any) -> str:
    return "1" if value is True else str(value)


def monitor(url: Any = None, *, timeout: float | None = None, stall: float = 0.5,
            expected: list[str] | None = None) -> Monitor:
    """A handle on the servers' monitoring: one server over HTTP, or every server of the
    cluster / super-cluster through a system-account connection.

    Args:
        url: ``http://host:port`` (default ``http://127.0.0.1:8222``), anything with a
            ``monitor_url`` attribute (``natsbook.local_server()``), or a
            :class:`natsbook.Connection` of a system-account user.
        timeout: seconds per HTTP request (default 5), or per system request (default 2).
        stall: system requests only: stop waiting this long after the last reply.
        expected: system requests only: server names that must answer; the others are
            learnt (see :class:`SystemMonitor`).

    Raises:
        MonitorError: the connection is not a system-account user (nobody answers).
    """
    if isinstance(url, Link):
        return SystemMonitor(url, timeout=2.0 if timeout is None else timeout, stall=stall,
                             expected=expected)
    if expected is not None:
        raise BadInputError("expected= needs a system-account connection, not an HTTP URL")
    if url is None:
        url = DEFAULT_MONITOR_URL
    elif not isinstance(url, str):
        mu = getattr(url, "monitor_url", None)
        if not mu:
            raise BadInputError(f"{url!r} has no monitoring URL - start the server with "
                                "monitoring on, pass 'http://host:8222', or a system-account "
                                "Connection")
        url = mu
    return Monitor(url, timeout=5.0 if timeout is None else timeout)
