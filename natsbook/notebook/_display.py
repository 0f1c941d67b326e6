"""How natsbook's DataFrames look in a notebook (display only): one policy for all of them.

Every DataFrame natsbook returns stays lossless (nanosecond UTC times, every column, every
float, ``Timedelta`` durations); only its HTML in a notebook changes. The layer that makes a
frame tags it through ``DataFrame.attrs`` (which pandas carries through selections such as
``df[["time", "subject"]]`` and ``df.head()``): ``capture`` for message frames (captures,
stream history), ``table`` for every other table (monitoring, JetStream, KV, services, SQL
results, ``%nats_subs``), ``report`` for one record. An IPython ``text/html`` formatter for
DataFrames renders tagged frames from a display-only copy:

- times to the millisecond in message rows and in ``time`` columns (samples), other times
  (a connection's start, a stream's last message) to the second; the date and time zone
  said once in a note;
- durations for humans: ``47m 04s``, ``1h 02m 03s``, ``22.3 µs``, ``250 ms``;
- no cell or column name ever wraps (a table wider than the notebook scrolls in its own box);
- columns that are empty in every row (``None``, ``NaT``, ``""``, ``[]``, ``{}``; a metadata
  flag such as ``json_error`` when False everywhere) are left out, with a note naming them;
- floats in plain notation (no ``1.795952e+09``) with at most 3 decimals;
- counts with thousands separators, but never identifiers, ports and sequence numbers
  (``seq``, ``stream_seq``, ``sid``, ``cid``, ``port``, ...): ``12345``, not ``12,345``;
- all rows up to pandas' ``display.max_rows`` (60 by default) and all columns: pandas'
  ``max_columns`` never cuts a natsbook table;
- so that the simulator's telemetry and ``connz`` of a few dozen clients fit a 1400 px
  JupyterLab without horizontal scrolling.

One-row monitoring results (``varz``, ``jsz``, a single connection) are tagged ``report`` and
render as a vertical report grouped by topic, like ``nats server info``.
Untagged DataFrames keep pandas' own display.
"""

from __future__ import annotations

import html
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

# The tag a frame carries in ``DataFrame.attrs`` is set by the layer that makes the frame.
from ..capture import ATTR, CAPTURE, FOLD, REPORT, TABLE, mark

__all__ = ["REPORT", "TABLE", "ReportDict", "capture_html", "frame_display_html", "frame_html",
           "human_duration", "install", "is_id", "mark", "plural", "report_html"]

#: Metadata flags of a capture frame that count as empty when False in every row.
_METADATA_FLAGS = ("json_error",)

_CSS = """<style>
.nb-frame{font-size:12px;font-family:var(--jp-ui-font-family,sans-serif);
 font-variant-numeric:tabular-nums;max-width:100%;overflow-x:auto}
.nb-frame table{border-collapse:collapse;width:auto}
.nb-frame th,.nb-frame td{white-space:nowrap;padding:1px 3px;text-align:right;
 border-bottom:1px solid var(--jp-border-color2,#eee)}
.nb-frame thead th{background:var(--jp-layout-color2,#f3f3f3);
 vertical-align:bottom;line-height:1.2;font-size:11px;font-weight:600}
.nb-frame td{max-width:22em;overflow:hidden;text-overflow:ellipsis}
.nb-frame td.nb-h{max-width:8em}
.nb-frame tbody th{font-weight:normal;color:#888}
.nb-frame td.nb-l,.nb-frame th.nb-l{text-align:left}
.nb-frame td.nb-na{color:#aaa}
.nb-frame .nb-note{color:#666;font-family:var(--jp-ui-font-family,sans-serif);margin:2px 0 4px}
.nb-report{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:flex-start;font-size:12px}
.nb-report table{border-collapse:collapse}
.nb-report table tbody tr{background:none}
.nb-report caption{text-align:left;font-weight:600;padding:2px 0;white-space:nowrap;
 font-family:var(--jp-ui-font-family,sans-serif)}
.nb-report table.nb-kv th{text-align:left;font-weight:normal;color:#555;padding:0 10px 0 0;
 white-space:nowrap}
.nb-report table.nb-kv td{font-family:var(--jp-code-font-family,monospace);text-align:left;
 white-space:nowrap;padding:0;
 max-width:380px;overflow:hidden;text-overflow:ellipsis}
</style>"""


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 message``, ``2 messages``, ``1,000 msgs``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {many or word + 's'}"


