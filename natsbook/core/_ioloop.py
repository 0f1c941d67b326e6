"""The engine under Connection: its state, the I/O thread's read / write / dispatch loop and
the send queue (in ``_sendqueue.py``). One thread owns the socket, reads and writes (an SSL
object must not be used from two threads at once), woken through a pipe when the user queues
something to send; the kernel's thread only queues frames and waits with timeouts.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import selectors
import socket
import ssl
import string
import threading
import time
from collections.abc import Callable
from typing import Any

from ..capture._store import DEFAULT_BUDGET, CaptureBudget
from ..errors import (
    AuthError,
    ConnectError,
    ConnectionClosedError,
    NatsbookError,
    ProtocolError,
    TLSError,
    WebSocketUpgradeError,
)
from ..wire._msg import Msg
from ..wire._protocol import (
    PING,
    PONG,
    RawMsg,
)
from ..wire._session import ClientSession, InfoUpdate, SidTable
from ._events import Gap, Lost, Reports, Waiter, has_pending, live_connections
from ._sendqueue import SendQueue
from ._subscription import Subscription
from ._transport import Credentials, ServerURL, TLSOptions, add_discovered, handshake

__all__ = ["DEFAULT_PENDING_SIZE", "DEFAULT_RECONNECT_BUFFER", "RECV_SIZE", "Gap"]


log = logging.getLogger("natsbook")

#: Bytes of publishes kept while reconnecting; past this publish() raises NotConnectedError.
DEFAULT_RECONNECT_BUFFER = 8 * 1024 * 1024
#: Bytes queued for the socket while connected; past this publish() waits (backpressure).
DEFAULT_PENDING_SIZE = 32 * 1024 * 1024
RECV_SIZE = 1 << 20
_B62 = string.ascii_letters + string.digits


class IOLoop(SendQueue):
    """State, the I/O loop and the send queue (reconnecting is added by Reconnecting)."""

    def __init__(self, servers: list[ServerURL], creds: Credentials, tls: TLSOptions, *,
                 name: str | None, connect_timeout: float, ping_interval: float,
                 max_outstanding_pings: int, reconnect: bool, max_reconnect_attempts: int,
                 reconnect_wait: float, reconnect_wait_max: float, reconnect_buffer_size: int,
                 pending_size: int, echo: bool, discovery: bool,
                 error_callback: Callable[[str], Any] | None,
                 capture_budget: int | None = DEFAULT_BUDGET) -> None:
        self._pool = list(servers)
        self._creds = creds
        self._tls = tls
        self.name = name
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.max_outstanding_pings = max_outstanding_pings
        self._reconnect_allowed = reconnect
        self.max_reconnect_attempts = max_reconnect_attempts
        self.reconnect_wait = reconnect_wait
        self.reconnect_wait_max = reconnect_wait_max
        self.reconnect_buffer_size = reconnect_buffer_size
        self.pending_size = pending_size
        self._echo = echo
        self._discovery = discovery
        #: Error reports: ``errors``, the log, the user's error_callback (in _events.py).
        self._reports = Reports(error_callback)
        self.errors = self._reports.errors
        self._report = self._reports.report
        #: One byte bound over every capture of this connection (see CaptureBudget).
        self.capture_budget = CaptureBudget(capture_budget)

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._wake_pending = False
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._init_send_queue()
        #: The protocol state, without I/O (wire/_session.py): the parser, who each PONG
        #: answers and keepalive PINGs unanswered, the server's INFO (lame duck mode
        #: included), the subscriptions by sid. Named below by part.
        self._session: ClientSession[Waiter] = ClientSession(max_outstanding_pings)
        self._parser = self._session.parser
        self._pings = self._session.pings
        self._info = self._session.server
        self._subs: SidTable[Subscription] = self._session.subs
        self._sock: socket.socket | None = None
        #: The socket callers may send on themselves (plain TCP, connected, not moving off a
        #: lame duck); None sends everything through the I/O thread.
        self._direct_sock: socket.socket | None = None
        self._server: ServerURL = servers[0]
        self._status = "connecting"
        self._closed_reason = ""

        self._history: list[Subscription] = []
        self._inbox_prefix = "_INBOX." + "".join(secrets.choice(_B62) for _ in range(22))
        self._resp_prefix = self._inbox_prefix + ".R."
        self._resp_sid: bytes | None = None
        self._resp_map: dict[str, Waiter] = {}
        self._resp_tokens = itertools.count(1)

        self._gaps: list[Gap] = []
        #: What add_discovered skipped and was reported (each once).
        self._discovery_notes: set[str] = set()
        #: When each server was last tried or connected to (time.monotonic()): none is tried
        #: again within reconnect_wait of that (as nats.go's per-server lastAttempt).
        self._last_attempt: dict[ServerURL, float] = {}
        self._in_msgs = self._in_bytes = self._out_msgs = self._out_bytes_total = 0
        self._reconnects = 0
        self._late_replies = 0
        self._rtt: float | None = None
        self._thread: threading.Thread | None = None
        #: Called after each reconnect, on a short-lived thread of their own (they may make
        #: requests), e.g. to re-create a JetStream consumer the server lost.
        self._reconnect_hooks: list[Callable[[], Any]] = []
        self._closed_fds_deferred = False

    @property
    def server_info(self) -> dict[str, Any]:
        return self._info.info

    @property
    def max_payload(self) -> int:
        return self._info.max_payload

    # ------------------------------------------------------------------ connect / lifecycle
    def start(self) -> None:
        """Connect to the first server that answers and start the I/O thread (fails fast:
        no retry loop on the first connect)."""
        errors: list[str] = []
        upgrade_error: WebSocketUpgradeError | None = None
        for server in list(self._pool):
            try:
                sock, info, rest = handshake(server, self._creds, self._tls, name=self.name,
                                             timeout=self.connect_timeout, echo=self._echo)
            except (AuthError, TLSError):
                self._cleanup_fds()
                raise
            except NatsbookError as exc:
                text = str(exc).removeprefix("natsbook: ")
                errors.append(text if server.url in text else f"{server.url}: {text}")
                if isinstance(exc, WebSocketUpgradeError):
                    upgrade_error = exc  # the next server may still answer; else raised as is
                continue
            except OSError as exc:
                errors.append(f"{server.url}: {exc}")
                continue
            except BaseException:
                self._cleanup_fds()
                raise
            try:
                self._adopt(sock, info, rest, server)
            except BaseException:
                # Garbage right behind the handshake (or anything): leave no socket or pipe.
                self._shutdown_socket()
                self._cleanup_fds()
                raise
            self._status = "connected"
            self._thread = threading.Thread(target=self._run, name="natsbook-io", daemon=True)
            self._thread.start()
            live_connections.add(self)
            return
        self._cleanup_fds()
        if len(errors) == 1:
            if upgrade_error is not None:
                raise upgrade_error
            raise ConnectError(errors[0], self._pool[0].url)
        raise ConnectError("could not connect to any server: " + "; ".join(errors),
                           self._pool[0].url)

    def _adopt(self, sock: socket.socket, info: dict[str, Any], rest: bytes,
               server: ServerURL) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._direct_sock = sock if type(sock) is socket.socket else None
        self._server = server
        self._last_attempt[server] = time.monotonic()
        self._parser.reset()
        self._on_info(info)
        self._info.reset()
        self._pings.restart()
        if rest:
            self._process(rest)

    def _cleanup_fds(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def _wake(self, force: bool = False) -> None:
        # While the flag is set the I/O thread is busy writing and sure to look at the queue
        # again before it sleeps (it clears the flag only when it finds the queue empty), so
        # no byte is needed. A publish loop used to write the pipe for one call in ten
        # (profiled: the syscall and the thread switch it causes were most of its cost).
        # `force`: not about the queue (close()).
        if self._wake_pending and not force:
            return
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _io_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        sel = selectors.DefaultSelector()
        try:
            sel.register(sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            writing = False
            next_ping = time.monotonic() + self.ping_interval
            while not self._stop.is_set():
                want_write = bool(self._inflight or self._out)
                if not want_write:
                    # About to sleep: from here on a queued frame must wake us. Cleared, then
                    # the queue looked at again, so a frame queued just before is not missed.
                    self._wake_pending = False
                    want_write = bool(self._inflight or self._out)
                if want_write != writing:
                    sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE
                                                             if want_write else 0))
                    writing = want_write
                timeout = max(0.0, next_ping - time.monotonic())
                if has_pending(sock):
                    timeout = 0.0
                for key, mask in sel.select(min(timeout, 1.0)):
                    if key.fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                    elif mask & selectors.EVENT_READ:
                        self._read(sock)
                if has_pending(sock):
                    self._read(sock)
                if self._slow:  # nothing more is written to a server that does not read
                    raise Lost(self._slow)
                if self._inflight or self._out:
                    self._write(sock)
                if self._info.lame_duck:
                    raise Lost("server entered lame duck mode")
                now = time.monotonic()
                if now >= next_ping:
                    next_ping = now + self.ping_interval
                    with self._lock:  # the PING and the PONG it is owed, in one step
                        stale = self._pings.keepalive()
                        queued = stale is None and self._queue_own(PING)
                    if stale is not None:
                        raise Lost(f"stale connection: {stale} over "
                                    f"{self._pings.outstanding * self.ping_interval:g}s")
                    if not queued:
                        raise Lost(self._slow)
        finally:
            sel.close()

    def _read(self, sock: socket.socket) -> None:
        for _ in range(32):  # bounded so writes and pings get their turn under a flood
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return
            if not data:
                raise Lost("server closed the connection" +
                            (f" after -ERR {self._reports.last_err!r}"
                             if self._reports.last_err else ""))
            self._in_bytes += len(data)
            self._process(data)
            if self._slow or (len(data) < RECV_SIZE and not has_pending(sock)):
                return

    def _process(self, data: bytes) -> None:
        try:
            got = self._session.receive(data)
        except ProtocolError as exc:
            # Messages that arrived complete before the bad bytes are still delivered; the
            # error then drops the connection (a gap is recorded).
            if exc.partial is not None:
                self._deliver_groups(exc.partial[0])
            raise
        if got.groups:
            self._deliver_groups(got.groups)
        for update in got.infos:
            self._on_info_update(update)
        for text in got.errors:
            self._reports.server_error(text)
        if got.pongs:  # after INFOs and errors: a woken flush() sees what came before
            with self._lock:
                waiters = [self._pings.pong() for _ in range(got.pongs)]
            for waiter in waiters:
                if waiter is not None:
                    waiter.event.set()
        for _ in range(got.pings):  # a PONG each, as long as the bound on our own frames lets
            if not self._queue_own(PONG):
                break

    def _deliver_groups(self, groups: dict[bytes, list[RawMsg]]) -> None:
        now = time.time()
        t_ns = int(now * 1e9)
        for sid, rows in groups.items():
            self._in_msgs += len(rows)
            if sid == self._resp_sid:
                self._on_replies(rows, now)
                continue
            sub = self._subs.lookup(sid, len(rows))
            if sub is None:
                continue
            if not sub._deliver(rows, now, t_ns):
                self._forget(sub)

    def _on_replies(self, rows: list[RawMsg], now: float) -> None:
        plen = len(self._resp_prefix)
        with self._lock:  # requesters add and remove waiters from their own threads
            waiters = [self._resp_map.pop(row[0][plen:].decode("utf-8", "replace"), None)
                       for row in rows]
        for row, waiter in zip(rows, waiters, strict=True):
            if waiter is None:
                self._late_replies += 1
                continue
            if type(waiter) is not Waiter:  # a request_batch slot takes the raw row
                waiter.take(row, now)  # type: ignore[attr-defined]
                continue
            try:
                waiter.msg = Msg.from_raw(*row, time=now, conn=self)
            except Exception as exc:  # a hostile reply: the requester gets the error, never
                waiter.error = str(exc)  # the connection (the I/O thread must not die of it)
            waiter.event.set()

    def _on_info(self, info: dict[str, Any]) -> None:
        """The INFO of a handshake (those read later go through the session)."""
        self._on_info_update(self._info.apply(info))

    def _on_info_update(self, update: InfoUpdate) -> None:
        if update.error is not None:  # as nats.go: ignored whole; reported
            self._report(f"ignored an INFO from {self._server.url}: {update.error}")
            return
        if update.max_payload is not None:
            # Clamped: a server claiming a huge max_payload must not unbound our buffers.
            self._parser.max_payload = self._info.max_frame
        if self._discovery:
            notes = add_discovered(self._pool, self._server, update.connect_urls, self._tls)
            for text in notes:
                # Each once: a server repeating its INFO must not flood conn.errors.
                if text not in self._discovery_notes and len(self._discovery_notes) < 32:
                    self._discovery_notes.add(text)
                    self._report(text)
        if update.lame_duck:
            self._report(f"{self._server.url} entered lame duck mode; moving to another server")

    def _shutdown_socket(self) -> None:
        with self._lock:
            self._direct_sock = None
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _set_closed(self, reason: str) -> None:
        with self._lock:
            self._status = "closed"
            self._closed_reason = reason
            if self._gaps and self._gaps[-1].end is None:
                self._gaps[-1].end = time.time()
            self._cond.notify_all()
        self._fail_waiters()

    def _fail_waiters(self) -> None:
        with self._lock:
            waiters = self._pings.reset() + list(self._resp_map.values())
            self._resp_map.clear()
        for w in waiters:
            w.lost = True
            w.event.set()

    def _add_reconnect_hook(self, hook: Callable[[], Any]) -> None:
        with self._lock:
            self._reconnect_hooks.append(hook)

    def _remove_reconnect_hook(self, hook: Callable[[], Any]) -> None:
        with self._lock:
            if hook in self._reconnect_hooks:
                self._reconnect_hooks.remove(hook)

    def _check_open(self) -> None:
        if self._status == "closed":
            raise ConnectionClosedError(
                f"connection is closed ({self._closed_reason or 'close() was called'}) - "
                "open a new one with natsbook.connect()")

    def _forget(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.pop(sub.sid)
        sub._stop()

    def _run(self) -> None:
        """The I/O thread's main loop (see Reconnecting._run)."""
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        raise NotImplementedError
