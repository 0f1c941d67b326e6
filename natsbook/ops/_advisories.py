"""JetStream advisories and server events as a capture with typed columns.

nats-server publishes a JSON *advisory* on ``$JS.EVENT.ADVISORY.>`` in the account of the
stream for every JetStream API call (``api_audit``), stream and consumer change
(``stream_action``, ``consumer_action``), message a consumer gave up on (``max_deliver``,
``terminated``), negative acknowledgement (``nak``), leader election, snapshot, pause...;
each has a ``type`` schema id (``io.nats.jetstream.advisory.v1.max_deliver``). To the system
account it publishes server events: ``$SYS.ACCOUNT.<account>.CONNECT`` / ``DISCONNECT``
(``io.nats.server.advisory.v1.client_connect``...), ``$SYS.ACCOUNT.<account>.CONNS``,
``$SYS.SERVER.<id>.STATSZ``, ``SHUTDOWN``...

:func:`advisories` captures them; :meth:`Advisories.to_pandas` puts the typed columns first
(``type``, ``kind``, ``action``, ``stream``, ``consumer``, ``stream_seq``, ``consumer_seq``,
``deliveries``, ``reason``, ``server``, ``account``, ``event_time``, ``malformed``) and keeps
the rest of each payload flattened after them, so a ``max_deliver`` or ``terminated`` row
joins ``stream_history``'s ``seq`` on ``stream_seq``. A payload that is not JSON or carries a
field of the wrong type is a row with ``malformed=True``, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import BadInputError
from ._sysmon import is_system

if TYPE_CHECKING:
    from ..core import Link, Subscription

__all__ = ["ADVISORY_COLUMNS", "KNOWN_KINDS", "Advisories", "advisories", "typed_advisories"]

JS_ADVISORIES = "$JS.EVENT.ADVISORY.>"
SYS_SUBJECTS = ("$SYS.ACCOUNT.>", "$SYS.SERVER.>")
#: The typed columns, first in :meth:`Advisories.to_pandas`.
ADVISORY_COLUMNS = ["time", "subject", "type", "kind", "action", "stream", "consumer",
                    "stream_seq", "consumer_seq", "deliveries", "reason", "server", "account",
                    "event_time", "malformed"]
#: The short kinds nats-server (2.10 - 2.15) publishes: the last part of the ``type``; a
#: server event without a type is named from its subject's last token (``statsz``...).
KNOWN_KINDS = frozenset({
    # io.nats.jetstream.advisory.v1.*
    "api_audit", "api_limit_reached", "stream_action", "consumer_action", "max_deliver",
    "nak", "terminated", "stream_leader_elected", "stream_quorum_lost",
    "consumer_leader_elected", "consumer_quorum_lost", "snapshot_create",
    "snapshot_complete", "restore_create", "restore_complete", "consumer_pause",
    "consumer_group_pinned", "consumer_group_unpinned", "stream_batch_abandoned",
    "domain_leader_elected", "meta_rescue", "server_out_of_space", "server_removed",
    # io.nats.server.advisory.v1.*
    "client_connect", "client_disconnect", "account_connections", "ocsp_peer_reject",
    "ocsp_peer_link_invalid",
    # server events named from their subject
    "statsz", "shutdown", "lameduck", "conns", "connect", "disconnect"})
_SCHEMA = re.compile(r"^io\.nats\.[a-z_]+\.(?:advisory|metric)\.v\d+\.([a-z0-9_]+)$")
_INTS = ("stream_seq", "consumer_seq", "deliveries")
_STRINGS = ("type", "kind", "action", "stream", "consumer", "reason", "server", "account")


def _check_kinds(kinds: Iterable[str] | str | None) -> frozenset[str] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    chosen = frozenset(str(k).lower() for k in kinds)
    unknown = sorted(chosen - KNOWN_KINDS)
    if unknown:
        raise BadInputError(f"unknown advisory kind(s) {unknown}: choose from "
                            f"{sorted(KNOWN_KINDS)} (or kinds=None for all)")
    return chosen


def _column(frame: pd.DataFrame, *names: str) -> pd.Series:
    """The first of `names` that the frame has, row by row (later names fill the gaps)."""
    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for name in names:
        if name in frame.columns:
            out = out.where(out.notna(), frame[name])
    return out


def _subject_part(subjects: pd.Series, prefix: str, index: int) -> pd.Series:
    parts = subjects.astype(str).str.split(".")
    ok = subjects.astype(str).str.startswith(prefix)
    return parts.where(ok).map(lambda p: p[index] if isinstance(p, list) and len(p) > index
                               else None)


def typed_advisories(frame: pd.DataFrame) -> pd.DataFrame:
    """Put the typed columns in front of a capture frame of advisories / server events
    (``decode="json"``): see the module docstring. Exposed for frames read back from disk."""
    n = len(frame)
    subjects = frame["subject"] if "subject" in frame.columns else pd.Series([""] * n)
    out = pd.DataFrame(index=frame.index)
    out["time"] = frame["time"] if "time" in frame.columns else pd.NaT
    out["subject"] = subjects
    bad = frame["json_error"].fillna(False).astype(bool) if "json_error" in frame.columns \
        else pd.Series(False, index=frame.index)
    typ = _column(frame, "type")
    schema = typ.map(lambda t: _SCHEMA.match(t) if isinstance(t, str) else None)
    kind = schema.map(lambda m: m.group(1) if m else None)
    # server events without a type: the subject's last token (STATSZ, CONNS, SHUTDOWN ...)
    from_subject = subjects.astype(str).map(
        lambda s: s.rsplit(".", 1)[-1].lower() if s.startswith("$SYS.") else None)
    kind = kind.where(kind.notna(), from_subject.where(typ.isna()))
    bad |= typ.notna() & schema.isna()  # a type that is not a schema id
    bad |= kind.isna()
    out["type"] = typ
    out["kind"] = kind
    out["action"] = _column(frame, "action").where(lambda a: a.notna(), kind)
    out["stream"] = _column(frame, "stream")
    out["consumer"] = _column(frame, "consumer")
    for name in _INTS:
        raw = _column(frame, name)
        num = pd.to_numeric(raw, errors="coerce")
        # a whole number in int64's range (a bigger one used to wrap to -2**63, unflagged)
        ok = ((num == num.round()) & (num >= 0) & (num < 2**63)).fillna(False).astype(bool)
        bad |= raw.notna() & ~ok
        out[name] = num.where(ok).astype("Float64").astype("Int64")
    out["reason"] = _column(frame, "reason")
    server = _column(frame, "server", "server.name")
    server = server.where(server.map(lambda s: isinstance(s, str) or s is None), None)
    out["server"] = server
    account = _column(frame, "acc", "account", "client.acc", "data.account")
    account = account.where(account.notna(), _subject_part(subjects, "$SYS.ACCOUNT.", 2))
    out["account"] = account
    stamp = _column(frame, "timestamp", "server.time", "time_stamp")
    # only text is a time (a number made pandas warn, and it is no RFC 3339 time): NaT else
    stamp = stamp.where(stamp.map(lambda v: isinstance(v, str)), None)
    out["event_time"] = pd.to_datetime(stamp, utc=True, errors="coerce", format="ISO8601")
    for name in _STRINGS:
        ok = out[name].map(lambda v: v is None or isinstance(v, str)
                           or (isinstance(v, float) and v != v))
        bad |= ~ok
        out[name] = out[name].where(ok, None).astype("string")
    out["malformed"] = bad.astype(bool)
    rest = [c for c in frame.columns if c not in out.columns
            and c not in ("type", "action", "stream", "consumer", "reason", *_INTS)]
    result = pd.concat([out, frame[rest]], axis=1)
    result.attrs.update(frame.attrs)
    return result


class Advisories:
    """A running capture of JetStream advisories (and, for a system-account connection,
    server events). ``to_pandas()`` gives the typed frame; ``stop()`` ends the capture (what
    it holds stays readable)."""

    def __init__(self, subs: list[Subscription], kinds: frozenset[str] | None,
                 system: bool) -> None:
        self.subscriptions = subs
        self.kinds = kinds
        self.system = system

    @property
    def subjects(self) -> list[str]:
        return [s.subject for s in self.subscriptions]

    def to_pandas(self, *, last: int | None = None, since: Any = None) -> pd.DataFrame:
        """Every advisory captured so far, oldest first, typed columns first (see
        :func:`typed_advisories`); only the chosen `kinds` when some were given."""
        frames = [s.to_pandas("json", since=since) for s in self.subscriptions]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in ADVISORY_COLUMNS})
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
        typed = typed_advisories(frame)
        if self.kinds is not None:
            typed = typed[typed["kind"].isin(self.kinds).fillna(False)
                          | typed["malformed"]].reset_index(drop=True)
        if last is not None:
            typed = typed.tail(last).reset_index(drop=True)
        return typed

    def __len__(self) -> int:
        return len(self.to_pandas())

    def stop(self) -> None:
        """End the capture; ``to_pandas()`` still returns what arrived."""
        for sub in self.subscriptions:
            sub.unsubscribe()

    def __repr__(self) -> str:
        return (f"<Advisories {', '.join(self.subjects)} kinds="
                f"{sorted(self.kinds) if self.kinds else 'all'}>")


def advisories(conn: Link, kinds: Iterable[str] | str | None = None, *,
               system: bool | None = None, timeout: float = 5.0) -> Advisories:
    """Start capturing ``$JS.EVENT.ADVISORY.>`` (and, when `system` - by default: when the
    connection is a system-account user - ``$SYS.ACCOUNT.>`` and ``$SYS.SERVER.>``).

    `kinds`: only these short kinds (``"max_deliver"``, ``"terminated"``, ...; see
    ``KNOWN_KINDS``) in ``to_pandas()``. Returns once the server has the subscriptions.
    """
    chosen = _check_kinds(kinds)
    if system is None:
        system = is_system(conn, timeout=min(1.0, timeout))
    subjects = [JS_ADVISORIES, *(SYS_SUBJECTS if system else ())]
    subs: list[Subscription] = []
    try:
        for subject in subjects:
            subs.append(conn.subscribe(subject, timeout=timeout))
        conn.flush(timeout)
    except BaseException:
        for sub in subs:
            sub.unsubscribe()
        raise
    return Advisories(subs, chosen, system)