def _is_empty_value(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, str | bytes | Mapping | list | tuple | np.ndarray):
        return len(v) == 0
    return False


def _is_empty(name: str, col: pd.Series) -> bool:
    """Nothing to show in any row (a table with no rows hides nothing)."""
    if not len(col):
        return False
    if pd.api.types.is_bool_dtype(col):
        return name in _METADATA_FLAGS and not bool(col.fillna(False).any())
    if col.dtype != object and not pd.api.types.is_string_dtype(col):
        return bool(col.isna().all())
    # the first value with something in it ends the scan (a big capture costs one look)
    return not any(not _is_empty_value(v) for v in col)


_EPOCH_NAMES = ("ts", "time", "timestamp", "epoch")


#: Numbers that name or order something (an id, a sequence number, a port), not amounts: shown
#: without thousands separators.
_ID_NAMES = frozenset({"seq", "sid", "cid", "id", "pid", "port", "revision", "sequence", "gen",
                       "generation", "client_id", "server_id"})
_ID_SUFFIXES = ("_seq", "_sid", "_cid", "_id", "_port", "_pid", "_revision")


def is_id(name: str) -> bool:
    """Whether a column or report key (dotted names by their last part) holds identifiers or
    sequence numbers rather than amounts."""
    base = str(name).rsplit(".", 1)[-1].lower()
    return base in _ID_NAMES or base.endswith(_ID_SUFFIXES)


def _is_epoch(name: str, col: pd.Series) -> bool:
    """A float column of epoch seconds (2001..2096) named like a clock."""
    base = name.rsplit(".", 1)[-1].lower()
    if not (base in _EPOCH_NAMES or base.endswith(("_ts", "_time"))):
        return False
    values = col.dropna()
    return not values.empty and bool(values.between(1e9, 4e9).all())


def _fmt_float(col: pd.Series, separators: bool = True) -> pd.Series:
    values = col.dropna()
    decimals = 0
    for d in (0, 1, 2, 3):
        decimals = d
        scaled = values * 10**d
        if ((scaled - scaled.round()).abs() < 1e-6 * scaled.abs().clip(lower=1)).all():
            break
    big = not values.empty and values.abs().max() >= 1e7  # epoch seconds: no separators
    fmt = f"{{:.{decimals}f}}" if big or not separators else f"{{:,.{decimals}f}}"
    return col.map(lambda v: "" if pd.isna(v) else fmt.format(v))


def _fmt_headers(value: Any) -> str:
    if not isinstance(value, Mapping) or not value:
        return ""
    return "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in value.items())


def _fmt_object(value: Any) -> str:
    """A cell of an object column: lists joined, mappings as ``k: v; ...``, NA as nothing."""
    if _is_empty_value(value):
        return ""
    if isinstance(value, Mapping):
        return _cut(_fmt_headers(value))
    if isinstance(value, list | tuple | np.ndarray):
        return _cut(", ".join(map(str, value)))
    if isinstance(value, pd.Timedelta):
        return human_duration(value)
    return _cut(value)


