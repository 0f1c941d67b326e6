"""Publishing, the flush barrier and request/reply: the calls that send on a connection and,
for flush and request, wait for the server's or a responder's answer. Mixed into
:class:`natsbook.client.Connection`; split from ``_connection.py`` along that seam."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..errors import (
    FlushTimeout,
    MaxPayloadError,
    NoRespondersError,
    ProtocolError,
    RequestTimeout,
    ServiceError,
)
from ..wire._msg import Msg, encode_payload, header_items
from ..wire._protocol import (
    PING,
    encode_headers,
    encode_pub,
    encode_sub,
    service_error_code,
)
from ..wire._subjects import check_publish
from ._ioloop import Waiter
from ._reconnect import Reconnecting

__all__: list[str] = []

#: Valid publish subjects -> their frame's head, b"PUB <subject> " (shared by connections:
#: a subject's validity depends on nothing else). Emptied when full.
_PUB_HEADS: dict[str, bytes] = {}
_PUB_HEADS_MAX = 4096


class Publishing(Reconnecting):
    """publish / flush / rtt / request (with the connection's one reply subscription)."""

    def _build_pub(self, subject: str, data: Any, reply: str | None,
                   headers: Mapping[str, Any] | None, *, own_reply: bool = False) -> bytes:
        check_publish(subject)
        if reply is not None and not own_reply:  # natsbook's own inboxes are valid
            check_publish(reply)
        payload = encode_payload(data)
        hdr = encode_headers(header_items(headers)) if headers else None
        size = len(payload) + (len(hdr) if hdr else 0)
        if size > self.max_payload:
            raise MaxPayloadError(size, self.max_payload)
        return encode_pub(subject.encode(), reply.encode() if reply else None, payload, hdr)

    def publish(self, subject: str, data: Any = b"", *, reply: str | None = None,
                headers: Mapping[str, Any] | None = None) -> None:
        """See :meth:`natsbook.Connection.publish`."""
        if self._status == "closed":
            self._check_open()
        if reply is None and not headers and type(data) is bytes:
            # The loop case, without the general path's calls (profiled: they were a third of
            # a publish); the same checks in the same order. A subject seen before was checked
            # then: its "PUB <subject> " is kept.
            head = _PUB_HEADS.get(subject) if type(subject) is str else None
            if head is None:
                head = b"PUB %b " % check_publish(subject).encode()
                if len(_PUB_HEADS) >= _PUB_HEADS_MAX:
                    _PUB_HEADS.clear()
                _PUB_HEADS[subject] = head
            frame = b"%b%d\r\n%b\r\n" % (head, len(data), data)
            if len(data) > self.max_payload:
                raise MaxPayloadError(len(data), self.max_payload)
            self._queue(frame, msgs=1)
            return
        self._queue(self._build_pub(subject, data, reply, headers), msgs=1)

    def flush(self, timeout: float = 10.0) -> float:
        """See :meth:`natsbook.Connection.flush`."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_open()
            waiter = Waiter()
            with self._lock:
                while self._status != "connected" or self._out_bytes > self.pending_size:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._status == "closed":
                        self._check_open()
                        raise FlushTimeout(timeout)
                    self._cond.wait(left)
                start = time.perf_counter()
                # The PONG confirms every message queued before this PING.
                mark = self._published_msgs()
                self._pings.sent(waiter)
                direct = self._send_direct(PING)
                was_empty = not self._out and direct != 1
                if not direct:
                    self._out.append(PING)
                    self._out_bytes += len(PING)
            if was_empty:
                self._wake()
            try:
                answered = waiter.event.wait(max(deadline - time.monotonic(), 0))
            except BaseException:  # Ctrl-C: the PONG, when it comes, is owed to no one
                self._drop_waiter(waiter)
                raise
            if not answered:
                self._drop_waiter(waiter)
                raise FlushTimeout(timeout)
            if not waiter.lost:
                self._rtt = time.perf_counter() - start
                with self._lock:
                    self._confirmed_msgs = max(self._confirmed_msgs, mark)
                return self._rtt
            if time.monotonic() >= deadline:
                self._check_open()
                raise FlushTimeout(timeout)

    def _published_msgs(self) -> int:
        """Under the lock: every message publish() (or request) accepted on this connection:
        written, queued, half-sent or dropped at close."""
        return self._out_msgs + self._out_msgs_queued + self._inflight_msgs + self._unsent_msgs

    def _drop_waiter(self, waiter: Waiter) -> None:
        """Forget an abandoned flush: its PONG still arrives in order, for no one."""
        with self._lock:
            self._pings.forget(waiter)

    def _queue_nowait(self, frame: bytes) -> None:
        """Queue a control frame without waiting for room (cleanup paths that must not block);
        nothing to do on a closed connection."""
        with self._lock:
            if self._status == "closed":
                return
            was_empty = not self._out
            self._out.append(frame)
            self._out_bytes += len(frame)
        if was_empty:
            self._wake()

    def rtt(self, timeout: float = 5.0) -> float:
        """Round-trip time to the server in seconds (one PING/PONG)."""
        return self.flush(timeout)

    # ------------------------------------------------------------------ request / reply
    def _ensure_resp_sub(self, timeout: float) -> None:
        if self._resp_sid is not None:
            return
        with self._lock:
            if self._resp_sid is not None:
                return
            sid = self._subs.new_sid()
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
        """See :meth:`natsbook.Connection.request`."""
        self._check_open()
        start = time.monotonic()
        self._ensure_resp_sub(timeout)
        token = str(next(self._resp_tokens))
        frame = self._build_pub(subject, data, self._resp_prefix + token, headers,
                                own_reply=True)
        waiter = Waiter()
        try:
            with self._lock:
                self._resp_map[token] = waiter
            self._queue(frame, msgs=1, direct=True)
            left = timeout - (time.monotonic() - start)
            if not waiter.event.wait(max(left, 0)):
                raise RequestTimeout(subject, timeout)
        finally:
            with self._lock:
                self._resp_map.pop(token, None)
        if waiter.error:
            raise ProtocolError(f"the reply to {subject!r} was malformed ({waiter.error}) - "
                                "the responder sent a bad header block")
        if waiter.lost or waiter.msg is None:
            self._check_open()
            raise RequestTimeout(subject, timeout)
        msg = waiter.msg
        if msg.status == 503:
            raise NoRespondersError(subject)
        if msg.headers is not None and "Nats-Service-Error" in msg.headers:
            code = service_error_code(msg.headers.get("Nats-Service-Error-Code", "500"))
            raise ServiceError(subject, 500 if code is None else code,
                               msg.headers["Nats-Service-Error"])
        return msg
