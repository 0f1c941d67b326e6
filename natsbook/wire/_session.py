"""The protocol state of one client connection, without I/O (as h11 keeps its state machine
free of sockets): PING/PONG accounting, the server's INFO as it evolves, the sid table, and
:class:`ClientSession`, which feeds received bytes through the parser and all three.

The engine (``natsbook/core``) owns one session, hands it every chunk it reads, and does
what the result says (deliver these rows, send these bytes, wake these waiters); it changes
the PING accounting and the sid table under its own lock, since callers' threads register
flushes and subscriptions. Tests drive a session with plain bytes (``tests/test_session.py``).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._info import info_error
from ._protocol import HARD_MAX_FRAME, Parser, RawMsg

__all__ = ["InfoUpdate", "PingTracker", "ServerState", "SidTable"]

T = TypeVar("T")

#: The max_payload assumed until the server's INFO says (nats-server's default).
DEFAULT_MAX_PAYLOAD = 1024 * 1024


class PingTracker(Generic[T]):
    """Who each PONG answers: the server answers PINGs in order, so PONG number n is owed to
    PING number n. A PING is sent for a waiter (``flush()``: a barrier) or as a keepalive
    (owed to no one, ``None``). Keepalive PINGs without a PONG are counted: past
    `max_outstanding` in a row the connection is stale."""

    __slots__ = ("_owed", "max_outstanding", "outstanding")

    def __init__(self, max_outstanding: int = 2) -> None:
        self.max_outstanding = max_outstanding
        #: Keepalive PINGs sent since the last PONG.
        self.outstanding = 0
        self._owed: deque[T | None] = deque()

    def sent(self, waiter: T | None = None) -> None:
        """A PING went into the send queue for `waiter` (None: a keepalive or a marker)."""
        self._owed.append(waiter)

    def sent_first(self, waiter: T | None = None) -> None:
        """A PING that the server answers before those already owed (sent first on a new
        socket, ahead of what waits for it)."""
        self._owed.appendleft(waiter)

    def keepalive(self) -> str | None:
        """The keepalive timer fired. Returns why the connection is stale (that many PINGs in a
        row unanswered), or None: then send a PING, which is counted as owed to no one."""
        if self.outstanding >= self.max_outstanding:
            return f"no PONG to {self.outstanding} PINGs"
        self.outstanding += 1
        self._owed.append(None)
        return None

    def pong(self) -> T | None:
        """A PONG arrived: the server is alive; returns the waiter it answers (None: owed to
        no one, or a PONG nobody asked for)."""
        self.outstanding = 0
        return self._owed.popleft() if self._owed else None

    def forget(self, waiter: T) -> None:
        """An abandoned waiter (timed out, interrupted): its PONG still comes, for no one."""
        for i, w in enumerate(self._owed):
            if w is waiter:
                self._owed[i] = None
                return

    def restart(self) -> None:
        """A new socket: no keepalive PING of the old one is owed (flushes queued for the new
        socket stay owed)."""
        self.outstanding = 0

    def reset(self) -> list[T]:
        """The socket is gone: no PONG is owed any more. Returns the waiters left without
        one (they retry, or fail)."""
        waiters = [w for w in self._owed if w is not None]
        self._owed.clear()
        self.outstanding = 0
        return waiters

    def __len__(self) -> int:
        return len(self._owed)


@dataclass(slots=True)
class InfoUpdate:
    """What one INFO changed. `error`: it was refused whole (a field of the wrong type, as
    nats.go refuses it) and changed nothing."""

    error: str | None = None
    max_payload: int | None = None
    connect_urls: list[str] = field(default_factory=list)
    lame_duck: bool = False


class ServerState:
    """The server's INFO as it evolves over a connection: the first one and each update (a
    cluster announcing servers, lame duck mode). Fields of later INFOs override earlier ones;
    a bad INFO is refused whole."""

    __slots__ = ("info", "lame_duck", "max_frame", "max_payload")

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.max_payload = DEFAULT_MAX_PAYLOAD
        #: The largest frame the parser accepts: the server's max_payload plus room for a
        #: header line, clamped so that no INFO unbounds the client's buffers (the parser's
        #: own bound until an INFO names a max_payload).
        self.max_frame = HARD_MAX_FRAME
        self.lame_duck = False

    def apply(self, info: dict[str, Any]) -> InfoUpdate:
        if (bad := info_error(info)) is not None:
            return InfoUpdate(error=bad)
        self.info = {**self.info, **info}
        update = InfoUpdate(connect_urls=list(info.get("connect_urls") or []))
        mp = info.get("max_payload")
        if isinstance(mp, int) and mp > 0:
            self.max_payload = update.max_payload = mp
            self.max_frame = min(max(mp, 1024) + 64 * 1024, HARD_MAX_FRAME)
        if info.get("ldm"):
            self.lame_duck = update.lame_duck = True
        return update

    def reset(self) -> None:
        """A new socket: its server's INFO starts over (lame duck mode included)."""
        self.lame_duck = False


