"""The send queue under the engine: frames wait in a list until the I/O thread writes them,
in batches; publishers wait for room past ``pending_size``; the I/O thread's own control
frames have a bounded share; and every published message is counted in exactly one place:
written, queued, half-sent, or dropped when the connection closed.

One shortcut, for plain TCP only: when nothing is queued or half-sent, the caller sends its
frame itself, under the engine's lock (so no other frame can get between), instead of waking
the I/O thread through the pipe. Waking the I/O thread was most of a request's cost (profiled:
the pipe write plus two thread switches per frame). What the socket does not take at once
becomes the I/O thread's half-sent batch, exactly as if it had started sending it, so ordering
and the reconnect buffer are unchanged. TLS (and any wrapped transport) always goes through
the I/O thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

from ..errors import ConnectionClosedError, NotConnectedError, Timeout
from ..wire._session import PingTracker
from ._events import Waiter
from ._transport import ServerURL

__all__ = ["CONTROL_ROOM"]

PUB_PREFIXES = (b"PUB ", b"HPUB ")
#: Bytes of the I/O thread's own control frames (PONG replies, keepalive PINGs) the send
#: queue may hold at once, on top of what publishers fill (see _queue_own).
CONTROL_ROOM = 64 * 1024


def count_pubs(frame: bytes) -> int:
    """Messages in a run of whole PUB/HPUB frames (request_batch queues many as one frame);
    0 for a control frame. Only for the rare paths that split a batch (drop, close)."""
    n = pos = 0
    while frame.startswith(PUB_PREFIXES, pos):
        eol = frame.index(b"\r\n", pos)
        size = int(frame[frame.rindex(b" ", pos, eol) + 1:eol])  # HPUB: the total size
        pos = eol + 2 + size + 2
        n += 1
    return n


class SendQueue:
    """The queue, the writer and the message counts; the engine owns the socket and state."""

    # The engine's, used here.
    _lock: threading.RLock
    _cond: threading.Condition
    _status: str
    _closed_reason: str
    _server: ServerURL
    _direct_sock: socket.socket | None
    _pings: PingTracker[Waiter]
    _report: Callable[[str], None]
    pending_size: int
    reconnect_buffer_size: int
    _out_msgs: int
    _out_bytes_total: int

    def _init_send_queue(self) -> None:
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._inflight: list[bytes] = []
        self._inflight_data = b""
        self._inflight_sent = 0
        # Every message publish() accepted is in exactly one of: written to a socket
        # (_out_msgs, stats "out_msgs"), queued (_out_msgs_queued: in _out), half-sent batch
        # (_inflight_msgs), or dropped when the connection closed (_unsent_msgs). Under _lock.
        self._out_msgs_queued = 0
        self._inflight_msgs = 0
        self._unsent_msgs = 0
        #: Published messages a flush() PONG has confirmed (close() skips its flush if all).
        self._confirmed_msgs = 0
        #: Bytes of _out that are the I/O thread's own PONG/PING frames (bound: CONTROL_ROOM).
        self._out_own_bytes = 0
        #: Why the connection is declared slow (the server does not read); "" while it is not.
        self._slow = ""

    def _wake(self, force: bool = False) -> None:
        raise NotImplementedError

    def _write(self, sock: socket.socket) -> None:
        join = False
        if not self._inflight:
            with self._lock:
                # Checked again under the lock: a caller's direct send may just have left a
                # half-sent frame there.
                if not self._inflight:
                    if not self._out:
                        return
                    self._inflight = self._out
                    self._inflight_msgs = self._out_msgs_queued
                    self._inflight_sent = 0
                    self._out = []
                    self._out_bytes = self._out_own_bytes = 0
                    self._out_msgs_queued = 0
                    self._cond.notify_all()
                    join = True
        if join:
            # Joined once per batch of frames, not again after every partial send.
            self._inflight_data = b"".join(self._inflight)
        view = memoryview(self._inflight_data)[self._inflight_sent:]
        sent = 0
        try:
            while view:
                try:
                    n = sock.send(view[: 1 << 20])
                except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                        ssl.SSLWantReadError):
                    return
                self._inflight_sent += n
                sent += n
                view = view[n:]
        finally:
            if sent:
                with self._lock:  # callers' direct sends count here too
                    self._out_bytes_total += sent
                    if not view:  # the whole batch is written: its messages are out
                        self._out_msgs += self._inflight_msgs
                        self._inflight_msgs = 0
        # _inflight last: a caller takes an empty _inflight as "nothing half-sent".
        self._inflight_data = b""
        self._inflight_sent = 0
        self._inflight = []

    def _send_direct(self, frame: bytes, msgs: int = 0) -> int:
        """Under the lock: send `frame` (carrying `msgs` messages) from the caller's thread
        when that keeps the order (plain TCP, connected, nothing queued or half-sent).
        Returns 0: not sent, queue it; 1: sent; 2: partly sent, now the I/O thread's half-sent
        batch (wake it)."""
        sock = self._direct_sock
        if sock is None or self._out or self._inflight or self._status != "connected":
            return 0
        try:
            n = sock.send(frame)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            return 0  # the I/O thread finds out why; the frame waits in the queue
        self._out_bytes_total += n
        if n == len(frame):
            self._out_msgs += msgs
            return 1
        if n == 0:
            return 0
        self._inflight_data = frame
        self._inflight_sent = n
        self._inflight_msgs = msgs
        self._inflight = [frame]
        return 2

    def _queue_own(self, frame: bytes) -> bool:
        """Queue a control frame of the I/O thread's own (a PONG reply, a keepalive PING).

        It counts in the send queue like a publish (publishers wait for room while the queue
        is past pending_size, PONGs included), but the I/O thread cannot wait for room: it is
        the writer. So its own frames may fill at most CONTROL_ROOM bytes of the queue at a
        time (a well-behaved server sends one PING in minutes and reads the PONG); past that
        the frame is not queued and the connection is declared slow (``_slow``: the I/O loop
        drops the connection and reconnects, as nats.go does when a write stalls). Publishers
        fill at most pending_size plus one frame; with these 64 KiB the queue stays bounded
        even against a server that floods PINGs and never reads, whatever its INFO says."""
        with self._lock:
            if self._out_own_bytes + len(frame) > CONTROL_ROOM:
                if not self._slow:
                    self._slow = (f"slow connection: the server does not read what we send "
                                  f"({self._out_own_bytes} bytes of our PONG/PING frames "
                                  f"queued, bound {CONTROL_ROOM}; {self._out_bytes} bytes "
                                  "queued in all)")
                return False
            self._out.append(frame)
            self._out_bytes += len(frame)
            self._out_own_bytes += len(frame)
            return True

    def _wait_for_room(self, timeout: float | None) -> None:
        """Under the lock: while connected and the send queue is past pending_size, wait for
        the I/O thread to take it (backpressure), at most `timeout` (None: 10 s).

        Raises:
            Timeout: the queue did not go below pending_size in time.
        """
        if self._status != "reconnecting" and self._out_bytes > self.pending_size:
            deadline = time.monotonic() + (timeout if timeout is not None else 10.0)
            while self._out_bytes > self.pending_size and self._status == "connected":
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout("the server is not taking data fast enough (send buffer "
                                  f"of {self.pending_size} bytes full) - slow down publishing")
                self._cond.wait(left)

    def _unsent_pubs(self) -> list[bytes]:
        """Under the lock: the publish frames of the half-sent batch not wholly written."""
        unsent: list[bytes] = []
        sent = self._inflight_sent
        pos = 0
        for frame in self._inflight:
            end = pos + len(frame)
            if end > sent and frame.startswith(PUB_PREFIXES):
                unsent.append(frame)
            pos = end
        return unsent

    def _drop_unsent(self) -> None:
        """The connection is over (closed, or reconnecting gave up): publishes never written
        are counted in ``stats["unsent_msgs"]`` and reported, and the queues are freed."""
        with self._lock:
            half = self._unsent_pubs()
            half_msgs = sum(count_pubs(f) for f in half)
            self._out_msgs += self._inflight_msgs - half_msgs
            lost = half_msgs + self._out_msgs_queued
            size = sum(map(len, half)) + sum(len(f) for f in self._out
                                             if f.startswith(PUB_PREFIXES))
            self._unsent_msgs += lost
            self._out, self._out_bytes, self._out_msgs_queued = [], 0, 0
            self._out_own_bytes = 0
            self._inflight, self._inflight_data = [], b""
            self._inflight_sent = self._inflight_msgs = 0
        if lost:
            self._report(f"closed with {lost} published message{'s' if lost != 1 else ''} "
                         f"({size} bytes) not sent to {self._server.url}: counted in "
                         "stats['unsent_msgs']")

    def _queue(self, frame: bytes, timeout: float | None = None, *, msgs: int = 0,
               direct: bool = False) -> None:
        """Queue `frame` for the I/O thread (waiting for room while connected); `msgs`: how
        many messages it carries, counted in ``stats["out_msgs"]`` once written.
        `direct`: the caller waits for an answer to this frame, so send it now when nothing is
        queued (plain publishes are left to the I/O thread, which sends them in batches)."""
        with self._lock:
            if self._out_bytes > self.pending_size:
                self._wait_for_room(timeout)
            # Checked after any wait: the state may have changed meanwhile.
            if self._status == "closed":
                raise ConnectionClosedError(
                    f"connection is closed ({self._closed_reason or 'close() was called'}) - "
                    "open a new one with natsbook.connect()")
            if self._status == "reconnecting" and \
                    self._out_bytes + len(frame) > self.reconnect_buffer_size:
                raise NotConnectedError(
                    f"disconnected from {self._server.url} and the reconnect buffer is full "
                    f"({self.reconnect_buffer_size} bytes) - wait for the reconnect "
                    "(conn.status) or raise reconnect_buffer_size")
            sent = self._send_direct(frame, msgs) if direct else 0
            if sent == 1:
                return
            was_empty = not self._out
            if not sent:
                self._out.append(frame)
                self._out_bytes += len(frame)
                self._out_msgs_queued += msgs
        if was_empty:
            self._wake()
