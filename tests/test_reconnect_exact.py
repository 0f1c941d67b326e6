"""Reconnect's exact promises (mutation testing of natsbook/core/_reconnect.py, issue 18).

Moving off a lame-duck server make-before-break (a scripted fake server plays the lame duck,
a real nats-server is where the client moves), the reconnect rounds (how many, how long the
backoff waits), refusals reported once, what a reconnect restores (subscriptions with their
queue group and remaining max_msgs, the request inbox) and the reconnect hooks.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import socket
import threading
import time
import urllib.request
from collections.abc import Callable

import pytest

import natsbook
from natsbook import LocalServer
from natsbook.errors import ConnectionClosedError, RequestTimeout
from tests.support.fake_server import (
    INFO,
    FakeServer,
    hello,
    keep_open,
    read_until,
    well_behaved_for,
)
from tests.support.lame_duck import LameDuck, NewServer, dead_url
from tests.support.waiting import wait_for


def _connz_subs(srv: LocalServer, name: str) -> list[dict[str, object]]:
    assert srv.monitor_url is not None
    with urllib.request.urlopen(f"{srv.monitor_url}/connz?subs=detail", timeout=5) as r:
        conns = json.load(r)["connections"]
    return [s for c in conns if c.get("name") == name
            for s in c.get("subscriptions_list_detail", [])]


def test_lame_duck_move_is_make_before_break(fake: Callable[..., FakeServer],
                                             server: LocalServer, subject: str) -> None:
    duck = LameDuck()
    srv = fake(duck)
    name = f"mover-{subject}"
    conn = natsbook.connect([srv.url, "nats://127.0.0.1:1", server.url], name=name,
                            ping_interval=60, reconnect_wait=0.01, connect_timeout=5)
    peer = natsbook.connect(server.url)
    try:
        sub = conn.subscribe(subject, max_msgs=6)
        qsub = conn.subscribe(f"{subject}.q", queue="grp")
        drained = conn.subscribe(f"{subject}.d")
        conn.flush()
        with pytest.raises(RequestTimeout):  # the duck never answers: only the inbox matters
            conn.request(f"{subject}.nobody", b"", timeout=0.1)
        sids = duck.sids()
        sid, inbox = sids[subject], next(v for k, v in sids.items() if k.startswith("_INBOX."))
        assert sid == sub.sid and sids[f"{subject}.q"] == qsub.sid
        duck.outbox += [b"MSG %s %d 2\r\nm%d\r\n" % (subject.encode(), sid, i) for i in (1, 2)]
        assert wait_for(lambda: sub.received == 2, 5)
        duck.last_msg = b"MSG %s.d %d 4\r\nlast\r\n" % (subject.encode(), drained.sid)
        start = time.time()
        in_before = conn.stats["in_bytes"]
        duck.go.set()
        # Quick: the drain ends with the lame duck's last PONG, not at connect_timeout.
        assert wait_for(lambda: conn.connected_url == server.url, 2.5)
        assert conn.status == "connected" and conn.stats["reconnects"] == 1
        # Drained: the message the lame duck sent before its last PONG was delivered.
        assert drained.to_pandas("bytes")["data"].tolist() == [b"last"]
        # Exactly: UNSUB of every subscription and of the request inbox, then the last PING.
        assert bytes(duck.after) == b"".join(
            b"UNSUB %d\r\n" % s for s in (sid, qsub.sid, drained.sid, inbox)) + b"PING\r\n"
        assert conn.stats["pending_bytes"] == 0
        assert conn.stats["in_bytes"] >= in_before + len(duck.last_msg) + len(b"PONG\r\n")
        gaps = conn.gaps()
        assert len(gaps) == 1
        assert gaps["server"].iloc[0] == srv.url
        assert gaps["reason"].iloc[0] == (f"moved off lame duck to {server.url}: messages "
                                          "routed during the switch may be missing or "
                                          "duplicated")
        assert start - 0.5 <= gaps["start"].iloc[0].timestamp() <= time.time()
        assert gaps["end"].notna().all()
        texts = [t for _, t in conn.errors]
        assert texts[-2:] == [
            f"{srv.url} entered lame duck mode; moving to another server",
            f"moved from lame duck {srv.url} to {server.url} (subscriptions made on the new "
            "server before leaving the old one)"]
        # The new server has the queue group and only the remaining 4 of max_msgs.
        qgroups = {s["subject"]: s.get("qgroup") for s in _connz_subs(server, name)
                   if not str(s["subject"]).startswith("_INBOX.")}
        assert qgroups == {subject: None, f"{subject}.q": "grp", f"{subject}.d": None}
        for i in range(4):
            peer.publish(subject, b"n%d" % i)
        peer.flush()
        assert wait_for(lambda: sub.received == 6, 5)
        peer.publish(subject, b"over")  # in a later read: counted if the server sent it
        peer.flush()
        conn.flush()
        assert conn.stats["unknown_sid_msgs"] == 0
        assert sub.to_pandas("bytes")["data"].tolist() == [b"m1", b"m2", b"n0", b"n1", b"n2",
                                                            b"n3"]
        peer.publish(f"{subject}.q", b"q")
        peer.flush()
        assert wait_for(lambda: qsub.received == 1, 5)
    finally:
        peer.close()
        conn.close()


def test_lame_duck_with_nowhere_to_go_stays(fake: Callable[..., FakeServer]) -> None:
    duck = LameDuck()
    srv = fake(duck)
    conn = natsbook.connect(srv.url, ping_interval=60, connect_timeout=1)
    try:
        duck.go.set()
        text = (f"{srv.url} is in lame duck mode but no other server answered; staying until "
                "it closes the connection")
        assert wait_for(lambda: any(t == text for _, t in conn.errors), 5)
        assert conn.status == "connected" and len(conn.gaps()) == 0
        assert conn.stats["reconnects"] == 0
        conn.flush(2)  # still served by the lame duck
    finally:
        conn.close()


def _subscribe_dies(peer: socket.socket) -> None:
    hello(peer)
    read_until(peer, b"PING\r\n")
    peer.close()


def test_lame_duck_move_skips_servers_that_fail(fake: Callable[..., FakeServer],
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The move tries the pool in order past a server that refuses and one that closes while
    subscribing; what the new server sends before its PONG is kept; the lame duck is told
    UNSUB only after the new server's PONG (make before break)."""
    caplog.set_level(logging.DEBUG, logger="natsbook")
    duck, new = LameDuck(), NewServer()
    unsub_at: list[float] = []
    srv, closer, target = fake(duck), fake(_subscribe_dies), fake(new)
    dead = dead_url()
    conn = natsbook.connect([srv.url, dead, closer.url, target.url], ping_interval=60,
                            connect_timeout=2, reconnect=False, echo=False, name="mover")
    try:
        sub = conn.subscribe("a")
        conn.flush()
        duck.outbox.append(b"-ERR 'old trouble'\r\n")
        assert wait_for(lambda: any("old trouble" in t for _, t in conn.errors), 2)
        duck.go.set()
        assert wait_for(lambda: b"UNSUB" in duck.after or conn.connected_url == target.url, 5)
        unsub_at.append(time.monotonic())
        assert wait_for(lambda: conn.connected_url == target.url, 5)
        assert new.pong_sent and unsub_at[0] >= new.pong_sent
        assert wait_for(lambda: sub.received == 1, 2)
        assert sub.to_pandas("bytes")["data"].tolist() == [b"z"]
        assert conn.server_info["server_id"] == "NEW"  # the INFO right behind its PONG
        connect = json.loads(new.connect.split(b"\r\n")[0][8:])
        assert (connect["echo"], connect["name"]) == (False, "mover")
        conn.flush(2)
        logged = [r.getMessage() for r in caplog.records if "lame duck move" in r.getMessage()]
        assert logged == [
            f"natsbook: lame duck move to {dead} failed: natsbook: cannot reach {dead}: "
            "Connection refused - start a server (e.g. natsbook.local_server()) or check the URL",
            f"natsbook: lame duck move to {closer.url} failed: closed while subscribing"]
        assert conn.stats["reconnects"] == 1
        new.done.set()  # the -ERR of the lame duck is not blamed for this close
        assert wait_for(lambda: conn.is_closed, 5)
        assert conn.gaps()["reason"].tolist()[1:] == ["server closed the connection"]
    finally:
        conn.close()


