"""The protocol state without sockets (natsbook/wire/_session.py): fed with the frames the
parser makes of plain bytes, as the engine feeds it, with no server and no thread."""

from __future__ import annotations

import pytest

from natsbook.errors import ProtocolError
from natsbook.wire._protocol import HARD_MAX_FRAME, Parser
from natsbook.wire._session import (
    DEFAULT_MAX_PAYLOAD,
    ClientSession,
    PingTracker,
    ServerState,
    SidTable,
)


def _ctrl(data: bytes, parser: Parser | None = None) -> list[tuple[str, object]]:
    return (parser or Parser()).feed(data)[1]


def _pongs(tracker: PingTracker[str], data: bytes) -> list[str | None]:
    """What the engine does with a chunk: each PONG wakes whoever it is owed to."""
    return [tracker.pong() for op, _ in _ctrl(data) if op == "PONG"]


# -- PING / PONG ---------------------------------------------------------------------------------
def test_pongs_answer_pings_in_order_keepalives_owed_to_no_one() -> None:
    t: PingTracker[str] = PingTracker(max_outstanding=2)
    t.sent("flush-1")
    assert t.keepalive() is None  # a keepalive between two flushes
    t.sent("flush-2")
    assert _pongs(t, b"PONG\r\nPO") == ["flush-1"]
    assert _pongs(t, b"PONG\r\nPONG\r\n") == [None, "flush-2"]
    assert len(t) == 0 and _pongs(t, b"PONG\r\n") == [None]  # a PONG nobody asked for


def test_stale_after_max_outstanding_keepalives_and_any_pong_clears_the_count() -> None:
    t: PingTracker[str] = PingTracker(max_outstanding=2)
    assert t.keepalive() is None and t.keepalive() is None and t.outstanding == 2
    assert t.keepalive() == "no PONG to 2 PINGs"
    assert len(t) == 2, "a stale verdict sends no PING, so none is owed"
    _pongs(t, b"PONG\r\n")
    assert t.outstanding == 0 and t.keepalive() is None


def test_a_flush_waiter_does_not_count_as_a_keepalive() -> None:
    t: PingTracker[str] = PingTracker(max_outstanding=1)
    t.sent("w1")
    t.sent("w2")
    assert t.keepalive() is None, "flush PINGs are not keepalive PINGs"


def test_forgotten_waiter_keeps_its_place_in_line() -> None:
    t: PingTracker[str] = PingTracker()
    t.sent("gone")
    t.sent("kept")
    t.forget("gone")
    assert list(t._owed) == [None, "kept"]  # "gone" is owed to no one; "kept" still waits
    assert _pongs(t, b"PONG\r\nPONG\r\n") == [None, "kept"]


def test_reset_returns_the_waiters_left_without_a_pong() -> None:
    t: PingTracker[str] = PingTracker()
    t.sent("a")
    t.keepalive()
    t.sent("b")
    assert t.reset() == ["a", "b"] and len(t) == 0 and t.outstanding == 0


def test_a_ping_sent_first_on_a_new_socket_is_answered_first() -> None:
    t: PingTracker[str] = PingTracker()
    t.sent("waiting")
    t.sent_first(None)
    assert _pongs(t, b"PONG\r\nPONG\r\n") == [None, "waiting"]


# -- INFO -----------------------------------------------------------------------------------------
def test_info_updates_merge_and_say_what_changed() -> None:
    s = ServerState()
    assert s.max_payload == DEFAULT_MAX_PAYLOAD and not s.lame_duck
    (op, info), = _ctrl(b'INFO {"server_id":"A","max_payload":2048,"headers":true}\r\n')
    up = s.apply(info)  # type: ignore[arg-type]
    assert op == "INFO" and up.error is None and up.max_payload == 2048 and not up.lame_duck
    assert s.max_payload == 2048 and s.max_frame == 2048 + 64 * 1024
    (_, info), = _ctrl(b'INFO {"connect_urls":["10.0.0.2:4222"],"ldm":true}\r\n')
    up = s.apply(info)  # type: ignore[arg-type]
    assert up.connect_urls == ["10.0.0.2:4222"] and up.lame_duck and up.max_payload is None
    assert s.info["server_id"] == "A" and s.info["ldm"] is True and s.lame_duck
    s.reset()
    assert not s.lame_duck and s.max_payload == 2048


@pytest.mark.parametrize(("line", "field"), [
    (b'INFO {"max_payload":"big"}\r\n', "max_payload"),
    (b'INFO {"connect_urls":5}\r\n', "connect_urls"),
    (b'INFO {"ldm":1}\r\n', "ldm"),
])
def test_a_bad_info_is_refused_whole_and_changes_nothing(line: bytes, field: str) -> None:
    s = ServerState()
    s.apply({"server_id": "A", "max_payload": 4096})
    (_, info), = _ctrl(line)
    up = s.apply(info)  # type: ignore[arg-type]
    assert up.error is not None and field in up.error
    assert s.info == {"server_id": "A", "max_payload": 4096} and s.max_payload == 4096
    assert not s.lame_duck


