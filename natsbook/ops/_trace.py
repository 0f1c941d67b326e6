"""Message tracing (ADR-41, nats-server 2.11+): where one message goes, hop by hop.

A message published with the ``Nats-Trace-Dest: <subject>`` header makes every server it
passes through send one *trace event* (JSON) to that subject: the server, the request's
headers and size, how many servers it forwarded to (``hops``), and a list of events - the
ingress (``in``), subject mappings (``sm``), stream exports (``se``), service imports
(``si``), JetStream (``js``: the stream that stored it) and one egress (``eg``) per
subscriber, route, gateway or leaf node it went out to. With ``Nats-Trace-Only: true`` the
servers trace the message without delivering it (nor storing it in a stream).

:func:`trace` publishes one message that way to an internal inbox and collects the events of
every server until as many arrived as the servers' ``hops`` counts announce, then turns them
into one row per event (:func:`trace_rows`). :func:`trace_subjects` traces every distinct
subject of a captured frame (trace-only) and summarises each: which streams store it, which
subscribers and servers it reaches.

A malformed event (not JSON, not the ADR's shape) is a row with ``malformed=True`` and the
reason in ``error``, never an exception.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from ..errors import BadInputError, Timeout
from ..wire._protocol import parse_headers

if TYPE_CHECKING:
    from ..core import Link
    from ..wire._protocol import RawMsg

__all__ = [
    "EDGE_COLUMNS",
    "KINDS",
    "LINKS",
    "SUBJECT_COLUMNS",
    "TRACE_COLUMNS",
    "trace",
    "trace_edges",
    "trace_rows",
    "trace_subjects",
]

TRACE_DEST = "Nats-Trace-Dest"
TRACE_ONLY = "Nats-Trace-Only"
TRACE_HOP = "Nats-Trace-Hop"
#: The event types of ADR-41, spelled out.
KINDS = {"in": "ingress", "sm": "subject_mapping", "se": "stream_export",
         "si": "service_import", "js": "jetstream", "eg": "egress"}
#: The connection kinds of an ingress or egress (nats-server's client kinds).
LINKS = {0: "client", 1: "route", 2: "gateway", 3: "system", 4: "leafnode", 5: "jetstream",
         6: "account"}
#: Columns of :func:`trace`, in order.
TRACE_COLUMNS = ["hop", "server", "cluster", "kind", "link", "account", "subject", "stream",
                 "to", "name", "cid", "next_hop", "queue", "error", "time", "offset_ms",
                 "malformed"]
#: Columns of :func:`trace_subjects`, in order.
SUBJECT_COLUMNS = ["subject", "messages", "streams", "subscribers", "servers", "accounts",
                   "errors", "stored_twice", "reaches_no_one", "complete"]
#: After the first event, stop waiting once none came for this long and the hop counts
#: are unknown (a malformed event).
STALL = 0.5


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def _event_rows(body: Any) -> tuple[list[dict[str, Any]], str, int]:
    """The rows of one server's trace event, its hop id and the hops it announces."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValueError("not a trace event: no 'events' list")
    server = _dict(body.get("server"))
    header = _dict(_dict(body.get("request")).get("header"))
    hop_values = header.get(TRACE_HOP) or []
    hop = str(hop_values[0] if isinstance(hop_values, list) and hop_values else hop_values or "")
    hops = body.get("hops", 0)
    if not isinstance(hops, int) or isinstance(hops, bool) or hops < 0:
        raise ValueError(f"bad 'hops' {hops!r}")
    rows = []
    for event in body["events"]:
        row: dict[str, Any] = {
            "hop": hop, "server": _text(server.get("name") or server.get("id")),
            "cluster": _text(server.get("cluster")), "malformed": False}
        if not isinstance(event, dict) or event.get("type") not in KINDS:
            kind = event.get("type") if isinstance(event, dict) else type(event).__name__
            row.update(kind=None, malformed=True, error=f"unknown trace event {kind!r}")
            rows.append(row)
            continue
        typ = event["type"]
        row["kind"] = KINDS[typ]
        row["error"] = _text(event.get("error"))
        # a time that is not text, a cid that is not an int64: NaT / NA, as unparsable ones
        ts, cid = event.get("ts"), event.get("cid")
        row["time"] = ts if isinstance(ts, str) else None
        if typ in ("in", "eg"):
            link = event.get("kind")
            row["link"] = LINKS.get(link, f"kind {link}") if link is not None else None
            row["cid"] = cid if _int64(cid) else None
            row["name"] = _text(event.get("name"))
            row["account"] = _text(event.get("acc"))
            if typ == "in":
                row["subject"] = _text(event.get("subj"))
            else:
                row["subject"] = _text(event.get("sub"))  # the subscription's subject
                row["queue"] = _text(event.get("queue"))
                row["next_hop"] = _text(event.get("hop"))
        elif typ == "sm":
            row["to"] = _text(event.get("to"))
        elif typ == "se":
            row["account"] = _text(event.get("acc"))
            row["to"] = _text(event.get("to"))
        elif typ == "si":
            row["account"] = _text(event.get("acc"))
            row["subject"] = _text(event.get("from"))
            row["to"] = _text(event.get("to"))
        else:  # js
            row["stream"] = _text(event.get("stream"))
            row["subject"] = _text(event.get("subject"))
            if event.get("nointerest"):
                row["error"] = row["error"] or "no interest (nothing stored)"
        rows.append(row)
    # the ingress names the account the later events of this server happen in (an event
    # names one only where it changes: an export, an import, an egress to another account)
    account = next((r.get("account") for r in rows if r.get("kind") == "ingress"), None)
    for r in rows:
        if r.get("account") is None and r.get("kind") is not None:
            r["account"] = account
    return rows, hop, hops