def test_lame_duck_move_gives_up_within_the_connect_timeout(
        fake: Callable[..., FakeServer], caplog: pytest.LogCaptureFixture) -> None:
    """A server that never answers the move's PING is given up on after connect_timeout."""
    caplog.set_level(logging.DEBUG, logger="natsbook")
    duck = LameDuck()
    srv, silent = fake(duck), fake(lambda p: (hello(p), keep_open(p, 4)))
    conn = natsbook.connect([srv.url, silent.url], ping_interval=60, connect_timeout=0.5)
    try:
        start = time.monotonic()
        duck.go.set()
        assert wait_for(lambda: any("no other server answered" in t for _, t in conn.errors), 5)
        assert time.monotonic() - start < 0.95  # connect_timeout, not a second more
        assert conn.connected_url == srv.url and conn.status == "connected"
        assert [r.getMessage() for r in caplog.records if "move to" in r.getMessage()] == [
            f"natsbook: lame duck move to {silent.url} failed: timed out"]
    finally:
        conn.close()


def test_lame_duck_that_never_answers_the_drain(fake: Callable[..., FakeServer],
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The drain waits for the lame duck's last PONG only until connect_timeout; a flush()
    whose PONG the lame duck never sent is answered by the new server instead."""
    caplog.set_level(logging.DEBUG, logger="natsbook")
    duck, new = LameDuck(), NewServer()
    srv, target = fake(duck), fake(new)
    conn = natsbook.connect([srv.url, target.url], ping_interval=60, connect_timeout=0.6)
    flushed: list[BaseException | None] = []

    def flush() -> None:
        try:
            conn.flush(5)
            flushed.append(None)
        except BaseException as exc:
            flushed.append(exc)

    try:
        conn.subscribe("a")
        conn.flush()
        duck.mute = True
        t = threading.Thread(target=flush)
        t.start()
        time.sleep(0.1)
        start = time.monotonic()
        duck.go.set()
        assert wait_for(lambda: conn.connected_url == target.url, 3)
        assert 0.5 <= time.monotonic() - start < 1.5
        t.join(3)
        assert flushed == [None]
        assert [r.getMessage() for r in caplog.records if "draining" in r.getMessage()] == [
            f"natsbook: draining the lame duck {srv.url}: timed out"]
    finally:
        conn.close()


def test_lame_duck_that_closes_during_the_drain(fake: Callable[..., FakeServer]) -> None:
    duck, new = LameDuck(close_on_drain=True), NewServer()
    srv, target = fake(duck), fake(new)
    conn = natsbook.connect([srv.url, target.url], ping_interval=60, connect_timeout=2)
    try:
        conn.subscribe("a")
        conn.flush()
        duck.go.set()
        assert wait_for(lambda: conn.connected_url == target.url, 3)
        assert conn.stats["reconnects"] == 1
        assert conn.gaps()["reason"].tolist() == [
            f"moved off lame duck to {target.url}: messages routed during the switch may be "
            "missing or duplicated"]
    finally:
        conn.close()


def _dies_after(seconds: float) -> Callable[[socket.socket], None]:
    def script(peer: socket.socket) -> None:
        well_behaved_for(peer, seconds)
        peer.close()
    return script


def _accept_times(srv: FakeServer, times: list[float]) -> None:
    """Record when each connection after the first is accepted (it is then closed at once)."""
    def script(peer: socket.socket) -> None:
        times.append(time.monotonic())
        peer.close()
    srv.scripts = (srv.scripts[0], script)


def test_reconnect_rounds_and_backoff(fake: Callable[..., FakeServer],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """max_reconnect_attempts=4: 5 rounds, then closed; between rounds the wait doubles from
    2 * reconnect_wait up to reconnect_wait_max, times the jitter factor (here its midpoint)."""
    monkeypatch.setattr(random, "uniform", lambda a, b: (a + b) / 2)
    srv = fake(_dies_after(0.1))
    times: list[float] = []
    _accept_times(srv, times)
    conn = natsbook.connect(srv.url, reconnect_wait=0.04, reconnect_wait_max=0.3,
                            max_reconnect_attempts=4, ping_interval=60, connect_timeout=1)
    try:
        assert wait_for(lambda: conn.is_closed, 10)
        assert len(times) == 5
        waits = [b - a for a, b in itertools.pairwise(times)]
        expected = [0.75 * w for w in (0.08, 0.16, 0.3, 0.3)]
        for got, want in zip(waits, expected, strict=True):
            assert want * 0.95 <= got <= want + 0.1, (waits, expected)
        with pytest.raises(ConnectionClosedError, match=r"\(gave up after 5 reconnect rounds\)"):
            conn.publish("a", b"")
    finally:
        conn.close()


def test_no_reconnect_attempts_gives_up_after_one_round(fake: Callable[..., FakeServer]) -> None:
    srv = fake(_dies_after(0.1))
    times: list[float] = []
    _accept_times(srv, times)
    conn = natsbook.connect(srv.url, max_reconnect_attempts=0, ping_interval=60)
    try:
        assert wait_for(lambda: conn.is_closed, 5)
        assert len(times) == 1
        with pytest.raises(ConnectionClosedError, match=r"\(gave up after 1 reconnect rounds\)"):
            conn.publish("a", b"")
    finally:
        conn.close()


def test_refused_reconnect_is_reported_once(fake: Callable[..., FakeServer]) -> None:
    def refuses(peer: socket.socket) -> None:
        peer.sendall(INFO)
        read_until(peer, b"PING\r\n")
        peer.sendall(b"-ERR 'Authorization Violation'\r\n")
        keep_open(peer, 1)

    srv = fake(_dies_after(0.1), refuses)
    conn = natsbook.connect(srv.url, max_reconnect_attempts=3, reconnect_wait=0.01,
                            ping_interval=60)
    try:
        assert wait_for(lambda: conn.is_closed, 10)
        assert srv.accepted == 5
        refused = [t for _, t in conn.errors if t.startswith("reconnect refused")]
        assert refused == [f"reconnect refused: authorization violation from {srv.url} - check "
                           "token/user/password/creds"]
    finally:
        conn.close()


def test_each_disconnect_is_its_own_gap(fake: Callable[..., FakeServer]) -> None:
    """The -ERR text of one connection is not blamed for the next one's end."""
    def err_then_close(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(b"-ERR 'first'\r\n")
        time.sleep(0.1)
        peer.close()

    def protocol_error(peer: socket.socket) -> None:
        hello(peer)
        time.sleep(0.1)
        peer.sendall(b"BOGUS\r\n")
        keep_open(peer, 1)

    srv = fake(err_then_close, _dies_after(0.2), protocol_error, _dies_after(5))
    conn = natsbook.connect(srv.url, reconnect_wait=0.01, ping_interval=60)
    try:
        assert wait_for(lambda: conn.stats["reconnects"] == 3 and conn.is_connected, 10)
        gaps = conn.gaps()
        reasons = gaps["reason"].tolist()
        assert reasons[:2] == ["server closed the connection after -ERR 'first'",
                               "server closed the connection"]
        assert reasons[2].startswith("protocol error: ") and "BOGUS" in reasons[2]
        assert gaps["end"].notna().all() and (gaps["server"] == srv.url).all()
        texts = [t for _, t in conn.errors]
        assert texts.count(f"reconnected to {srv.url}") == 3
        assert f"disconnected from {srv.url}: server closed the connection" in texts
        assert any(t.startswith("protocol error: ") for t in texts)
    finally:
        conn.close()


def test_reconnect_restores_subscriptions_and_requests(fresh_server: LocalServer,
                                                       subject: str) -> None:
    conn = natsbook.connect(fresh_server.url, reconnect_wait=0.01, name=f"r-{subject}")
    responder = natsbook.connect(fresh_server.url, reconnect_wait=0.01)
    calls: list[str] = []
    seen: list[tuple[str, bool, bool]] = []
    try:
        responder.serve(f"{subject}.svc", lambda m: b"re:" + m.data)
        responder.flush()
        assert conn.request(f"{subject}.svc", b"1", timeout=2).data == b"re:1"
        sub = conn.subscribe(subject, max_msgs=4)
        conn.subscribe(f"{subject}.q", queue="workers")
        conn.publish(subject, b"a")
        conn.flush()

        def boom() -> None:
            me = threading.current_thread()
            calls.append("boom")
            seen.append((me.name, me.daemon, me is not conn._engine._thread))
            raise RuntimeError("hook failed")

        conn._engine._add_reconnect_hook(boom)
        conn._engine._add_reconnect_hook(lambda: calls.append("next"))
        fresh_server.kill()
        fresh_server.start()
        assert wait_for(lambda: conn.is_connected and responder.is_connected, 10)
        conn.flush()
        responder.flush()
        assert conn.request(f"{subject}.svc", b"2", timeout=2).data == b"re:2"
        assert wait_for(lambda: calls == ["boom", "next"], 5)
        assert seen == [("natsbook-reconnect-hooks", True, True)]
        assert "after reconnect: RuntimeError: hook failed" in [t for _, t in conn.errors]
        subs = {s["subject"]: s.get("qgroup") for s in _connz_subs(fresh_server, f"r-{subject}")}
        assert subs[f"{subject}.q"] == "workers" and subs[subject] is None
        for i in range(3):
            conn.publish(subject, b"%d" % i)
        conn.flush()
        assert wait_for(lambda: sub.received == 4, 5)
        # In a later read than the ones that filled the subscription: a message beyond the
        # limit would be counted as one for an unknown sid.
        conn.publish(subject, b"over")
        conn.flush()
        assert conn.stats["unknown_sid_msgs"] == 0  # the server got UNSUB sid 3, not 4
        assert conn.stats["reconnects"] == 1
        # A limit set after the reconnect counts from what the new server has delivered.
        later = conn.subscribe(f"{subject}.later")
        conn.publish(f"{subject}.later", b"0")
        conn.flush()
        fresh_server.kill()
        fresh_server.start()
        assert wait_for(lambda: conn.is_connected, 10)
        conn.flush()
        conn.unsubscribe(later, max_msgs=3)
        for i in (1, 2):
            conn.publish(f"{subject}.later", b"%d" % i)
        conn.flush()
        assert wait_for(lambda: later.received == 3, 5)
        conn.publish(f"{subject}.later", b"over")
        conn.flush()
        assert conn.stats["unknown_sid_msgs"] == 0
    finally:
        responder.close()
        conn.close()


def test_close_while_reconnecting(fake: Callable[..., FakeServer]) -> None:
    srv = fake(_dies_after(0.1), lambda p: p.close())
    conn = natsbook.connect(srv.url, reconnect_wait=0.01, ping_interval=60)
    assert wait_for(lambda: conn.status == "reconnecting", 5)
    conn.close()
    assert conn.is_closed
    assert conn._engine._thread is not None and not conn._engine._thread.is_alive()


def test_garbage_behind_a_reconnect_handshake(fake: Callable[..., FakeServer]) -> None:
    """Bytes the parser refuses right after a reconnect's PONG: that server is dropped, the
    I/O thread lives on, and the next round connects; still one gap."""
    def garbage_after_pong(peer: socket.socket) -> None:
        peer.sendall(INFO)
        read_until(peer, b"PING\r\n")
        peer.sendall(b"PONG\r\nMSG a.b 1 -7\r\n")
        keep_open(peer, 2)

    srv = fake(_dies_after(0.1), garbage_after_pong, _dies_after(5))
    conn = natsbook.connect(srv.url, reconnect_wait=0.01, ping_interval=60)
    try:
        assert wait_for(lambda: srv.accepted == 3 and conn.is_connected, 10)
        conn.flush(2)
        texts = [t for _, t in conn.errors]
        assert any(t.startswith(f"protocol error from {srv.url} on reconnect: ") for t in texts)
        assert len(conn.gaps()) == 1 and conn.stats["reconnects"] == 1
    finally:
        conn.close()
