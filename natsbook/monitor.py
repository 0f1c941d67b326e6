"""The server's HTTP monitoring endpoints as DataFrames.

>>> mon = natsbook.monitor("http://127.0.0.1:8222")   # or natsbook.monitor(local_server)
>>> mon.varz()                     # one row: version, uptime, connections, in/out msgs...
>>> mon.connz(state="closed")      # closed connections with their close *reason*

Units are converted once, here: times become UTC timestamps, durations ``pd.Timedelta`` whether
the server wrote them as nanoseconds (``ping_interval``, ``write_deadline``), seconds
(``auth_timeout``) or Go strings (``"881µs"``, ``"1h2m3s"``, ``"2d3h"``); byte counts stay
integers in bytes. The only place a server-side slow-consumer kick leaves a trace is the close
reason of ``/connz?state=closed``: :meth:`Monitor.slow_consumers` lists those.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pandas as pd

from .errors import BadInputError, MonitorError

__all__ = ["Monitor", "MonitorError", "monitor", "parse_duration"]

DEFAULT_MONITOR_URL = "http://127.0.0.1:8222"
_DUR_RE = re.compile(r"(\d+(?:\.\d+)?)(y|d|h|ms|m|s|µs|μs|us|ns)")
_UNIT_NS = {"y": 365 * 86400e9, "d": 86400e9, "h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6,
            "µs": 1e3, "μs": 1e3, "us": 1e3, "ns": 1.0}
#: Fields (last dotted component) the server writes as Go duration strings.
_DUR_STR = frozenset({"rtt", "uptime", "idle"})
#: Fields written as integer nanoseconds.
_DUR_NS = frozenset({"ping_interval", "write_deadline", "sync_interval", "lame_duck_duration",
                     "lame_duck_grace_period", "max_age", "duplicate_window", "ack_wait",
                     "inactive_threshold", "idle_heartbeat", "reconnect_wait"})
#: Fields written as (possibly fractional) seconds.
_DUR_S = frozenset({"auth_timeout", "tls_timeout", "timeout"})
_TIMES = frozenset({"start", "now", "last_activity", "stop", "config_load_time", "created",
                    "first_ts", "last_ts", "ts", "last_active"})
_CONNZ_FIRST = ["cid", "kind", "type", "name", "ip", "port", "start", "last_activity", "stop",
                "reason", "rtt", "uptime", "idle", "pending_bytes", "in_msgs", "out_msgs",
                "in_bytes", "out_bytes", "subscriptions", "lang", "version", "account"]


def parse_duration(text: Any) -> pd.Timedelta | Any:
    """A Go/NATS duration string ("881µs", "1h2m3.5s", "2d3h") as a Timedelta.

    Values that are not such strings come back unchanged.
    """
    if not isinstance(text, str):
        return text
    s = text.strip()
    if s in ("0", ""):
        return pd.Timedelta(0)
    neg = s.startswith("-")
    s = s.lstrip("-+")
    pos, total = 0, 0.0
    for m in _DUR_RE.finditer(s):
        if m.start() != pos:
            return text
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        return text
    return pd.Timedelta(round(-total if neg else total), "ns")


def _flatten(obj: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None,
             keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    out = {} if out is None else out
    for k, v in obj.items():
        if isinstance(v, dict) and v and k not in keep:
            _flatten(v, f"{prefix}{k}.", out, keep)
        else:
            out[f"{prefix}{k}"] = v
    return out


def _convert(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert columns to proper units by their (last dotted) name."""
    for col in frame.columns:
        leaf = str(col).rsplit(".", 1)[-1]
        series = frame[col]
        if series.dtype == object and series.map(lambda v: isinstance(v, dict | list)).any():
            continue
        if leaf in _TIMES:
            frame[col] = pd.to_datetime(series.where(~series.astype(str).str.startswith(
                "0001-01-01"), None), utc=True, errors="coerce", format="ISO8601")
        elif leaf in _DUR_STR:
            frame[col] = pd.to_timedelta(series.map(parse_duration), errors="coerce")
        elif leaf in _DUR_NS and pd.api.types.is_numeric_dtype(series):
            frame[col] = pd.to_timedelta(series, unit="ns")
        elif leaf in _DUR_S and pd.api.types.is_numeric_dtype(series):
            frame[col] = pd.to_timedelta(series, unit="s")
    return frame