def _body(item: bytes | tuple[bytes | None, bytes]) -> bytes:
    """The JSON of one trace event: a payload, or a ``(header block, payload)`` pair whose
    ``Content-Encoding`` (the server compresses events when the traced message asked with
    ``Accept-Encoding``) is undone for gzip."""
    if not isinstance(item, tuple):
        return bytes(item)
    block, data = item
    encoding = ""
    if block:
        for key, value in parse_headers(block)[2]:
            if key.lower() == "content-encoding":
                encoding = value.strip().lower()
    if not encoding:
        return bytes(data)
    if encoding == "gzip":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"gzip-compressed event that does not decompress: {exc}") from None
    raise ValueError(f"event compressed with {encoding!r}, which natsbook does not decode - "
                     "trace with 'Accept-Encoding: gzip' or without Accept-Encoding")


def trace_rows(payloads: Iterable[bytes | tuple[bytes | None, bytes]]
               ) -> tuple[pd.DataFrame, int]:
    """One row per event of the trace events `payloads` (the JSON bodies servers sent, or
    ``(header block, body)`` pairs, gzip-compressed bodies included) and the number of
    events the trace needs: every server whose event arrived, and every hop an arrived event
    announces (``hops`` children each; the origin's own event, hop ``""``, always), so the
    count is only reached once the whole tree is in, in whatever order events arrive.

    Rows are ordered by hop (the origin server first) and time; ``offset_ms`` is each
    event's time since the earliest one. A payload that is not a trace event is one row
    with ``malformed=True`` and the reason in ``error``.
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    announces: dict[str, int] = {}  # hop id -> how many hops its server announced
    for item in payloads:
        raw = item[1] if isinstance(item, tuple) else item
        try:
            body = orjson.loads(_body(item))
            got, hop, hops = _event_rows(body)
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
            rows.append({"malformed": True,
                         "error": f"malformed trace event: {exc} ({bytes(raw)[:80]!r})"})
            continue
        seen.add(hop)
        announces[hop] = max(hops, announces.get(hop, 0))
        rows.extend(got)
    frame = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    frame["cid"] = pd.to_numeric(frame["cid"], errors="coerce").astype("Int64")
    frame["malformed"] = frame["malformed"].astype(object).where(
        frame["malformed"].notna(), True).astype(bool)
    first = frame["time"].min()
    frame["offset_ms"] = (frame["time"] - first).dt.total_seconds() * 1000.0
    depth = frame["hop"].astype(object).map(
        lambda h: (h.count(".") + 1, h) if isinstance(h, str) and h else (0, ""))
    frame = frame.assign(_depth=depth).sort_values(["_depth", "time"], kind="stable")
    frame = frame.drop(columns="_depth").reset_index(drop=True)
    for column in ("hop", "server", "cluster", "kind", "link", "account", "subject", "stream",
                   "to", "name", "next_hop", "queue", "error"):
        frame[column] = frame[column].astype("string")
    return frame, len(seen) + _missing(seen, announces)


def _missing(seen: set[str], announces: dict[str, int]) -> int:
    """How many events are announced but not in: the origin's (hop ``""``) until it came,
    and each announced child hop (``1``, ``1.2``...) not seen. Counted, never listed: a
    hostile server may announce any number of hops."""
    kids: dict[str, set[int]] = {}
    for hop in seen:
        if hop:
            parent, _, last = hop.rpartition(".")
            if last.isdigit():
                kids.setdefault(parent, set()).add(int(last))
    missing = 0 if "" in seen else 1
    for hop, n in announces.items():
        missing += n - sum(1 for i in kids.get(hop, ()) if 1 <= i <= n)
    return missing


def trace(conn: Link, subject: str, payload: Any = b"",
          headers: Mapping[str, Any] | None = None, *, deliver: bool = True,
          timeout: float = 2.0) -> pd.DataFrame:
    """Publish one traced message on `subject` and return its path, one row per event.

    Columns: ``hop`` (``""`` on the server the message entered, then ``"1"``, ``"1.2"`` ...
    as ``Nats-Trace-Hop`` numbers the servers it was forwarded to), ``server``, ``cluster``,
    ``kind`` (``ingress``, ``subject_mapping``, ``stream_export``, ``service_import``,
    ``jetstream``, ``egress``), ``link`` (what the message came in from or went out to:
    ``client``, ``route``, ``gateway``, ``leafnode``...), ``account``, ``subject`` (the
    ingress subject, the egress subscription's subject, the subject a stream stored),
    ``stream``, ``to`` (a mapping's or export's destination), ``name`` (the receiving or
    sending client's name, or the remote server's name for a route/gateway/leaf), ``cid``,
    ``next_hop`` (an egress to another server: the hop it starts), ``queue``, ``error``,
    ``time`` (the server's time of the event), ``offset_ms`` (since the first event), and
    ``malformed``.

    ``deliver=False`` adds ``Nats-Trace-Only: true``: the servers trace the message without
    delivering it to anyone or storing it. The call waits until every server the events
    announce has reported, or `timeout` seconds; ``frame.attrs`` holds ``expected`` and
    ``received`` event counts and ``complete``.

    Raises:
        BadInputError: a wildcard subject or a bad header (nothing was sent).
        Timeout: no trace event at all within `timeout` (a server older than 2.11, or the
            account's tracing is disabled).
    """
    if timeout <= 0:
        raise BadInputError(f"timeout must be positive seconds, not {timeout!r}")
    cond = threading.Condition()
    got: list[tuple[bytes | None, bytes]] = []

    def sink(batch: list[RawMsg], now: float) -> None:  # I/O thread: hand over only
        with cond:
            got.extend((raw[2], bytes(raw[3])) for raw in batch)
            cond.notify_all()

    inbox = conn.new_inbox()
    sent = dict(headers or {})
    sent[TRACE_DEST] = inbox
    if not deliver:
        sent[TRACE_ONLY] = "true"
    sub = conn.internals.subscribe(inbox, sink=sink, timeout=timeout)
    try:
        conn.publish(subject, payload, headers=sent)
        deadline = time.monotonic() + timeout
        expected, last, taken = 1, time.monotonic(), 0
        frame = trace_rows([])[0]
        while True:
            with cond:
                if len(got) == taken:
                    cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                new = len(got) != taken
                snapshot = list(got)
            now = time.monotonic()
            if new:
                taken, last = len(snapshot), now
                frame, expected = trace_rows(snapshot)
            if taken and taken >= expected and not frame["malformed"].any():
                break
            if now >= deadline or (taken and frame["malformed"].any() and now - last > STALL):
                break
    finally:
        conn.internals.release(sub)
    if not taken:
        raise Timeout(f"no trace event for {subject!r} within {timeout:g}s - message tracing "
                      "needs nats-server 2.11 or later (this one: "
                      f"{conn.server_info.get('version', '?')}) and an account whose tracing "
                      "is not disabled; raise timeout= on a slow cluster")
    frame.attrs.update(expected=expected, received=taken, complete=taken >= expected)
    return frame


#: Columns of :func:`trace_edges`, in order.
EDGE_COLUMNS = ["hop", "source", "target", "link", "detail", "error"]


def trace_edges(frame: pd.DataFrame) -> pd.DataFrame:
    """The path of a :func:`trace` frame as edges, for drawing it: one row per place the
    message went from a server - ``target`` is the next server for a route, gateway or leaf
    node egress (its name from that hop's event, else the remote's name), ``client <name>``
    for a subscriber, ``stream <name>`` for a stream that stored it; ``detail`` is the
    subscription subject or the stored subject."""
    records: list[dict[str, Any]] = [
        {str(k): (None if v is pd.NA or (isinstance(v, float) and v != v) else v)
         for k, v in rec.items()} for rec in frame.to_dict("records")]
    servers = {r["hop"]: r["server"] for r in records if r["hop"] is not None and r["server"]}
    rows = []
    for r in records:
        if r["kind"] == "egress" and r["next_hop"] is not None:
            target = servers.get(r["next_hop"], r["name"] or "?")
            detail = None
        elif r["kind"] == "egress":
            who = r["name"] or f"cid {r['cid']}"
            target, detail = f"{r['link'] or 'client'} {who}", r["subject"]
        elif r["kind"] == "jetstream":
            target, detail = f"stream {r['stream']}", r["subject"]
        else:
            continue
        rows.append({"hop": r["hop"], "source": r["server"], "target": target,
                     "link": r["link"], "detail": detail, "error": r["error"]})
    return pd.DataFrame(rows, columns=EDGE_COLUMNS).astype("string")


def trace_subjects(conn: Link, frame: pd.DataFrame | Iterable[str], *,
                   deliver: bool = False, timeout: float = 2.0) -> pd.DataFrame:
    """Trace every distinct subject of a captured `frame` (or a list of subjects) and return
    one row per subject: ``messages`` (its rows in the frame), ``streams`` that store it,
    ``subscribers`` it reaches (client names, or ``cid N`` when unnamed), ``servers`` it
    passes, ``accounts``, ``errors``, and two flags: ``stored_twice`` (more than one stream
    stores it) and ``reaches_no_one`` (no subscriber and no stream). ``complete`` is False
    when some server's event did not arrive in time.

    The messages are traced with ``Nats-Trace-Only`` (nothing is delivered or stored) unless
    ``deliver=True``; each is published with an empty payload.
    """
    if isinstance(frame, pd.DataFrame):
        if "subject" not in frame.columns:
            raise BadInputError("the frame has no 'subject' column - pass a capture's "
                                "to_pandas() or a list of subjects")
        counts = frame["subject"].dropna().astype(str).value_counts(sort=False)
    else:
        if isinstance(frame, (str, bytes)):
            raise BadInputError("pass a DataFrame or a list of subjects, not one string "
                                "(use conn.trace(subject) for one)")
        counts = pd.Series([str(s) for s in frame]).value_counts(sort=False)
    rows = []
    for subject in sorted(counts.index):
        path = trace(conn, subject, deliver=deliver, timeout=timeout)
        # a subscriber: an egress that ends here (no next hop: a route, gateway or leaf
        # node egress with one goes on to a server whose own event says where)
        egress = path[(path["kind"] == "egress") & path["next_hop"].isna()
                      & path["link"].isin(["client", "leafnode"]).fillna(False)]
        names = [str(n) if isinstance(n, str) and n else f"cid {c}"
                 for n, c in zip(egress["name"], egress["cid"], strict=True)]
        streams = sorted(set(path.loc[path["kind"] == "jetstream", "stream"].dropna()))
        errors = sorted(set(path["error"].dropna()))
        rows.append({
            "subject": subject, "messages": int(counts[subject]),
            "streams": streams, "subscribers": sorted(names),
            "servers": sorted(set(path["server"].dropna())),
            "accounts": sorted(set(path["account"].dropna())),
            "errors": errors, "stored_twice": len(streams) > 1,
            "reaches_no_one": not streams and not names,
            "complete": bool(path.attrs.get("complete", False))})
    return pd.DataFrame(rows, columns=SUBJECT_COLUMNS)