class SidTable(Generic[T]):
    """The subscriptions of one connection by sid: numbers handed out once, looked up by the
    sid bytes a MSG carries; messages for a sid no longer in the table are counted."""

    __slots__ = ("_by_bytes", "_by_sid", "_next", "unknown")

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._by_sid: dict[int, T] = {}
        self._by_bytes: dict[bytes, T] = {}
        #: Messages that arrived for a sid not in the table (unsubscribed, or never ours).
        self.unknown = 0

    def new_sid(self) -> int:
        return next(self._next)

    def add(self, sid: int, item: T) -> None:
        self._by_sid[sid] = item
        self._by_bytes[str(sid).encode()] = item

    def pop(self, sid: int) -> T | None:
        self._by_bytes.pop(str(sid).encode(), None)
        return self._by_sid.pop(sid, None)

    def lookup(self, sid: bytes, count: int = 1) -> T | None:
        """The subscription of a MSG's sid; None (and `count` messages counted unknown)."""
        item = self._by_bytes.get(sid)
        if item is None:
            self.unknown += count
        return item

    def values(self) -> list[T]:
        return list(self._by_sid.values())

    def clear(self) -> None:
        self._by_sid.clear()
        self._by_bytes.clear()

    def __contains__(self, sid: object) -> bool:
        return sid in self._by_sid

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._by_sid))

    def __len__(self) -> int:
        return len(self._by_sid)


@dataclass(slots=True)
class Received:
    """What one chunk of received bytes means: the engine delivers `groups` (rows by sid),
    acts on `infos` and `errors`, wakes the waiters of `pongs` PONGs (in that order), and
    answers `pings` server PINGs with a PONG each (:data:`PONG`)."""

    groups: dict[bytes, list[RawMsg]]
    pings: int = 0
    pongs: int = 0
    infos: list[InfoUpdate] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ClientSession(Generic[T]):
    """The client side of one connection's protocol, bytes in, decisions out.

    ``receive(data)`` parses a chunk (partial frames are kept for the next one) and applies
    the control frames: a server PING owes a PONG (counted in ``pings``), an INFO updates the server
    state and the parser's frame limit, a -ERR is reported, PONGs are counted for the engine to
    match against :attr:`pings`. A ProtocolError from the parser propagates (its ``partial``
    holds the rows that were complete before the bad bytes)."""

    __slots__ = ("parser", "pings", "server", "subs")

    def __init__(self, max_outstanding_pings: int = 2) -> None:
        self.parser = Parser()
        self.pings: PingTracker[T] = PingTracker(max_outstanding_pings)
        self.server = ServerState()
        self.subs: SidTable[Any] = SidTable()

    def receive(self, data: bytes) -> Received:
        groups, ctrl = self.parser.feed(data)
        out = Received(groups)
        for op, arg in ctrl:
            if op == "PING":
                out.pings += 1
            elif op == "PONG":
                out.pongs += 1
            elif op == "INFO":
                assert isinstance(arg, dict)
                update = self.server.apply(arg)
                if update.max_payload is not None:
                    self.parser.max_payload = self.server.max_frame
                out.infos.append(update)
            elif op == "-ERR":
                out.errors.append(str(arg))
        return out
