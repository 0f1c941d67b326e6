"""The connection: one I/O thread that reads in bulk, writes coalesced frames, keeps the
connection alive and reconnects; the kernel's thread only queues frames and waits with timeouts.

One thread owns the socket, reads and writes (an SSL object must not be used from two threads
at once), woken through a pipe when the user queues something to send.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import secrets
import selectors
import socket
import ssl
import string
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ._data_api import DataMethods
from ._frames import filter_table, to_frame
from ._msg import Msg, encode_payload
from ._protocol import (
    HARD_MAX_FRAME,
    PING,
    PONG,
    Parser,
    RawMsg,
    encode_headers,
    encode_pub,
    encode_sub,
    encode_unsub,
)
from ._store import DEFAULT_BUDGET, DEFAULT_MAX_BYTES, CaptureBudget, CaptureStore
from ._subjects import check_publish, check_queue, check_subscribe
from ._subscription import DEFAULT_PENDING_BYTES, DEFAULT_PENDING_MSGS, Subscription
from ._transport import Credentials, ServerURL, TLSOptions, handshake, parse_url
from .errors import (
    AuthError,
    BadInputError,
    ConnectError,
    ConnectionClosedError,
    FlushTimeout,
    MaxPayloadError,
    NatsbookError,
    NoRespondersError,
    NotConnectedError,
    ProtocolError,
    RequestTimeout,
    ServiceError,
    Timeout,
    TLSError,
)

__all__ = ["Connection", "DrainReport", "Gap"]

log = logging.getLogger("natsbook")

#: Bytes of publishes kept while reconnecting; past this publish() raises NotConnectedError.
DEFAULT_RECONNECT_BUFFER = 8 * 1024 * 1024
#: Bytes queued for the socket while connected; past this publish() waits (backpressure).
DEFAULT_PENDING_SIZE = 32 * 1024 * 1024
RECV_SIZE = 1 << 20
_PUB_PREFIXES = (b"PUB ", b"HPUB ")
_B62 = string.ascii_letters + string.digits

_live: weakref.WeakSet[Connection] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:  # pragma: no cover - interpreter shutdown
    for conn in list(_live):
        try:
            conn.close(timeout=1.0)
        except Exception:
            pass


class _Lost(Exception):
    """The current socket is gone; carries the reason."""


class _Waiter:
    __slots__ = ("event", "lost", "msg")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.lost = False
        self.msg: Msg | None = None


@dataclass(slots=True)
class Gap:
    """A disconnected interval: messages published then may be missing from captures."""

    start: float
    end: float | None
    server: str
    reason: str


@dataclass(slots=True, frozen=True)
class DrainReport:
    """What drain() could not deliver; all zero means nothing was lost."""

    undelivered_callbacks: int
    unsent_bytes: int
    errors: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.undelivered_callbacks or self.unsent_bytes or self.errors)


class Connection(DataMethods):
    """A NATS connection. Create with :func:`natsbook.connect`."""

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
        self._error_callback = error_callback
        #: One byte bound over every capture of this connection (see CaptureBudget).
        self.capture_budget = CaptureBudget(capture_budget)

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._inflight: list[bytes] = []
        self._inflight_sent = 0
        self._pongs: deque[_Waiter | None] = deque()
        self._outstanding_pings = 0
        self._parser = Parser()
        self._sock: socket.socket | None = None
        self._server: ServerURL = servers[0]
        self._status = "connecting"
        self._closed_reason = ""
        self._lame = False
        self._last_err = ""
        self.server_info: dict[str, Any] = {}
        self.max_payload = 1024 * 1024

        self._sids = itertools.count(1)
        self._subs: dict[int, Subscription] = {}
        self._by_sid: dict[bytes, Subscription] = {}
        self._history: list[Subscription] = []
        self._inbox_prefix = "_INBOX." + "".join(secrets.choice(_B62) for _ in range(22))
        self._resp_prefix = self._inbox_prefix + ".R."
        self._resp_sid: bytes | None = None
        self._resp_map: dict[str, _Waiter] = {}
        self._resp_tokens = itertools.count(1)

        self._gaps: list[Gap] = []
        self.errors: deque[tuple[float, str]] = deque(maxlen=200)
        self._in_msgs = self._in_bytes = self._out_msgs = self._out_bytes_total = 0
        self._reconnects = 0
        self._unknown_sid = 0
        self._late_replies = 0
        self._rtt: float | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ connect / lifecycle
    def _connect_first(self) -> None:
        errors: list[str] = []
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
                continue
            except OSError as exc:
                errors.append(f"{server.url}: {exc}")
                continue
            try:
                self._adopt(sock, info, rest, server)
            except ProtocolError:
                # Garbage right behind the handshake: leave no socket or pipe behind.
                self._shutdown_socket()
                self._cleanup_fds()
                raise
            self._status = "connected"
            self._thread = threading.Thread(target=self._run, name="natsbook-io", daemon=True)
            self._thread.start()
            _live.add(self)
            return
        self._cleanup_fds()
        if len(errors) == 1:
            raise ConnectError(errors[0], self._pool[0].url)
        raise ConnectError("could not connect to any server: " + "; ".join(errors),
                           self._pool[0].url)

    def _adopt(self, sock: socket.socket, info: dict[str, Any], rest: bytes,
               server: ServerURL) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._server = server
        self._parser.reset()
        self._on_info(info)
        self._lame = False
        self._outstanding_pings = 0
        if rest:
            self._process(rest)

    def _cleanup_fds(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    # ------------------------------------------------------------------ I/O thread
    def _run(self) -> None:
        while not self._stop.is_set():
            lame = False
            try:
                self._io_loop()
                reason = "closed"
            except _Lost as exc:
                reason = str(exc)
                lame = self._lame
            except ProtocolError as exc:
                reason = f"protocol error: {exc}"
                self._report(reason)
            except (OSError, ssl.SSLError) as exc:
                reason = f"connection error: {exc}"
            if self._stop.is_set():
                break
            if lame and self._sock is not None:
                # Make before break: the lame duck still serves us while we move.
                self._lame = False
                try:
                    self._move_off_lame_duck()
                except (NatsbookError, OSError, ssl.SSLError) as exc:
                    reason = f"lame duck move failed: {exc}"
                else:
                    # Moved, or nowhere to go: stay until the lame duck closes us.
                    continue
            self._on_disconnect(reason)
            if not self._reconnect_loop():
                break
        self._shutdown_socket()

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
                if want_write != writing:
                    sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE
                                                             if want_write else 0))
                    writing = want_write
                timeout = max(0.0, next_ping - time.monotonic())
                if isinstance(sock, ssl.SSLSocket) and sock.pending():
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
                if isinstance(sock, ssl.SSLSocket) and sock.pending():
                    self._read(sock)
                if self._inflight or self._out:
                    self._write(sock)
                if self._lame:
                    raise _Lost("server entered lame duck mode")
                now = time.monotonic()
                if now >= next_ping:
                    next_ping = now + self.ping_interval
                    if self._outstanding_pings >= self.max_outstanding_pings:
                        raise _Lost(f"stale connection: no PONG to {self._outstanding_pings} "
                                    f"PINGs over {self._outstanding_pings * self.ping_interval:g}s")
                    with self._lock:
                        self._outstanding_pings += 1
                        self._pongs.append(None)
                        self._out.append(PING)
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
                raise _Lost("server closed the connection" +
                            (f" after -ERR {self._last_err!r}" if self._last_err else ""))
            self._in_bytes += len(data)
            self._process(data)
            if len(data) < RECV_SIZE and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                return

    def _write(self, sock: socket.socket) -> None:
        if not self._inflight:
            with self._lock:
                if not self._out:
                    return
                self._inflight = self._out
                self._inflight_sent = 0
                self._out = []
                self._out_bytes = 0
                self._cond.notify_all()
        data = b"".join(self._inflight)
        view = memoryview(data)[self._inflight_sent:]
        while view:
            try:
                n = sock.send(view[: 1 << 20])
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                    ssl.SSLWantReadError):
                return
            self._inflight_sent += n
            self._out_bytes_total += n
            view = view[n:]
        self._inflight = []
        self._inflight_sent = 0

    def _process(self, data: bytes) -> None:
        groups, ctrl = self._parser.feed(data)
        if groups:
            now = time.time()
            t_ns = int(now * 1e9)
            for sid, rows in groups.items():
                self._in_msgs += len(rows)
                if sid == self._resp_sid:
                    self._on_replies(rows, now)
                    continue
                sub = self._by_sid.get(sid)
                if sub is None:
                    self._unknown_sid += len(rows)
                    continue
                if not sub._deliver(rows, now, t_ns):
                    self._forget(sub)
        for op, arg in ctrl:
            if op == "PING":
                with self._lock:
                    self._out.append(PONG)
            elif op == "PONG":
                self._outstanding_pings = 0
                with self._lock:
                    waiter = self._pongs.popleft() if self._pongs else None
                if waiter is not None:
                    waiter.event.set()
            elif op == "INFO":
                assert isinstance(arg, dict)
                self._on_info(arg)
            elif op == "-ERR":
                self._on_err(str(arg))

    def _on_replies(self, rows: list[RawMsg], now: float) -> None:
        plen = len(self._resp_prefix)
        for row in rows:
            token = row[0][plen:].decode()
            waiter = self._resp_map.pop(token, None)
            if waiter is None:
                self._late_replies += 1
                continue
            waiter.msg = Msg.from_raw(*row, time=now, conn=self)
            waiter.event.set()

    def _on_info(self, info: dict[str, Any]) -> None:
        self.server_info = {**self.server_info, **info}
        mp = info.get("max_payload")
        if isinstance(mp, int) and mp > 0:
            self.max_payload = mp
            # Clamp: a server claiming a huge max_payload must not unbound our buffers.
            self._parser.max_payload = min(max(mp, 1024) + 64 * 1024, HARD_MAX_FRAME)
        if self._discovery:
            known = {(s.host, s.port) for s in self._pool}
            for url in info.get("connect_urls") or []:
                try:
                    s = parse_url(url if "://" in url else f"{self._server.scheme}://{url}",
                                  discovered=True)
                except BadInputError:
                    continue
                if (s.host, s.port) not in known:
                    self._pool.append(s)
                    known.add((s.host, s.port))
        if info.get("ldm"):
            self._report(f"{self._server.url} entered lame duck mode; moving to another server")
            self._lame = True

    def _on_err(self, text: str) -> None:
        low = text.lower()
        self._last_err = text
        if "permissions violation" in low:
            self._report(f"permissions violation: {text}")
        elif "invalid" in low and "subject" in low:
            self._report(f"server rejected a subject: {text}")
        else:
            self._report(f"server error: {text}")

    def _report(self, text: str) -> None:
        self.errors.append((time.time(), text))
        log.warning("natsbook: %s", text)
        if self._error_callback is not None:
            try:
                self._error_callback(text)
            except Exception:  # a faulty error callback must not kill the reader
                log.exception("natsbook: error_callback raised")

    # ------------------------------------------------------------------ reconnect
    def _on_disconnect(self, reason: str) -> None:
        now = time.time()
        with self._lock:
            self._status = "reconnecting"
            self._gaps.append(Gap(now, None, self._server.url, reason))
            unsent: list[bytes] = []
            sent = self._inflight_sent
            pos = 0
            for frame in self._inflight:
                end = pos + len(frame)
                if end > sent and frame.startswith(_PUB_PREFIXES):
                    unsent.append(frame)
                pos = end
            unsent.extend(f for f in self._out if f.startswith(_PUB_PREFIXES))
            self._inflight = []
            self._inflight_sent = 0
            self._out = unsent
            self._out_bytes = sum(len(f) for f in unsent)
            waiters = list(self._pongs)
            self._pongs.clear()
            self._outstanding_pings = 0
            self._cond.notify_all()
        for w in waiters:
            if w is not None:
                w.lost = True
                w.event.set()
        self._report(f"disconnected from {self._server.url}: {reason}")
        self._shutdown_socket()

    def _shutdown_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _reconnect_loop(self) -> bool:
        if not self._reconnect_allowed:
            self._set_closed("disconnected and reconnect=False")
            return False
        attempt = 0
        lame = self._server
        refused: set[str] = set()
        while not self._stop.is_set():
            pool = list(self._pool)
            if lame in pool and len(pool) > 1:
                # Leave a lame-duck (or failed) server for last; start with the next one.
                i = pool.index(lame)
                pool = pool[i + 1:] + pool[:i + 1]
            for server in pool:
                if self._stop.is_set():
                    return False
                try:
                    sock, info, rest = handshake(server, self._creds, self._tls, name=self.name,
                                                 timeout=self.connect_timeout, echo=self._echo)
                except (NatsbookError, OSError) as exc:
                    log.debug("natsbook: reconnect to %s failed: %s", server.url, exc)
                    text = str(exc).removeprefix("natsbook: ")
                    if isinstance(exc, (AuthError, TLSError)) and text not in refused:
                        # Not transient: say so once, or the user only sees "reconnecting".
                        refused.add(text)
                        self._report(f"reconnect refused: {text}")
                    continue
                try:
                    self._resume(sock, info, rest, server)
                except ProtocolError as exc:
                    # Must not kill the I/O thread: drop this server's socket, try the next.
                    self._shutdown_socket()
                    self._report(f"protocol error from {server.url} on reconnect: {exc}")
                    continue
                return True
            attempt += 1
            if 0 <= self.max_reconnect_attempts < attempt:
                self._set_closed(f"gave up after {attempt} reconnect rounds")
                return False
            wait = min(self.reconnect_wait_max, self.reconnect_wait * (2 ** min(attempt, 10)))
            self._stop.wait(wait * random.uniform(0.5, 1.0))
        return False

    def _resubscribe_frames(self) -> list[bytes]:
        frames: list[bytes] = []
        for sub in self._subs.values():
            frames.append(encode_sub(sub.subject, sub.sid, sub.queue))
            if sub.max_msgs is not None:
                frames.append(encode_unsub(sub.sid, sub.max_msgs - sub.received))
        if self._resp_sid is not None:
            frames.append(encode_sub(self._resp_prefix + "*", int(self._resp_sid)))
        return frames

    def _move_off_lame_duck(self) -> None:
        """Move to another server without a gap (runs on the I/O thread).

        1. connect to another server, subscribe there and wait for its PONG (bytes that
           arrive meanwhile are kept and parsed after the switch);
        2. on the lame duck: send what is queued, UNSUB everything, PING, and keep reading
           until every outstanding PONG is in, so nothing routed there is left behind;
        3. switch sockets and record the few milliseconds of the move as a gap: a message
           routed while the cluster's interest graph catches up can still be missing (old
           interest gone, new one not yet known where it was published) or arrive on both
           sockets; core NATS cannot rule out both. With no other server to go to, stay on
           the lame duck until it closes the connection.
        """
        old = self._sock
        assert old is not None
        lame = self._server
        started = time.time()
        deadline = time.monotonic() + self.connect_timeout
        new: socket.socket | None = None
        for server in [s for s in self._pool if s != lame]:
            if self._stop.is_set():
                return
            try:
                sock, info, rest = handshake(server, self._creds, self._tls, name=self.name,
                                             timeout=self.connect_timeout, echo=self._echo)
            except (NatsbookError, OSError) as exc:
                log.debug("natsbook: lame duck move to %s failed: %s", server.url, exc)
                continue
            try:
                with self._lock:
                    frames = self._resubscribe_frames()
                sock.settimeout(max(deadline - time.monotonic(), 0.05))
                sock.sendall(b"".join(frames) + PING)
                probe = Parser(self._parser.max_payload)
                buf = bytearray(rest)
                got_pong = any(op == "PONG" for op, _ in probe.feed(rest)[1]) if rest else False
                while not got_pong:
                    sock.settimeout(max(deadline - time.monotonic(), 0.01))
                    data = sock.recv(RECV_SIZE)
                    if not data:
                        raise ConnectionResetError("closed while subscribing")
                    buf += data
                    got_pong = any(op == "PONG" for op, _ in probe.feed(data)[1])
            except (NatsbookError, OSError, ssl.SSLError) as exc:
                log.debug("natsbook: lame duck move to %s failed: %s", server.url, exc)
                sock.close()
                continue
            new, new_info, new_server = sock, info, server
            break
        if new is None:
            self._report(f"{lame.url} is in lame duck mode but no other server answered; "
                         "staying until it closes the connection")
            return
        # Drain the lame duck: everything queued so far goes there, then UNSUB + PING; the
        # marker is the last PONG owed by the lame duck.
        marker = _Waiter()
        with self._lock:
            frames = self._inflight[:]
            sent = self._inflight_sent
            frames.extend(self._out)
            self._inflight, self._inflight_sent = [], 0
            self._out, self._out_bytes = [], 0
            frames.extend(encode_unsub(sid) for sid in self._subs)
            if self._resp_sid is not None:
                frames.append(encode_unsub(int(self._resp_sid)))
            frames.append(PING)
            self._pongs.append(marker)
            self._cond.notify_all()
        try:
            old.settimeout(max(deadline - time.monotonic(), 0.05))
            try:
                old.sendall(memoryview(b"".join(frames))[sent:])
            except (OSError, ssl.SSLError):
                # Publishes not known to be out go to the new server (as after a disconnect).
                pos, again = 0, []
                for frame in frames:
                    pos += len(frame)
                    if pos > sent and frame.startswith(_PUB_PREFIXES):
                        again.append(frame)
                with self._lock:
                    self._out[:0] = again
                    self._out_bytes = sum(len(f) for f in self._out)
                raise
            while not marker.event.is_set():
                old.settimeout(max(deadline - time.monotonic(), 0.01))
                data = old.recv(RECV_SIZE)
                if not data:
                    break
                self._in_bytes += len(data)
                self._process(data)
        except (OSError, ssl.SSLError, ProtocolError) as exc:
            log.debug("natsbook: draining the lame duck %s: %s", lame.url, exc)
        if self._stop.is_set():  # close() was called meanwhile
            new.close()
            return
        with self._lock:
            # PONGs the lame duck never sent: those flush() calls retry on the new server.
            while not marker.event.is_set() and self._pongs:
                w = self._pongs.popleft()
                if w is not None:
                    w.lost = True
                    w.event.set()
            self._pongs.appendleft(None)  # the PING sent with the SUBs on the new socket
            try:
                old.close()
            except OSError:
                pass
            self._adopt(new, new_info, bytes(buf), new_server)
            self._reconnects += 1
            self._last_err = ""
            # Not a disconnect, but while the cluster learns the new interest and forgets the
            # old one, a message routed then can be missing or arrive twice. Say so.
            self._gaps.append(Gap(started, time.time(), lame.url,
                                  f"moved off lame duck to {new_server.url}: messages routed "
                                  "during the switch may be missing or duplicated"))
            self._cond.notify_all()
        self._report(f"moved from lame duck {lame.url} to {new_server.url} (subscriptions "
                     "made on the new server before leaving the old one)")

    def _resume(self, sock: socket.socket, info: dict[str, Any], rest: bytes,
                server: ServerURL) -> None:
        with self._lock:
            self._adopt(sock, info, rest, server)
            self._out = self._resubscribe_frames() + self._out
            self._out_bytes = sum(len(f) for f in self._out)
            self._status = "connected"
            self._reconnects += 1
            if self._gaps and self._gaps[-1].end is None:
                self._gaps[-1].end = time.time()
            self._last_err = ""
            self._cond.notify_all()
        self._report(f"reconnected to {server.url}")

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
            waiters = [w for w in self._pongs if w is not None] + list(self._resp_map.values())
            self._pongs.clear()
            self._resp_map.clear()
        for w in waiters:
            w.lost = True
            w.event.set()

    # ------------------------------------------------------------------ sending
    def _queue(self, frame: bytes, timeout: float | None = None) -> None:
        with self._lock:
            if self._status == "closed":
                raise ConnectionClosedError(
                    f"connection is closed ({self._closed_reason or 'close() was called'}) - "
                    "open a new one with natsbook.connect()")
            if self._status == "reconnecting":
                if self._out_bytes + len(frame) > self.reconnect_buffer_size:
                    raise NotConnectedError(
                        f"disconnected from {self._server.url} and the reconnect buffer is full "
                        f"({self.reconnect_buffer_size} bytes) - wait for the reconnect "
                        "(conn.status) or raise reconnect_buffer_size")
            elif self._out_bytes > self.pending_size:
                deadline = time.monotonic() + (timeout if timeout is not None else 10.0)
                while self._out_bytes > self.pending_size and self._status == "connected":
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Timeout("the server is not taking data fast enough (send buffer "
                                      f"of {self.pending_size} bytes full) - slow down publishing")
                    self._cond.wait(left)
            was_empty = not self._out
            self._out.append(frame)
            self._out_bytes += len(frame)
        if was_empty:
            self._wake()

    def _check_open(self) -> None:
        if self._status == "closed":
            raise ConnectionClosedError(
                f"connection is closed ({self._closed_reason or 'close() was called'}) - "
                "open a new one with natsbook.connect()")

    def _build_pub(self, subject: str, data: Any, reply: str | None,
                   headers: Mapping[str, Any] | None) -> bytes:
        check_publish(subject)
        if reply is not None:
            check_publish(reply)
        payload = encode_payload(data)
        hdr = encode_headers(headers) if headers else None
        size = len(payload) + (len(hdr) if hdr else 0)
        if size > self.max_payload:
            raise MaxPayloadError(size, self.max_payload)
        return encode_pub(subject.encode(), reply.encode() if reply else None, payload, hdr)

    def publish(self, subject: str, data: Any = b"", *, reply: str | None = None,
                headers: Mapping[str, Any] | None = None) -> None:
        """Publish a message. Returns once queued; ``flush()`` waits until the server has it.

        Args:
            subject: a concrete subject (no wildcards).
            data: bytes-like, str (UTF-8), or a dict/list/number (sent as JSON).
            reply: optional reply subject.
            headers: mapping of key -> value or list of values (repeated keys are kept).

        Raises:
            BadSubjectError, BadHeaderError, MaxPayloadError, BadInputError: bad input; nothing
                was sent.
            NotConnectedError: reconnecting and the reconnect buffer is full.
            ConnectionClosedError: the connection was closed.
        """
        self._check_open()
        self._queue(self._build_pub(subject, data, reply, headers))
        self._out_msgs += 1

    def flush(self, timeout: float = 10.0) -> float:
        """Barrier: returns once the server has processed everything sent before it.

        Returns the round-trip time in seconds. Waits through a reconnect within `timeout`.

        Raises:
            FlushTimeout: no answer within `timeout`.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._check_open()
            waiter = _Waiter()
            with self._lock:
                while self._status != "connected":
                    left = deadline - time.monotonic()
                    if left <= 0 or self._status == "closed":
                        self._check_open()
                        raise FlushTimeout(timeout)
                    self._cond.wait(left)
                was_empty = not self._out
                self._pongs.append(waiter)
                self._out.append(PING)
                self._out_bytes += len(PING)
            if was_empty:
                self._wake()
            start = time.perf_counter()
            if not waiter.event.wait(max(deadline - time.monotonic(), 0)):
                raise FlushTimeout(timeout)
            if not waiter.lost:
                self._rtt = time.perf_counter() - start
                return self._rtt
            if time.monotonic() >= deadline:
                self._check_open()
                raise FlushTimeout(timeout)

    def rtt(self, timeout: float = 5.0) -> float:
        """Round-trip time to the server in seconds (one PING/PONG)."""
        return self.flush(timeout)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, subject: str, *, queue: str | None = None, max_msgs: int | None = None,
                  callback: Callable[[Msg], Any] | None = None, capture: bool = True,
                  max_rows: int | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES,
                  spill: str | os.PathLike[str] | None = None,
                  pending_msgs: int = DEFAULT_PENDING_MSGS,
                  pending_bytes: int = DEFAULT_PENDING_BYTES,
                  batch_callback: Callable[[list[RawMsg], float], Any] | None = None,
                  timeout: float = 10.0) -> Subscription:
        """Subscribe and capture. Returns once the server has registered the subscription.

        Args:
            subject: subject or pattern (``*`` one token, ``>`` the rest).
            queue: queue group: each message goes to one member of the group.
            max_msgs: unsubscribe automatically after this many messages.
            callback: called with each Msg on a dispatcher thread (never the reader);
                exceptions are counted in stats and reported in ``conn.errors``.
            capture: keep messages in the subscription's store (for ``to_pandas``).
            max_rows / max_bytes: store bounds; oldest rows are evicted first and counted.
            spill: directory for Parquet spill: sealed rows go to disk instead of eviction.
            pending_msgs / pending_bytes: callback queue limits; overflow is dropped, counted.
            batch_callback: for high rates: called on the dispatcher thread with each batch
                the reader received, as a list of raw ``(subject, reply, header block,
                payload)`` bytes tuples, and its receive time (seconds since the epoch).
            timeout: how long to wait for the server to confirm.
        """
        self._check_open()
        check_subscribe(subject)
        if queue is not None:
            check_queue(queue)
        if max_msgs is not None and (not isinstance(max_msgs, int) or max_msgs < 1):
            raise BadInputError(f"max_msgs={max_msgs!r} must be a positive int or None")
        if callback is not None and not callable(callback):
            raise BadInputError("callback must be callable (it receives one Msg)")
        if batch_callback is not None and (callback is not None or not callable(batch_callback)):
            raise BadInputError("batch_callback must be callable and comes instead of callback")
        store = (CaptureStore(max_rows=max_rows, max_bytes=max_bytes, spill=spill,
                              budget=self.capture_budget)
                 if capture else None)
        sid = next(self._sids)
        sub = Subscription(self, sid, subject, queue, max_msgs, store, callback,
                           pending_msgs=pending_msgs, pending_bytes=pending_bytes,
                           batch_callback=batch_callback)
        frame = encode_sub(subject, sid, queue)
        if max_msgs is not None:
            frame += encode_unsub(sid, max_msgs)
        with self._lock:
            self._subs[sid] = sub
            self._by_sid[str(sid).encode()] = sub
            self._history.append(sub)
            connected = self._status == "connected"
            if connected:
                self._out.append(frame)
                self._out_bytes += len(frame)
        if connected:
            self._wake()
            try:
                self.flush(timeout)
            except FlushTimeout:
                self._forget(sub)
                raise
        return sub

    def _forget(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.pop(sub.sid, None)
            self._by_sid.pop(str(sub.sid).encode(), None)
        sub._stop()

    def unsubscribe(self, sub: Subscription | str, *, max_msgs: int | None = None) -> None:
        """Unsubscribe now, or after `max_msgs` messages in total (auto-unsubscribe)."""
        if isinstance(sub, str):
            matching = [s for s in self._subs.values() if s.subject == sub]
            if not matching:
                raise BadInputError(f"no active subscription on {sub!r} - see conn.subscriptions")
            for s in matching:
                self.unsubscribe(s, max_msgs=max_msgs)
            return
        if not sub.active:
            return
        if max_msgs is not None and max_msgs > sub.received:
            sub.max_msgs = max_msgs
            if self._status != "closed":
                self._queue(encode_unsub(sub.sid, max_msgs))
            return
        self._forget(sub)
        if self._status == "connected":
            self._queue(encode_unsub(sub.sid))

    @property
    def subscriptions(self) -> list[Subscription]:
        """Active subscriptions (user ones; the request inbox is internal)."""
        with self._lock:
            return list(self._subs.values())

    # ------------------------------------------------------------------ request / reply
    def _ensure_resp_sub(self, timeout: float) -> None:
        if self._resp_sid is not None:
            return
        with self._lock:
            if self._resp_sid is not None:
                return
            sid = next(self._sids)
            self._resp_sid = str(sid).encode()
            frame = encode_sub(self._resp_prefix + "*", sid)
            if self._status == "connected":
                self._out.append(frame)
                self._out_bytes += len(frame)
        self._wake()
        if self._status == "connected":
            self.flush(timeout)

    def new_inbox(self) -> str:
        """A unique inbox subject for this connection."""
        return f"{self._inbox_prefix}.{next(self._resp_tokens)}"

    def request(self, subject: str, data: Any = b"", *, timeout: float = 5.0,
                headers: Mapping[str, Any] | None = None) -> Msg:
        """Send a request and wait for the first reply.

        Raises:
            NoRespondersError: nobody is subscribed to `subject`.
            RequestTimeout: no reply within `timeout` seconds.
            ServiceError: the responder answered with a Nats-Service-Error header.
        """
        self._check_open()
        start = time.monotonic()
        self._ensure_resp_sub(timeout)
        token = str(next(self._resp_tokens))
        frame = self._build_pub(subject, data, self._resp_prefix + token, headers)
        waiter = _Waiter()
        self._resp_map[token] = waiter
        try:
            self._queue(frame)
            self._out_msgs += 1
            left = timeout - (time.monotonic() - start)
            if not waiter.event.wait(max(left, 0)):
                raise RequestTimeout(subject, timeout)
        finally:
            self._resp_map.pop(token, None)
        if waiter.lost or waiter.msg is None:
            self._check_open()
            raise RequestTimeout(subject, timeout)
        msg = waiter.msg
        if msg.status == 503:
            raise NoRespondersError(subject)
        if msg.headers is not None and "Nats-Service-Error" in msg.headers:
            code = msg.headers.get("Nats-Service-Error-Code", "500")
            raise ServiceError(subject, int(code) if code.isdigit() else 500,
                               msg.headers["Nats-Service-Error"])
        return msg

    def serve(self, subject: str, handler: Callable[[Msg], Any], *, queue: str | None = None,
              capture: bool = False, **kwargs: Any) -> Subscription:
        """Answer requests on `subject` with `handler(msg)`'s return value.

        The return value is sent as the reply (bytes, str, dict/list as JSON; a Msg's data;
        None sends an empty reply). An exception becomes an error reply with the
        ``Nats-Service-Error`` / ``Nats-Service-Error-Code: 500`` headers; the responder keeps
        serving. Use ``queue=`` to run a pool of workers.
        """
        if not callable(handler):
            raise BadInputError("handler must be callable: it receives a Msg, returns the reply")

        def respond(msg: Msg) -> None:
            if not msg.reply:
                return
            try:
                result = handler(msg)
            except Exception as exc:
                self.publish(msg.reply, str(exc).encode("utf-8", "replace"), headers={
                    "Nats-Service-Error": f"{type(exc).__name__}: {exc}".replace("\r", " ")
                    .replace("\n", " "),
                    "Nats-Service-Error-Code": "500",
                })
                raise
            if isinstance(result, Msg):
                self.publish(msg.reply, result.data,
                             headers=result.headers.to_dict() if result.headers else None)
            else:
                self.publish(msg.reply, result)

        return self.subscribe(subject, queue=queue, callback=respond, capture=capture, **kwargs)

    # ------------------------------------------------------------------ closing
    def drain(self, timeout: float = 10.0) -> DrainReport:
        """Unsubscribe everything, let callbacks finish, send what is queued, then close."""
        self._check_open()
        deadline = time.monotonic() + timeout
        subs = self.subscriptions
        with self._lock:
            self._status = "draining" if self._status == "connected" else self._status
        for sub in subs:
            with self._lock:
                self._subs.pop(sub.sid, None)
            if self._status in ("connected", "draining"):
                with self._lock:
                    self._out.append(encode_unsub(sub.sid))
        self._wake()
        errors: list[str] = []
        try:
            with self._lock:
                if self._status == "draining":
                    self._status = "connected"
            self.flush(max(deadline - time.monotonic(), 0.01))
        except NatsbookError as exc:
            errors.append(str(exc))
        for sub in subs:
            sub._stop()
        undelivered = 0
        for sub in subs:
            sub.wait_pending(max(deadline - time.monotonic(), 0.0))
            undelivered += sub.stats.pending
        # Publishes made by callbacks while draining.
        try:
            if self._status == "connected":
                self.flush(max(deadline - time.monotonic(), 0.01))
        except NatsbookError as exc:
            errors.append(str(exc))
        with self._lock:
            unsent = self._out_bytes + sum(len(f) for f in self._inflight) - self._inflight_sent
        self.close()
        return DrainReport(undelivered, unsent, tuple(errors))

    def close(self, timeout: float = 5.0) -> None:
        """Close now: stop the I/O thread, drop what was not sent, stop callbacks."""
        if self._status == "closed" and (self._thread is None or not self._thread.is_alive()):
            return
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._shutdown_socket()
        self._set_closed(self._closed_reason or "close() was called")
        with self._lock:
            subs = list(self._subs.values())
            self._subs.clear()
            self._by_sid.clear()
        for sub in subs:
            sub._stop(discard=True)
        for sub in subs:
            sub._join(min(timeout, 2.0))
        if self._wake_r >= 0:
            self._cleanup_fds()
        _live.discard(self)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> str:
        """"connected", "reconnecting", "draining" or "closed"."""
        return self._status

    @property
    def is_connected(self) -> bool:
        return self._status == "connected"

    @property
    def is_closed(self) -> bool:
        return self._status == "closed"

    @property
    def connected_url(self) -> str | None:
        return self._server.url if self._status == "connected" else None

    @property
    def servers(self) -> list[str]:
        """The server pool (configured and discovered), credentials left out."""
        return [s.url for s in self._pool]

    @property
    def stats(self) -> dict[str, Any]:
        with self._lock:
            out_pending = self._out_bytes
        return {
            "in_msgs": self._in_msgs, "in_bytes": self._in_bytes,
            "out_msgs": self._out_msgs, "out_bytes": self._out_bytes_total,
            "reconnects": self._reconnects, "errors": len(self.errors),
            "pending_bytes": out_pending, "unknown_sid_msgs": self._unknown_sid,
            "late_replies": self._late_replies,
            "rtt_ms": None if self._rtt is None else round(self._rtt * 1000, 3),
        }

    def gaps(self) -> pd.DataFrame:
        """Disconnected intervals as a DataFrame: start, end (NaT while ongoing), duration,
        server, reason."""
        with self._lock:
            rows = [(g.start, g.end, g.server, g.reason) for g in self._gaps]
        frame = pd.DataFrame({
            "start": pd.to_datetime(pd.Series([r[0] for r in rows], dtype="float64"), unit="s",
                                    utc=True),
            "end": pd.to_datetime(pd.Series([r[1] for r in rows], dtype="float64"), unit="s",
                                  utc=True),
            "server": pd.Series([r[2] for r in rows], dtype="str"),
            "reason": pd.Series([r[3] for r in rows], dtype="str"),
        })
        frame.insert(2, "duration", frame["end"] - frame["start"])
        return frame

    def to_pandas(self, decode: str = "auto", *, last: int | None = None, since: Any = None,
                  subject: str | None = None) -> pd.DataFrame:
        """Messages of every capture on this connection (active and finished), oldest first,
        with a ``sub`` column naming the subscription's subject pattern."""
        tables = []
        for sub in list(self._history):
            if sub.store is None:
                continue
            t = sub.store.table()
            tables.append(t.append_column("sub", pa.array([sub.subject] * t.num_rows,
                                                          pa.string())))
        if not tables:
            from ._store import SCHEMA

            table = SCHEMA.empty_table().append_column("sub", pa.array([], pa.string()))
        else:
            table = pa.concat_tables(tables).sort_by("time")
        table = filter_table(table, subject=subject, since=since, last=last)
        frame = to_frame(table, decode)
        frame.insert(1, "sub", table["sub"].to_pandas())
        return frame

    def publish_frame(self, df: pd.DataFrame, *, subject: str | None = None,
                      data: str | None = None, headers: str | None = None,
                      rate: float | None = None, progress: bool | None = None) -> int:
        """Publish a DataFrame's rows back as messages (replay captured telemetry).

        Args:
            df: e.g. a capture from ``to_pandas()``.
            subject: a column of subjects, or one literal subject for every row; default the
                ``subject`` column.
            data: the payload column; default ``data`` if present, else the JSON columns are
                folded back into one object per row (dotted names nest; NaN keys are left out).
            headers: a column of header dicts; default ``headers`` if present.
            rate: messages per second (None: as fast as the connection takes them).
            progress: show a progress bar (default: on for long runs).

        Returns:
            The number of messages published (all flushed to the server).
        """
        from ._replay import publish_frame

        return publish_frame(self, df, subject=subject, data=data, headers=headers, rate=rate,
                             progress=progress)

    def __repr__(self) -> str:
        where = self._server.url
        return (f"<natsbook.Connection {where} {self._status} "
                f"subs={len(self._subs)} in={self._in_msgs} out={self._out_msgs}>")

