"""The engine's exact promises (mutation testing of natsbook/core/_ioloop.py, issue 18).

Counters that stats promises exactly, the reply path (late replies, malformed replies,
request_batch), the send queue's errors at their boundaries, auto-unsubscribe bookkeeping,
big frames, receive times, reconnect hooks; against real nats-servers. The cases where a
server must misbehave on cue are in test_engine_peers_exact.py.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time

import pytest

import natsbook
from natsbook import Connection, LocalServer
from natsbook.core._sendqueue import count_pubs
from natsbook.errors import (
    ConnectionClosedError,
    NotConnectedError,
    ProtocolError,
    RequestTimeout,
)
from natsbook.wire._protocol import PING, encode_headers, encode_pub, encode_sub
from tests.support.waiting import wait_for


def _other(url: str) -> Connection:
    return natsbook.connect(url, name="natsbook-test-peer")


def test_counters_are_exact(conn: Connection, url: str, subject: str) -> None:
    """stats counts every message and byte in and out, once."""
    sub = conn.subscribe(subject)
    conn.flush()
    before = conn.stats
    for i in range(5):
        conn.publish(subject, b"x" * i)
    conn.flush()
    after = conn.stats
    assert after["out_msgs"] - before["out_msgs"] == 5
    assert after["in_msgs"] - before["in_msgs"] == 5
    frames = sum(len(b"MSG %s 1 %d\r\n%s\r\n" % (subject.encode(), i, b"x" * i))
                 for i in range(5))
    # The PONG of the flush comes in too; the sid is the subscription's.
    assert sub.sid < 10
    assert after["in_bytes"] - before["in_bytes"] == frames + len(b"PONG\r\n")
    pubs = sum(len(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), i, b"x" * i)) for i in range(5))
    assert after["out_bytes"] - before["out_bytes"] == pubs + len(b"PING\r\n")
    assert after["unknown_sid_msgs"] == 0 and after["late_replies"] == 0
    assert after["pending_bytes"] == 0


def test_late_reply_is_counted_not_fatal(conn: Connection, url: str, subject: str) -> None:
    """A reply after the requester gave up is counted in late_replies and dropped."""
    responder = _other(url)
    try:
        inbox = responder.subscribe(subject)
        responder.flush()
        with pytest.raises(RequestTimeout):
            conn.request(subject, b"q", timeout=0.2)
        reply = inbox.to_pandas("bytes")["reply"].iloc[0]
        responder.publish(reply, b"too late")
        responder.publish(reply, b"later still")
        responder.flush()
        assert wait_for(lambda: conn.stats["late_replies"] == 2, 5)
        assert conn.stats["unknown_sid_msgs"] == 0
        assert conn.status == "connected" and len(conn.gaps()) == 0
        responder.serve(f"{subject}.ok", lambda m: b"ok:" + m.data)
        responder.flush()
        msg = conn.request(f"{subject}.ok", b"1", timeout=2)
        assert msg.data == b"ok:1" and msg.subject.startswith("_INBOX.")
        assert abs(msg.time - time.time()) < 5
    finally:
        responder.close()


def test_malformed_reply_goes_to_the_requester(conn: Connection, url: str,
                                               subject: str) -> None:
    """A reply with a bad header block fails that request only; the connection stays."""
    responder = _other(url)
    try:
        inbox = responder.subscribe(subject)
        responder.flush()
        result: list[BaseException | None] = []

        def ask() -> None:
            try:
                conn.request(subject, b"q", timeout=3)
                result.append(None)
            except BaseException as exc:
                result.append(exc)

        t = threading.Thread(target=ask)
        t.start()
        assert wait_for(lambda: len(inbox.to_pandas("bytes")) == 1, 5)
        reply = inbox.to_pandas("bytes")["reply"].iloc[0]
        hdr = b"BOGUS\r\n\r\n"
        raw = b"HPUB %s %d %d\r\n%s\r\n" % (reply.encode(), len(hdr), len(hdr), hdr)
        responder._engine._queue(raw, msgs=1)
        responder.flush()
        t.join(5)
        assert len(result) == 1 and isinstance(result[0], ProtocolError), result
        assert str(result[0]) == (
            f"natsbook: the reply to {subject!r} was malformed (natsbook: header block does not "
            "start with NATS/1.0: 'BOGUS') - the responder sent a bad header block")
        assert conn.status == "connected" and len(conn.gaps()) == 0
        assert conn.stats["late_replies"] == 0
    finally:
        responder.close()


def test_request_batch_replies_arrive_in_their_rows(conn: Connection, subject: str) -> None:
    conn.serve(subject, lambda m: b"r" + m.data)
    conn.flush()
    df = conn.request_batch(subject, [b"%d" % i for i in range(20)], concurrency=5)
    assert df["data"].tolist() == [f"r{i}" for i in range(20)]
    assert df["error"].isna().all()
    assert conn.stats["late_replies"] == 0


def test_auto_unsubscribe_forgets_the_subscription(conn: Connection, subject: str) -> None:
    """After max_msgs the subscription leaves the connection's table; later messages on its
    sid (none: the server got UNSUB sid max) are not counted as unknown."""
    sub = conn.subscribe(subject, max_msgs=2)
    keep = conn.subscribe(subject)
    conn.flush()
    for _ in range(4):
        conn.publish(subject, b"m")
    conn.flush()
    assert wait_for(lambda: len(keep.to_pandas("bytes")) == 4, 5)
    assert len(sub.to_pandas("bytes")) == 2
    assert sub not in conn.subscriptions and keep in conn.subscriptions
    table = conn._engine._subs
    assert str(sub.sid).encode() not in table._by_bytes and sub.sid not in table
    assert conn.stats["unknown_sid_msgs"] == 0


def test_closed_connection_refuses_with_the_reason(url: str, subject: str) -> None:
    c = natsbook.connect(url)
    c.close()
    with pytest.raises(ConnectionClosedError,
                       match=r"connection is closed \(close\(\) was called\) - open a new one"):
        c.publish(subject, b"x")
    with pytest.raises(ConnectionClosedError, match=r"\(close\(\) was called\)"):
        c.subscribe(subject)


def test_reconnect_buffer_bound_is_exact(fresh_server: LocalServer, subject: str) -> None:
    """While reconnecting, publishes fill the reconnect buffer up to exactly its size."""
    frame = len(b"PUB %s 10\r\n%s\r\n" % (subject.encode(), b"x" * 10))
    c = natsbook.connect(fresh_server.url, reconnect_buffer_size=3 * frame,
                         reconnect_wait=5, reconnect_wait_max=5)
    try:
        c.flush()
        fresh_server.kill()
        assert wait_for(lambda: c.status == "reconnecting", 5)
        for _ in range(3):
            c.publish(subject, b"x" * 10)  # exactly fills it
        assert c.stats["pending_bytes"] == 3 * frame
        with pytest.raises(NotConnectedError) as info:
            c.publish(subject, b"")
        assert str(info.value) == (
            f"natsbook: disconnected from {fresh_server.url} and the reconnect buffer is full "
            f"({3 * frame} bytes) - wait for the reconnect (conn.status) or raise "
            "reconnect_buffer_size")
        # Queued, not written: pending, not "out" (issue 24: stats never call a message
        # sent that was not written).
        assert (c.stats["out_msgs"], c.stats["pending_msgs"]) == (0, 3)
        c.close()  # reconnecting: nothing to wait for; the buffer is dropped and counted
        assert (c.stats["out_msgs"], c.stats["pending_msgs"], c.stats["unsent_msgs"]) == (0, 0, 3)
        assert c.errors[-1][1] == (f"closed with 3 published messages ({3 * frame} bytes) not "
                                   f"sent to {fresh_server.url}: counted in "
                                   "stats['unsent_msgs']")
    finally:
        c.close()


def test_messages_in_a_joined_frame_are_counted_by_their_sizes() -> None:
    """A request_batch frame joins many PUB/HPUB frames: a drop or a close counts each one
    (by the size on its line, whatever the payload holds), and no control frame."""
    frames = [encode_pub(b"a.b", None, b"PUB x 5\r\nfake\r\n", None),
              encode_pub(b"a", b"r.1", b"", encode_headers([("K", "1 2 3")])),
              encode_pub(b"s", b"HPUB 1 2", b"x" * 1000, None)]
    assert count_pubs(b"".join(frames)) == 3
    assert [count_pubs(f) for f in frames] == [1, 1, 1]
    assert count_pubs(PING) == count_pubs(encode_sub("a", 1)) == 0


def test_identity_numbers_and_inbox(conn: Connection, subject: str) -> None:
    fresh = natsbook.connect(conn.connected_url)
    try:
        assert fresh.status == "connected"
        assert fresh.subscribe(subject).sid == 1 and fresh.subscribe(subject).sid == 2
        assert fresh._engine._thread is not None and fresh._engine._thread.name == "natsbook-io"
        assert fresh._engine._thread.daemon
        fresh.serve(f"{subject}.echo", lambda m: m.reply.encode())
        fresh.flush()
        inbox = fresh.request(f"{subject}.echo", b"", timeout=2).data.decode()
        assert re.fullmatch(r"_INBOX\.[A-Za-z0-9]{22}\.R\.1", inbox), inbox
        assert fresh.request(f"{subject}.echo", b"", timeout=2).data.decode() == \
            inbox[:-1] + "2"
    finally:
        fresh.close()


def test_closed_while_reconnecting_ends_the_gap(fresh_server: LocalServer) -> None:
    c = natsbook.connect(fresh_server.url, reconnect_wait=5, reconnect_wait_max=5)
    fresh_server.kill()
    assert wait_for(lambda: c.status == "reconnecting", 5)
    c.close()
    gaps = c.gaps()
    assert len(gaps) == 1 and gaps["end"].notna().all()


def test_idle_publish_goes_out_at_once(conn: Connection, url: str, subject: str) -> None:
    """The I/O thread is woken for a publish on an idle connection (it would otherwise sleep
    up to a second in select); the bound is generous: delivery takes about a millisecond."""
    peer = _other(url)
    try:
        sub = peer.subscribe(subject)
        peer.flush()
        for i in range(3):
            conn.flush()
            time.sleep(0.05)  # the I/O thread is asleep in select by now
            start = time.monotonic()
            conn.publish(subject, b"%d" % i)
            assert wait_for(lambda i=i: sub.received == i + 1, 5, interval=0.001)
            assert time.monotonic() - start < 0.5
    finally:
        peer.close()


def test_big_frames_arrive_whole_and_in_order(conn: Connection, subject: str) -> None:
    """Frames larger than a socket write (and requests sent from the caller's thread that
    the socket takes only in part) arrive whole and in order."""
    sub = conn.subscribe(subject)
    conn.serve(f"{subject}.len", lambda m: b"%d:%d" % (m.data[0], len(m.data)))
    conn.flush()
    big = [bytes([i]) * (900_000 + i) for i in range(12)]
    for data in big:
        conn.publish(subject, data)
    conn.flush()
    assert [bytes(d) for d in sub.to_pandas("bytes")["data"]] == big
    df = conn.request_batch(f"{subject}.len", big, concurrency=12)
    assert df["data"].tolist() == [f"{i}:{900_000 + i}" for i in range(12)]
    assert conn.stats["pending_bytes"] == 0


def test_no_descriptor_left_behind(url: str) -> None:
    """Closed, or failed to connect: no socket and no wake-up pipe is left open."""
    before = set(os.listdir("/proc/self/fd"))
    natsbook.connect(url).close()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"nats://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    with pytest.raises(natsbook.errors.ConnectError):
        natsbook.connect(dead, connect_timeout=1)
    assert set(os.listdir("/proc/self/fd")) <= before


def test_receive_time_is_the_arrival(conn: Connection, subject: str) -> None:
    """The time column is when the message arrived, to the clock: not shifted or scaled."""
    sub = conn.subscribe(subject)
    conn.flush()
    before = time.time()
    conn.publish(subject, b"t")
    conn.flush()
    after = time.time()
    t = sub.to_pandas("bytes")["time"].iloc[0].timestamp()
    assert before - 0.001 <= t <= after + 0.001


def test_replies_and_messages_in_one_read(conn: Connection, url: str, subject: str) -> None:
    """A reply and a message for a subscription in the same read both arrive."""
    sub = conn.subscribe(f"{subject}.events")
    peer = _other(url)
    try:
        def answer(m: natsbook.Msg) -> None:
            assert m.reply is not None
            peer.publish(m.reply, b"ok", reply=f"{subject}.back")
            peer.publish(f"{subject}.events", m.data)

        peer.subscribe(subject, callback=answer)
        back = peer.subscribe(f"{subject}.back")
        peer.flush()
        for i in range(20):
            reply = conn.request(subject, b"%d" % i, timeout=2)
            assert reply.data == b"ok"
        reply.respond(b"thanks")  # a reply is bound to the connection it came in on
        conn.flush()
        peer.flush()
        assert wait_for(lambda: sub.received == 20 and back.received == 1, 5)
    finally:
        peer.close()


def test_reconnect_hooks_added_and_removed(fresh_server: LocalServer) -> None:
    c = natsbook.connect(fresh_server.url, reconnect_wait=0.01)
    calls: list[str] = []

    def gone() -> None:
        calls.append("gone")

    try:
        c._engine._add_reconnect_hook(lambda: calls.append("kept"))
        c._engine._add_reconnect_hook(gone)
        c._engine._remove_reconnect_hook(gone)
        c._engine._remove_reconnect_hook(gone)  # removing twice is harmless
        fresh_server.kill()
        fresh_server.start()
        assert wait_for(lambda: calls == ["kept"], 10)
        time.sleep(0.05)
        assert calls == ["kept"]
    finally:
        c.close()


def test_keepalive_with_one_outstanding_ping(url: str) -> None:
    """max_outstanding_pings=1 on a healthy connection: each PONG clears the count, so the
    connection is never called stale."""
    c = natsbook.connect(url, ping_interval=0.05, max_outstanding_pings=1)
    try:
        time.sleep(0.6)
        assert c.status == "connected" and len(c.gaps()) == 0
    finally:
        c.close()


def test_a_burst_is_written_promptly(conn: Connection, subject: str) -> None:
    """20 MB published at once (far more than a socket buffer) is written as fast as the
    server reads it: the I/O thread waits for the socket to be writable, not for a timer.
    The bound is generous (loopback takes well under a second)."""
    start = time.monotonic()
    for _ in range(200):
        conn.publish(f"{subject}.nobody", b"x" * 100_000)
    conn.flush(10)
    assert time.monotonic() - start < 4.0
    assert conn.stats["pending_bytes"] == 0


def test_callback_messages_carry_the_receive_time(conn: Connection, subject: str) -> None:
    """A callback's Msg.time is the receive time, the same instant as the captured row's."""
    got: list[natsbook.Msg] = []
    sub = conn.subscribe(subject, callback=got.append)
    conn.flush()
    before = time.time()
    conn.publish(subject, b"t")
    assert wait_for(lambda: len(got) == 1, 5)
    assert before - 0.001 <= got[0].time <= time.time() + 0.001
    row = sub.to_pandas("bytes")["time"].iloc[0]
    assert abs(row.timestamp() - got[0].time) < 1e-5