def _sig(x: float) -> str:
    """Three significant digits, no trailing zeros: 22.3, 1.5, 250, 2."""
    text = f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def human_duration(td: Any) -> str:
    """A duration as a person reads it: ``850 ns``, ``22.3 µs``, ``1.5 ms``, ``12.5 s``,
    ``47m 04s``, ``1h 02m 03s``, ``2d 03h 04m``; NaT as an empty string."""
    if td is None or td is pd.NaT or (isinstance(td, float) and math.isnan(td)):
        return ""
    ns = pd.Timedelta(td).value
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns == 0:
        return "0 s"
    if ns < 1_000:
        return f"{sign}{ns} ns"
    for scale, unit in ((1e3, "µs"), (1e6, "ms"), (1e9, "s")):
        value = ns / scale
        if value < 999.5 and (unit != "s" or value < 59.5):
            return f"{sign}{_sig(value)} {unit}"
    secs = round(ns / 1e9)
    days, secs = divmod(secs, 86400)
    hours, secs = divmod(secs, 3600)
    mins, secs = divmod(secs, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h {mins:02d}m"
    if hours:
        return f"{sign}{hours}h {mins:02d}m {secs:02d}s"
    return f"{sign}{mins}m {secs:02d}s"


def _time_strings(key: str, col: pd.Series, precise: bool) -> tuple[pd.Series, str | None]:
    """A time column's cells (milliseconds when `precise`, else seconds) and the note that
    says the date and zone once."""
    stamps = col.dropna()
    clock, cut = ("%H:%M:%S.%f", 3) if precise else ("%H:%M:%S", 0)
    days = {str(d) for d in stamps.dt.date.unique()} if not stamps.empty else set()
    tz = str(getattr(col.dt, "tz", "") or "")
    fmt = clock if len(days) == 1 else f"%Y-%m-%d {clock}"
    text = col.dt.strftime(fmt)
    if cut:
        text = text.str[:-cut]
    note = (f"{html.escape(key)}: {days.pop()} {tz}".rstrip() if len(days) == 1
            else f"{html.escape(key)}: {tz}" if tz else None)
    return text.fillna(""), note


def _display_copy(df: pd.DataFrame, hidden: list[str], precise: bool,
                  folded: Mapping[str, str]) -> tuple[pd.DataFrame, list[str], set[str]]:
    """Strings to show, notes to print above them, and the left-aligned columns."""
    notes: list[str] = []
    out = pd.DataFrame(index=df.index)
    left: set[str] = set()
    for name in df.columns:
        if name in hidden or name in folded:
            continue
        col = df[name]
        key = str(name)
        if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(col):
            # a `time` column is when a message arrived or a sample was taken: milliseconds
            out[key], note = _time_strings(key, col, precise or key == "time")
            if note:
                notes.append(note)
        elif pd.api.types.is_timedelta64_dtype(col):
            out[key] = col.map(human_duration)
        elif pd.api.types.is_bool_dtype(col):
            out[key] = col.map(lambda v: "" if v is None or v is pd.NA else str(bool(v)))
        elif pd.api.types.is_float_dtype(col) and _is_epoch(key, col):
            # Epoch seconds (a device's own clock): shown as a UTC time, like `time`.
            stamps = pd.to_datetime(col, unit="s", utc=True)
            out[key] = stamps.dt.strftime("%H:%M:%S.%f").str[:-3].fillna("")
            notes.append(f"{html.escape(key)}: epoch seconds, shown as UTC time")
        elif pd.api.types.is_float_dtype(col):
            out[key] = _fmt_float(col, separators=not is_id(key))
        elif pd.api.types.is_integer_dtype(col):
            spec = "" if is_id(key) else ","
            out[key] = col.map(lambda v, spec=spec: "" if pd.isna(v) else f"{v:{spec}}")
        elif key == "headers":
            out[key] = col.map(_fmt_headers)
            left.add(key)
        else:
            out[key] = col.map(_fmt_object)
            left.add(key)
    if hidden:
        notes.append(f"{', '.join(hidden)}: empty in every row, not shown (the DataFrame "
                     "has them)")
    return out, notes, left


def _cut(value: Any, limit: int = 60) -> str:
    text = value.hex(" ") if isinstance(value, bytes | bytearray) else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _cell_class(column: str, left: set[str]) -> str:
    if column == "headers":
        return "nb-l nb-h"
    return "nb-l" if column in left else ""


def _title(value: str) -> str:
    """A tooltip with the whole text for cells the CSS may cut with an ellipsis."""
    return f' title="{html.escape(value)}"' if len(value) > 20 else ""


def _folded(df: pd.DataFrame, hidden: list[str]) -> dict[str, str]:
    """Columns the frame's maker allows to fold (``attrs[FOLD]``, e.g. connz's ``kind``,
    ``lang``, ``version``, a stream's ``storage``) that hold one value in every row: said
    once in the note instead of repeated down the table."""
    out: dict[str, str] = {}
    if not len(df):
        return out
    for name in df.attrs.get(FOLD) or ():
        if name in df.columns and name not in hidden:
            col = df[name]
            try:
                values = col.dropna().unique()
            except TypeError:  # lists, dicts: not folded
                continue
            if len(values) != 1 or not col.notna().all():
                continue
            value = values[0]
            if isinstance(value, bool | np.bool_ | str):
                out[str(name)] = _cut(value)
            elif isinstance(value, int | np.integer):
                out[str(name)] = f"{value}" if is_id(str(name)) else f"{value:,}"
            elif isinstance(value, pd.Timedelta | np.timedelta64):
                out[str(name)] = human_duration(value)
    return out


def frame_html(df: pd.DataFrame, *, precise: bool | None = None) -> str:
    """The readable HTML of a natsbook table (head and tail when it is long).

    Args:
        df: the frame (not changed).
        precise: every time to the millisecond (default: for message rows, the ``capture``
            tag); otherwise ``time`` columns (samples) to the millisecond and other times
            (connection starts, stream and KV times) to the second.
    """
    if precise is None:
        precise = df.attrs.get(ATTR) == CAPTURE
    max_rows = pd.get_option("display.max_rows") or len(df)
    shown = df
    cut = 0
    if len(df) > max_rows:
        half = max(1, (pd.get_option("display.min_rows") or 10) // 2)
        shown = pd.concat([df.iloc[:half], df.iloc[-half:]])
        cut = half
    hidden = [str(c) for c in df.columns if _is_empty(str(c), df[c])]
    folded = _folded(df, hidden)
    body, notes, left = _display_copy(shown, hidden, precise, folded)
    if folded:
        notes.append("in every row: " + ", ".join(
            f"{html.escape(k)} {html.escape(v)}" for k, v in folded.items()))
    cols = list(body.columns)
    corner = html.escape(str(df.index.name)) if df.index.name is not None else ""
    head = "".join(f'<th class="{"nb-l" if c in left else ""}">{html.escape(c)}</th>'
                   for c in cols)
    head = f"<th>{corner}</th>{head}"
    rows = []
    for i, (idx, rec) in enumerate(zip(body.index, body.itertuples(index=False), strict=True)):
        if cut and i == cut:
            rows.append(f'<tr><td class="nb-na">…</td>{"<td>…</td>" * len(cols)}</tr>')
        cells = "".join(f'<td class="{_cell_class(c, left)}"'
                        f'{_title(v)}>{html.escape(v)}</td>'
                        for c, v in zip(cols, rec, strict=True))
        rows.append(f'<tr><th>{html.escape(str(idx))}</th>{cells}</tr>')
    shape = f"{plural(len(df), 'row')} x {plural(len(df.columns), 'column')}"
    note = " · ".join([shape, *notes])
    return (f'{_CSS}<div class="nb-frame"><div class="nb-note">{note}</div>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</div>")


#: The name the display had when only capture frames used it.
capture_html = frame_html


# -- one-row reports ----------------------------------------------------------------------
_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Server", ("server_id", "server_name", "version", "proto", "git_commit", "go", "host",
                "port", "http_host", "http_port", "https_port", "http_base_path", "start",
                "now", "uptime", "config_load_time", "config_digest", "system_account",
                "status", "http_status", "ok", "cid", "kind", "type", "ip", "name", "lang",
                "account", "rtt", "idle")),
    ("Connections", ("connections", "total_connections", "subscriptions", "routes",
                     "remotes", "leafnodes", "slow_consumers", "stale_connections",
                     "stalled_clients", "pending_bytes", "subscriptions_list")),
    ("Traffic", ("in_msgs", "out_msgs", "in_bytes", "out_bytes", "in_client_msgs",
                 "out_client_msgs", "in_client_bytes", "out_client_bytes")),
    ("Limits", ("max_connections", "max_payload", "max_pending", "max_control_line",
                "ping_interval", "ping_max", "auth_timeout", "tls_timeout", "write_deadline")),
    ("Resources", ("mem", "cpu", "cores", "gomaxprocs")),
    # jsz
    ("JetStream usage", ("memory", "storage", "reserved_memory", "reserved_storage",
                         "accounts", "ha_assets", "streams", "consumers", "messages", "bytes",
                         "total")),
)
#: Section titles of dotted keys whose first part is not a plain word.
_HEADS = {"jetstream": "JetStream", "api": "API", "config": "Config"}


