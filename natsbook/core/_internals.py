"""The internal interface: what natsbook's other layers need from a connection.

:class:`Link` names the public members of a connection that ``jetstream`` and ``ops`` use
(publish, request, an internal inbox...): their functions take any Link, which is what lets
``natsbook.Connection`` - a layer above them - call them with ordinary imports while they
never import it. Both the public ``Connection`` and the core ``Engine`` are Links.

`jetstream` (history reads, follow, KV watches), `ops` (system-account requests) and
`capture` (SQL and live views over captures) need a few things a notebook user never calls:
an internal inbox subscription that feeds a sink, a hook run after every reconnect, the
count of recorded gaps, a line in ``conn.errors``. They get them here, by name, through
``conn.internals`` and ``sub.internals``, never by reaching for a ``_``-attribute of a
`Connection` or `Subscription` (``tests/test_layers.py`` checks that no module outside
``client/`` does). A new need of another layer is a new method here, documented, so that
what the client layer promises to the layers above it stays in one place.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..capture import CaptureStore
    from ..capture._frames import DecodeArg
    from ..wire._msg import Msg
    from ..wire._protocol import RawMsg
    from ._engine import Engine
    from ._subscription import Subscription

__all__ = ["ConnectionInternals", "Link", "SubscriptionInternals"]


@runtime_checkable
class Link(Protocol):
    """The members of a connection that the jetstream and ops layers use (see
    :class:`natsbook.Connection` for what each does)."""

    @property
    def internals(self) -> ConnectionInternals: ...

    @property
    def server_info(self) -> dict[str, Any]: ...

    @property
    def is_closed(self) -> bool: ...

    @property
    def connected_url(self) -> str | None: ...

    def new_inbox(self) -> str: ...

    def publish(self, subject: str, data: Any = b"", *, reply: str | None = None,
                headers: Mapping[str, Any] | None = None) -> None: ...

    def request(self, subject: str, data: Any = b"", *, timeout: float = 5.0,
                headers: Mapping[str, Any] | None = None) -> Msg: ...

    def flush(self, timeout: float = 10.0) -> float: ...

    def subscribe(self, subject: str, *, queue: str | None = None, max_msgs: int | None = None,
                  callback: Callable[[Msg], Any] | None = None, capture: bool = True,
                  max_rows: int | None = None, max_bytes: int | None = ...,
                  spill: str | os.PathLike[str] | None = None, pending_msgs: int = ...,
                  pending_bytes: int = ...,
                  batch_callback: Callable[[list[RawMsg], float], Any] | None = None,
                  timeout: float = 10.0, name: str | None = None,
                  decode: DecodeArg | None = None) -> Subscription: ...

    def unsubscribe(self, sub: Subscription | str, *, max_msgs: int | None = None) -> None: ...


class ConnectionInternals:
    """``conn.internals``: the connection as natsbook's own layers use it."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Engine) -> None:
        self._conn = conn

    @property
    def lock(self) -> threading.RLock:
        """The engine's lock: hold it to read the gap count and subscribe without a race."""
        return self._conn._lock

    def gap_count(self) -> int:
        """How many disconnected intervals were recorded (grows on every drop)."""
        return len(self._conn._gaps)

    def subscribe(self, subject: str, *,
                  sink: Callable[[list[RawMsg], float], Any] | None = None,
                  store: CaptureStore | None = None,
                  timeout: float = 10.0) -> Subscription:
        """A subscription for natsbook's own reads (JetStream history, follow, KV watch,
        system-account requests): rows go to `sink` (called on the I/O thread; it must only
        hand them over) and/or `store`. Not listed in ``conn.subscriptions`` nor in
        ``to_pandas()``; restored after a reconnect. End it with :meth:`release`."""
        return self._conn._subscribe_internal(subject, sink=sink, store=store,
                                              timeout=timeout)

    def release(self, sub: Subscription) -> None:
        """End `sub` at once, waiting for nothing (a read that is over, or failed)."""
        self._conn._release(sub)

    def add_reconnect_hook(self, hook: Callable[[], Any]) -> None:
        """Run `hook` (on the I/O thread, briefly) after every reconnect."""
        self._conn._add_reconnect_hook(hook)

    def remove_reconnect_hook(self, hook: Callable[[], Any]) -> None:
        self._conn._remove_reconnect_hook(hook)

    def report(self, text: str) -> None:
        """Record `text` in ``conn.errors`` and the ``natsbook`` logger (and the user's
        error callback)."""
        self._conn._report(text)

    def check_open(self) -> None:
        """Raise ConnectionClosedError (saying why it closed) when the connection is closed."""
        self._conn._check_open()

    def captures(self) -> list[Subscription]:
        """Every user capture of this connection, ended ones included, oldest first (what
        ``conn.to_pandas()`` and ``conn.sql()`` read)."""
        return [s for s in list(self._conn._history) if s.store is not None and not s.internal]


class SubscriptionInternals:
    """``sub.internals``: a subscription as natsbook's own layers use it."""

    __slots__ = ("_sub",)

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    def require_store(self) -> CaptureStore:
        """The capture's store; BadInputError (saying what to do) for ``capture=False``."""
        return self._sub._require_store()

    @property
    def connection_closed(self) -> bool:
        """Whether the subscription's connection is closed."""
        return self._sub._conn.is_closed
