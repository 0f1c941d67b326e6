"""Monitoring answers -> DataFrames, with no I/O: the unit conversions shared by the HTTP
and the system-account transports of :mod:`natsbook.ops`.

Times become UTC timestamps, durations ``pd.Timedelta`` whether the server wrote them as
nanoseconds (``ping_interval``), seconds (``auth_timeout``) or Go strings (``"881µs"``,
``"1h2m3s"``, ``"2d3h"``); byte counts stay integers in bytes.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

__all__ = ["CONNZ_FIRST", "parse_duration", "records", "stack"]

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
CONNZ_FIRST = ["cid", "kind", "type", "name", "ip", "port", "start", "last_activity", "stop",
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


def records(rows: list[dict[str, Any]], first: list[str] | None = None,
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


def stack(frames: list[tuple[str | None, pd.DataFrame]]) -> pd.DataFrame:
    """One frame from per-server frames: a ``server_name`` column first (when the answers
    came from named servers), rows in server order."""
    if len(frames) == 1 and frames[0][0] is None:
        return frames[0][1]
    parts = []
    for name, frame in frames:
        # varz/connz name their server too: the reply's name goes first, once.
        frame = frame.drop(columns="server_name", errors="ignore")
        frame.insert(0, "server_name", pd.Series([name] * len(frame), dtype="str",
                                                 index=frame.index))
        parts.append(frame)
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        cols = ["server_name"] + [c for c in (parts[0].columns if parts else [])
                                  if c != "server_name"]
        return pd.DataFrame(columns=cols)
    return pd.concat(nonempty, ignore_index=True)
