"""Message tracing against a scripted fake server: a server that never sends a trace event
(as one older than 2.11) is a Timeout naming the fix; a server that sends garbage, a
wrong-shaped event or an absurd hop count to the trace inbox gives flagged rows within the
timeout, never a crash or a hang."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import orjson
import pytest

import natsbook
from natsbook.errors import Timeout
from tests.support.fake_server import FakeServer, hello

SUB_RE = re.compile(rb"SUB (\S+) (\d+)\r\n")
DEST_RE = re.compile(rb"Nats-Trace-Dest: (\S+)\r\n")


def answers_traces_with(*bodies: bytes, seconds: float = 5.0) -> Callable[[socket.socket], None]:
    """Handshake, answer PINGs; when a traced HPUB arrives, send `bodies` as MSGs to the
    trace destination on the sid the client subscribed it with."""
    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.settimeout(0.05)
        buf, sids, sent = b"", {}, False
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = peer.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            for _ in range(data.count(b"PING\r\n")):
                peer.sendall(b"PONG\r\n")
            for subject, sid in SUB_RE.findall(buf):
                sids[subject] = sid
            dest = DEST_RE.search(buf)
            if dest and dest.group(1) in sids and not sent:
                sent = True
                for body in bodies:
                    peer.sendall(b"MSG %s %s %d\r\n%s\r\n" % (
                        dest.group(1), sids[dest.group(1)], len(body), body))
    return script


def test_a_server_that_never_traces_is_a_timeout_naming_the_fix() -> None:
    srv = FakeServer(answers_traces_with())
    try:
        with natsbook.connect(srv.url, reconnect=False) as conn:
            start = time.monotonic()
            with pytest.raises(Timeout, match=r"2\.11 or later \(this one: 2\.10\.0\)"):
                conn.trace("a.b", timeout=0.5)
            assert time.monotonic() - start < 5  # bounded by the timeout, never a hang
    finally:
        srv.close()


def test_hostile_trace_events_are_rows_not_crashes() -> None:
    good = orjson.dumps({"server": {"name": "fake"}, "request": {}, "hops": 10**9,
                         "events": [{"type": "in", "kind": 0, "cid": 1, "subj": "a.b"}]})
    srv = FakeServer(answers_traces_with(b"\x00\xffgarbage", b'{"events": "nope"}', good,
                                         b'{"server": [], "events": [{"type": []}]}'))
    try:
        with natsbook.connect(srv.url, reconnect=False) as conn:
            frame = conn.trace("a.b", timeout=1.0)
            assert conn.is_connected
    finally:
        srv.close()
    assert len(frame) == 4 and frame["malformed"].sum() == 3
    assert frame.attrs["complete"] is False  # the absurd hop count never completes
    ok = frame[~frame["malformed"]].iloc[0]
    assert (ok["server"], ok["kind"], ok["subject"]) == ("fake", "ingress", "a.b")
    assert frame["error"].str.contains("malformed trace event").sum() == 3