def test_a_huge_max_payload_cannot_unbound_the_frame_limit() -> None:
    s = ServerState()
    s.apply({"max_payload": 1 << 40})
    assert s.max_payload == 1 << 40 and s.max_frame == HARD_MAX_FRAME
    s.apply({"max_payload": 10})
    assert s.max_frame == 1024 + 64 * 1024  # never below a usable frame


# -- the sid table --------------------------------------------------------------------------------
def test_sids_route_messages_and_unknown_ones_are_counted() -> None:
    table: SidTable[str] = SidTable()
    a, b = table.new_sid(), table.new_sid()
    assert (a, b) == (1, 2)
    table.add(a, "sub-a")
    table.add(b, "sub-b")
    groups, _ = Parser().feed(b"MSG x 1 2\r\nhi\r\nMSG y 2 0\r\n\r\nMSG z 9 1\r\nq\r\n"
                              b"MSG z 9 1\r\nq\r\n")
    routed = {sid: table.lookup(sid, len(rows)) for sid, rows in groups.items()}
    assert routed == {b"1": "sub-a", b"2": "sub-b", b"9": None}
    assert table.unknown == 2
    assert table.pop(a) == "sub-a" and table.lookup(b"1") is None and table.unknown == 3
    assert table.pop(a) is None and list(table) == [b]
    assert table.new_sid() == 3, "a sid is never handed out twice"
    table.clear()
    assert len(table) == 0 and table.lookup(b"2") is None


# -- the session: bytes in, what to do out --------------------------------------------------------
def test_server_pings_are_owed_pongs_and_pongs_are_counted() -> None:
    session: ClientSession[str] = ClientSession()
    got = session.receive(b"PONG\r\nPONG\r\nPI")
    assert (got.pings, got.pongs) == (0, 2)
    got = session.receive(b"NG\r\nPING\r\n-ERR 'Permissions Violation'\r\n")
    assert (got.pings, got.pongs) == (2, 0) and got.errors == ["Permissions Violation"]


def test_info_in_the_stream_updates_the_server_state_and_the_frame_limit() -> None:
    session: ClientSession[str] = ClientSession()
    got = session.receive(b'INFO {"server_id":"S","max_payload":2048,'
                          b'"connect_urls":["127.0.0.1:1"]}\r\nINFO {"x":1}\r\n')
    first, second = got.infos
    assert first.max_payload == 2048 and first.connect_urls == ["127.0.0.1:1"]
    assert second.max_payload is None and second.connect_urls == [], "an INFO without them"
    assert session.server.info == {"server_id": "S", "max_payload": 2048,
                                   "connect_urls": ["127.0.0.1:1"], "x": 1}  # merged
    assert session.parser.max_payload == 2048 + 64 * 1024
    with pytest.raises(ProtocolError):  # the parser now holds the server to its word
        session.receive(b"MSG a 1 %d\r\n" % (2048 + 64 * 1024 + 1))


@pytest.mark.parametrize(("announced", "limit", "frame"), [
    (0, DEFAULT_MAX_PAYLOAD, HARD_MAX_FRAME),  # 0 is ignored: the defaults stay
    (10, 10, 1024 + 64 * 1024),
    (1, 1, 1024 + 64 * 1024),
    (2000, 2000, 2000 + 64 * 1024),
    (10**12, 10**12, HARD_MAX_FRAME),
])
def test_announced_max_payload_is_clamped(announced: int, limit: int, frame: int) -> None:
    session: ClientSession[str] = ClientSession()
    assert session.parser.max_payload == session.server.max_frame == HARD_MAX_FRAME
    session.receive(b'INFO {"max_payload":%d}\r\n' % announced)
    assert session.server.max_payload == limit and session.parser.max_payload == frame


def test_lame_duck_info_is_said_once_and_a_bad_info_changes_nothing() -> None:
    session: ClientSession[str] = ClientSession()
    bad, ldm = session.receive(b'INFO {"ldm":"yes"}\r\nINFO {"ldm":true}\r\n').infos
    assert bad.error is not None and "ldm" in bad.error and not bad.lame_duck
    assert ldm.lame_duck and session.server.lame_duck


def test_rows_complete_before_bad_bytes_come_with_the_error() -> None:
    session: ClientSession[str] = ClientSession()
    sid = session.subs.new_sid()
    session.subs.add(sid, "sub-a")
    with pytest.raises(ProtocolError) as info:
        session.receive(b"MSG a 98 1\r\nu\r\nMSG a %d 1\r\nx\r\nMSG a %d 1\r\ny\r\n"
                        b"BOGUS\r\n" % (sid, sid))
    assert info.value.partial is not None
    groups = info.value.partial[0]
    assert [r[3] for r in groups[str(sid).encode()]] == [b"x", b"y"]
    assert session.subs.lookup(b"98", len(groups[b"98"])) is None and session.subs.unknown == 1


def test_a_lost_socket_leaves_flushes_without_a_pong() -> None:
    session: ClientSession[str] = ClientSession()
    session.pings.sent("flush")
    session.pings.keepalive()
    assert session.pings.reset() == ["flush"] and len(session.pings) == 0
