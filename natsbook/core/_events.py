"""The engine's small parts: the one-shot signal and waiter a blocking call sleeps on, the
record of a disconnected interval (``Gap``), the registry that closes live connections at
exit, and the error reports (``conn.errors``, the user's ``error_callback`` on a thread of its
own). Split from ``_engine.py`` so that the I/O loop reads on its own."""

from __future__ import annotations

import _thread
import atexit
import logging
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..wire._msg import Msg

__all__ = ["Gap"]

log = logging.getLogger("natsbook")

live_connections: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:  # pragma: no cover - interpreter shutdown
    for conn in list(live_connections):
        try:
            conn.close(timeout=1.0)
        except Exception:
            pass


def has_pending(sock: socket.socket) -> bool:
    """Bytes readable without the socket polling readable: buffered TLS records, or payload a
    WebSocketStream (see _websocket.py) has already decoded."""
    pending = getattr(sock, "pending", None)
    return bool(pending is not None and pending())


class Lost(Exception):
    """The current socket is gone; carries the reason."""


class _Signal:
    """A one-shot event on one bare lock: what threading.Event does through a Condition (a
    new lock and a Python-level waiter list per wait) costs more than a request's own work."""

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._flag = False

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            try:
                self._lock.release()
            except RuntimeError:  # set twice at once (a reply racing close()): already set
                pass

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            self._lock.release()  # stays set for any later wait
            return True
        return self._flag


class Waiter:
    __slots__ = ("error", "event", "lost", "msg")

    def __init__(self) -> None:
        self.event = _Signal()
        self.lost = False
        self.msg: Msg | None = None
        self.error = ""


@dataclass(slots=True)
class Gap:
    """A disconnected interval: messages published then may be missing from captures."""

    start: float
    end: float | None
    server: str
    reason: str


class Reports:
    """What went wrong on a connection, kept in ``errors`` (the newest 200), logged, and told
    to the user's ``error_callback`` on a thread of its own (never on the I/O thread or under
    the engine's lock: the callback may well call back into the connection). The engine owns
    one; ``conn.errors`` is its ``errors``."""

    def __init__(self, callback: Callable[[str], Any] | None) -> None:
        self.errors: deque[tuple[float, str]] = deque(maxlen=200)
        #: The text of the server's last -ERR (said when the server then closes).
        self.last_err = ""
        self._callback = callback
        self._lock = threading.Lock()
        self._queue: deque[str] = deque(maxlen=1000)
        self._thread: threading.Thread | None = None

    def server_error(self, text: str) -> None:
        """A -ERR from the server."""
        low = text.lower()
        self.last_err = text
        if "permissions violation" in low:
            self.report(f"permissions violation: {text}")
        elif "invalid" in low and "subject" in low:
            self.report(f"server rejected a subject: {text}")
        else:
            self.report(f"server error: {text}")

    def report(self, text: str) -> None:
        self.errors.append((time.time(), text))
        log.warning("natsbook: %s", text)
        if self._callback is not None:
            with self._lock:
                self._queue.append(text)
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run_callbacks, daemon=True,
                        name="natsbook-error-callback")
                    self._thread.start()

    def _run_callbacks(self) -> None:
        cb = self._callback
        assert cb is not None
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                text = self._queue.popleft()
            try:
                cb(text)
            except Exception:  # a faulty error callback must not stop the others
                log.exception("natsbook: error_callback raised")
