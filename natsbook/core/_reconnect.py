"""Reconnecting: the I/O thread's outer loop, the reconnect rounds over the server pool with
backoff and jitter, restoring subscriptions, and moving off a lame-duck server make-before-break.
"""

from __future__ import annotations

import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    AuthError,
    NatsbookError,
    ProtocolError,
    TLSError,
)
from ..wire._protocol import (
    PING,
    Parser,
    encode_sub,
    encode_unsub,
)
from ._ioloop import RECV_SIZE, Gap, IOLoop, Lost, Waiter, log
from ._sendqueue import PUB_PREFIXES, count_pubs
from ._transport import ServerURL, handshake

__all__: list[str] = []


class Reconnecting(IOLoop):
    """Adds the reconnect machinery to the engine."""

    # ------------------------------------------------------------------ I/O thread
    def _run(self) -> None:
        while not self._stop.is_set():
            lame = False
            try:
                self._io_loop()
                reason = "closed"
            except Lost as exc:
                reason = str(exc)
                lame = self._info.lame_duck
            except ProtocolError as exc:
                reason = f"protocol error: {exc}"
                self._report(reason)
            except (OSError, ssl.SSLError) as exc:
                reason = f"connection error: {str(exc).removeprefix('natsbook: ')}"
            except Exception as exc:  # never leave the I/O thread silently dead
                reason = f"internal error: {type(exc).__name__}: {exc}"
                self._report(f"{reason} - reconnecting; please report this")
            if self._stop.is_set():
                break
            if lame and self._sock is not None:
                # Make before break: the lame duck still serves us while we move.
                self._info.reset()
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
        if self._status == "closed":
            # Gave up reconnecting, or close() stopped waiting for this thread: nothing writes
            # any more, so what is left was never sent. (Else close() counts it.)
            self._drop_unsent()
        if self._stop.is_set() and self._closed_fds_deferred:
            self._cleanup_fds()  # close() left the wake pipe to this thread

    # ------------------------------------------------------------------ reconnect
    def _on_disconnect(self, reason: str) -> None:
        now = time.time()
        with self._lock:
            self._status = "reconnecting"
            self._direct_sock = None
            self._gaps.append(Gap(now, None, self._server.url, reason))
            # Publishes not wholly written go out again after the reconnect; frames written
            # whole count as sent (the server may not have processed them: see gaps()).
            unsent = self._unsent_pubs()
            again = sum(count_pubs(f) for f in unsent)
            self._out_msgs += self._inflight_msgs - again
            self._out_msgs_queued += again
            self._inflight_msgs = 0
            unsent.extend(f for f in self._out if f.startswith(PUB_PREFIXES))
            self._inflight = []
            self._inflight_data = b""
            self._inflight_sent = 0
            self._out = unsent
            self._out_bytes = sum(len(f) for f in unsent)
            self._out_own_bytes = 0
            self._slow = ""
            waiters = self._pings.reset()
            self._cond.notify_all()
        for w in waiters:
            if w is not None:
                w.lost = True
                w.event.set()
        self._report(f"disconnected from {self._server.url}: {reason}")
        self._shutdown_socket()

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
            # As nats.go: no server is tried again within reconnect_wait of its last attempt
            # or connect, or a server that drops us right after the handshake is reconnected
            # to in a storm (a success resets the backoff below).
            members = set(pool)
            last = self._last_attempt = {s: t for s, t in self._last_attempt.items()
                                         if s in members}
            tried = False
            for server in pool:
                if self._stop.is_set():
                    return False
                now = time.monotonic()
                if server in last and now - last[server] < self.reconnect_wait:
                    continue
                last[server] = now
                tried = True
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
                if self._stop.is_set():  # close() ran during the handshake
                    sock.close()
                    return False
                try:
                    self._resume(sock, info, rest, server)
                except ProtocolError as exc:
                    # Must not kill the I/O thread: drop this server's socket, try the next.
                    self._shutdown_socket()
                    self._report(f"protocol error from {server.url} on reconnect: {exc}")
                    continue
                return True
            if not tried:
                # Every server was tried (or connected to) too recently: wait for the first
                # to be due. Not a round: the backoff and max_reconnect_attempts count on.
                due = min((last.get(s, 0.0) for s in pool), default=0.0) + self.reconnect_wait
                self._stop.wait(max(due - time.monotonic(), 0.001))
                continue
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
            sub._base = sub.received  # the new server counts this subscription from here
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
        marker = Waiter()
        with self._lock:
            self._direct_sock = None  # from here on, frames wait for the new socket
            frames = self._inflight[:]
            sent = self._inflight_sent
            frames.extend(self._out)
            self._inflight, self._inflight_sent, self._inflight_data = [], 0, b""
            self._out, self._out_bytes, self._out_own_bytes = [], 0, 0
            # Counted as half-sent while they go to the lame duck.
            self._inflight_msgs += self._out_msgs_queued
            self._out_msgs_queued = 0
            frames.extend(encode_unsub(sid) for sid in self._subs)
            if self._resp_sid is not None:
                frames.append(encode_unsub(int(self._resp_sid)))
            frames.append(PING)
            self._pings.sent(marker)
            self._cond.notify_all()
        try:
            old.settimeout(max(deadline - time.monotonic(), 0.05))
            outgoing = memoryview(b"".join(frames))[sent:]
            try:
                old.sendall(outgoing)
            except (OSError, ssl.SSLError):
                # Publishes not known to be out go to the new server (as after a disconnect).
                pos, again = 0, []
                for frame in frames:
                    pos += len(frame)
                    if pos > sent and frame.startswith(PUB_PREFIXES):
                        again.append(frame)
                with self._lock:
                    self._out[:0] = again
                    self._out_bytes = sum(len(f) for f in self._out)
                    n = sum(count_pubs(f) for f in again)
                    self._out_msgs += self._inflight_msgs - n
                    self._out_msgs_queued += n
                    self._inflight_msgs = 0
                raise
            with self._lock:
                self._out_bytes_total += len(outgoing)
                self._out_msgs += self._inflight_msgs
                self._inflight_msgs = 0
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
            while not marker.event.is_set() and self._pings:
                w = self._pings.pong()
                if w is not None:
                    w.lost = True
                    w.event.set()
            self._pings.sent_first(None)  # the PING sent with the SUBs on the new socket
            try:
                old.close()
            except OSError:
                pass
            self._slow = ""  # the lame duck's, not the new server's
            self._adopt(new, new_info, bytes(buf), new_server)
            self._reconnects += 1
            self._reports.last_err = ""
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
            if self._stop.is_set():  # close() won the race: do not come back to life
                sock.close()
                return
            self._adopt(sock, info, rest, server)
            self._out = self._resubscribe_frames() + self._out
            self._out_bytes = sum(len(f) for f in self._out)
            self._status = "connected"
            self._reconnects += 1
            if self._gaps and self._gaps[-1].end is None:
                self._gaps[-1].end = time.time()
            self._reports.last_err = ""
            self._cond.notify_all()
            hooks = list(self._reconnect_hooks)
        self._report(f"reconnected to {server.url}")
        if hooks:
            threading.Thread(target=self._run_hooks, args=(hooks,), daemon=True,
                             name="natsbook-reconnect-hooks").start()

    def _run_hooks(self, hooks: list[Callable[[], Any]]) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception as exc:  # reported; the next hook still runs
                self._report(f"after reconnect: {type(exc).__name__}: {exc}")