def _group_of(key: str) -> str:
    if "." in key:
        head = key.split(".", 1)[0]
        return _HEADS.get(head) or head.replace("_", " ").capitalize()
    for title, keys in _GROUPS:
        if key in keys:
            return title
    return "Other"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def _fmt_value(key: str, value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    if isinstance(value, pd.Timedelta):
        return human_duration(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if any(w in key for w in ("bytes", "mem", "memory", "storage", "max_payload",
                                  "max_pending")) and value >= 1024:
            return f"{_fmt_bytes(float(value))} ({value:,})"
        if is_id(key):
            return f"{value}"
        return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    if isinstance(value, Mapping | list) and not value:
        return "-"
    return str(value)


def report_html(data: Mapping[str, Any] | pd.DataFrame) -> str:
    """A vertical report of one record, grouped by topic (``nats server info`` style)."""
    record: Mapping[Any, Any] = (data.iloc[0].to_dict() if isinstance(data, pd.DataFrame)
                                 else data)
    groups: dict[str, list[tuple[str, str]]] = {}
    for key, value in record.items():
        k = str(key)
        title = _group_of(k)
        label = k.split(".", 1)[1] if "." in k else k
        groups.setdefault(title, []).append((label, _fmt_value(k, value)))
    order = [t for t, _ in _GROUPS]
    titles = sorted(groups, key=lambda t: (order.index(t) if t in order else len(order),
                                           t == "Other"))
    parts = []
    for title in titles:
        rows = "".join(f"<tr><th>{html.escape(k)}</th>"
                       f'<td title="{html.escape(v)}">{html.escape(v)}</td></tr>'
                       for k, v in groups[title])
        parts.append(f'<table class="nb-kv"><caption>{html.escape(title)}</caption>{rows}</table>')
    return f'{_CSS}<div class="nb-report">{"".join(parts)}</div>'


class ReportDict(dict[str, Any]):
    """A dict (e.g. ``healthz``) that displays as a vertical report in a notebook."""

    def _repr_html_(self) -> str:
        return report_html(self)


def frame_display_html(df: pd.DataFrame) -> str:
    """The HTML natsbook shows for `df`: its tag's display, else pandas' own."""
    return _frame_html(df) or ""


def _frame_html(df: pd.DataFrame) -> str | None:
    kind = df.attrs.get(ATTR)
    try:
        # pandas carries attrs into derived frames (groupby, describe, ...): only what still
        # looks like messages gets the capture display, the rest keeps pandas' own.
        flat = df.index.nlevels == 1 and df.columns.nlevels == 1
        if kind == CAPTURE and ("subject" in df.columns or "time" in df.columns) and flat:
            return frame_html(df)
        if kind == TABLE and flat:
            return frame_html(df)
        if kind == REPORT and len(df) == 1:
            return report_html(df)
    except Exception:  # a display must never break the notebook: fall back to pandas
        pass
    return df._repr_html_()  # type: ignore[operator]


def install(ip: Any = None) -> bool:
    """Register the DataFrame HTML formatter in IPython (idempotent). False outside IPython."""
    if ip is None:
        ipython = sys.modules.get("IPython")  # not imported: not running in IPython
        ip = ipython.get_ipython() if ipython is not None else None
    if ip is None or getattr(ip, "display_formatter", None) is None:
        return False
    ip.display_formatter.formatters["text/html"].for_type(pd.DataFrame, _frame_html)
    return True