def _records(rows: list[dict[str, Any]], first: list[str] | None = None,
             keep: frozenset[str] = frozenset()) -> pd.DataFrame:
    flat = [_flatten(r, keep=keep) for r in rows]
    frame = pd.DataFrame(flat)
    if first:
        for c in first:
            if c not in frame.columns and c in ("stop", "reason"):
                frame[c] = None
        order = [c for c in first if c in frame.columns]
        frame = frame[order + [c for c in frame.columns if c not in order]]
    return _convert(frame)


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

    def varz(self) -> pd.DataFrame:
        """General server information and counters, one row (nested fields dotted)."""
        return _records([self.get("varz")], keep=frozenset({"http_req_stats", "tags",
                                                            "feature_flags"}))

    def connz(self, state: str = "open", *, subs: bool | str = False, sort: str | None = None,
              limit: int | None = None, cid: int | None = None, auth: bool = False,
              account: str | None = None) -> pd.DataFrame:
        """Connections, one row each.

        Args:
            state: "open", "closed" (with ``stop`` and ``reason``) or "all".
            subs: True for each connection's subjects, "detail" for per-subscription stats.
            sort: server-side sort ("cid", "msgs_to", "bytes_to", "pending", "rtt", ...).
            limit: at most this many connections (None: all, fetched in pages).
        """
        if state not in ("open", "closed", "all"):
            raise BadInputError(f"state={state!r} must be 'open', 'closed' or 'all'")
        rows: list[dict[str, Any]] = []
        total = None
        while True:
            page_limit = 1024 if limit is None else min(1024, limit - len(rows))
            data = self.get("connz", state=state, subs=subs, sort=sort, cid=cid, auth=auth,
                            acc=account, limit=page_limit, offset=len(rows))
            got = data.get("connections") or []
            rows.extend(got)
            total = data.get("total", len(rows))
            if not got or len(rows) >= total or (limit is not None and len(rows) >= limit):
                break
        frame = _records(rows, _CONNZ_FIRST, keep=frozenset())
        if not len(frame):
            frame = pd.DataFrame(columns=_CONNZ_FIRST)
        frame.attrs["total"] = total
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
        return frame[mask].reset_index(drop=True)

    def subsz(self, test: str | None = None, *, subs: bool = True,
              account: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Subscriptions, one row each (``test=subject``: only those that match it).

        The routing-table statistics (num_subscriptions, cache hit rate, fanout) are in
        ``frame.attrs["stats"]``; ``subs=False`` returns them as a one-row frame instead.
        """
        if not subs and test is None:
            data = self.get("subsz")
            return _records([{k: v for k, v in data.items() if k != "subscriptions_list"}])
        rows: list[dict[str, Any]] = []
        stats: dict[str, Any] = {}
        while True:
            page_limit = 1024 if limit is None else min(1024, limit - len(rows))
            data = self.get("subsz", subs=True, test=test, acc=account, limit=page_limit,
                            offset=len(rows))
            got = data.get("subscriptions_list") or []
            rows.extend(got)
            stats = {k: v for k, v in data.items() if k != "subscriptions_list"}
            if not got or len(rows) >= data.get("total", 0) or (
                    limit is not None and len(rows) >= limit):
                break
        cols = ["account", "subject", "qgroup", "sid", "msgs", "cid", "max"]
        frame = pd.DataFrame(rows)
        for c in ("subject", "account", "cid"):
            if c not in frame.columns:
                frame[c] = pd.Series(dtype=object)
        frame = frame[[c for c in cols if c in frame.columns]
                      + [c for c in frame.columns if c not in cols]]
        frame.attrs["stats"] = stats
        return frame

    def jsz(self, *, streams: bool = False, consumers: bool = False,
            account: str | None = None) -> pd.DataFrame:
        """JetStream usage, one row; ``streams=True``: one row per stream instead
        (``consumers=True`` adds each stream's consumers as a list).

        Raises:
            MonitorError: JetStream is not enabled on this server.
        """
        data = self.get("jsz", accounts=streams or consumers or None, streams=streams or None,
                        consumers=consumers or None, acc=account)
        if data.get("disabled") or ("config" not in data and "memory" not in data):
            raise MonitorError(f"JetStream is not enabled on the server at {self.url} - start "
                               "nats-server with -js", self.url)
        if not (streams or consumers):
            summary = {k: v for k, v in data.items() if k != "account_details"}
            return _records([summary])
        rows: list[dict[str, Any]] = []
        for acc in data.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                row = {"account": acc.get("name"), **st}
                rows.append(row)
        frame = _records(rows, ["account", "name", "created"],
                         keep=frozenset({"config", "consumer_detail"}))
        if not len(frame):
            frame = pd.DataFrame(columns=["account", "name", "created", "state.messages",
                                          "state.bytes"])
        return frame

    def healthz(self, *, js_enabled_only: bool = False, js_server_only: bool = False) -> dict[
            str, Any]:
        """The health check as a dict: ``{"status": "ok"}`` or the error and HTTP status.

        Note: ``js_enabled_only=True`` answers ok even without JetStream; use :meth:`jsz` to
        find out whether JetStream is on.
        """
        data = self.get("healthz", **{"js-enabled-only": js_enabled_only or None,
                                      "js-server-only": js_server_only or None})
        data.setdefault("http_status", 200)
        data["ok"] = data.get("status") == "ok"
        return data

    def routez(self, *, subs: bool = False) -> pd.DataFrame:
        """Cluster routes, one row each (empty without a cluster); ``remote_name`` counts
        the distinct peers (``num_routes`` counts pooled routes)."""
        data = self.get("routez", subs=subs)
        rows = data.get("routes") or []
        first = ["rid", "remote_id", "remote_name", "did_solicit", "is_configured", "ip", "port",
                 "start", "last_activity", "rtt", "uptime", "idle", "pending_size", "in_msgs",
                 "out_msgs", "in_bytes", "out_bytes", "subscriptions"]
        frame = _records(rows, first, keep=frozenset())
        if not len(frame):
            frame = pd.DataFrame(columns=first)
        frame.attrs["num_routes"] = data.get("num_routes", 0)
        return frame

    def __repr__(self) -> str:
        return f"<natsbook.Monitor {self.url}>"


def _qs(value: Any) -> str:
    return "1" if value is True else str(value)


def monitor(url: Any = None, *, timeout: float = 5.0) -> Monitor:
    """A handle on a server's monitoring endpoint.

    Args:
        url: ``http://host:port`` (default ``http://127.0.0.1:8222``) or anything with a
            ``monitor_url`` attribute, such as ``natsbook.local_server()``.
        timeout: seconds per HTTP request.
    """
    if url is None:
        url = DEFAULT_MONITOR_URL
    elif not isinstance(url, str):
        mu = getattr(url, "monitor_url", None)
        if not mu:
            raise BadInputError(f"{url!r} has no monitoring URL - start the server with "
                                "monitoring on, or pass 'http://host:8222'")
        url = mu
    return Monitor(url, timeout=timeout)
