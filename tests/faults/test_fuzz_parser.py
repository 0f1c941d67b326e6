"""Property tests of the protocol parser: hostile bytes raise ProtocolError only; valid streams
parse the same under any split; buffers stay bounded."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from natsbook.errors import ProtocolError
from natsbook.wire._protocol import MAX_CONTROL_LINE, Parser, encode_headers
from tests.support import reference_codec

MAX_PAYLOAD = 4096
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


def _parse(chunks: list[bytes], max_payload: int = MAX_PAYLOAD) -> tuple[
        dict[bytes, list[Any]], list[Any]]:
    parser = Parser(max_payload)
    msgs: dict[bytes, list[Any]] = {}
    ctrl: list[Any] = []
    for chunk in chunks:
        groups, c = parser.feed(chunk)
        for sid, rows in groups.items():
            msgs.setdefault(sid, []).extend(rows)
        ctrl.extend(c)
        # Bounded: never more than one control line or one frame (plus its header) buffered.
        assert parser.buffered <= MAX_CONTROL_LINE + max_payload + 256 + len(chunk)
    return msgs, ctrl


# -- hostile bytes ---------------------------------------------------------------------------
_ATOMS = st.sampled_from([
    b"MSG ", b"HMSG ", b"PING", b"PONG", b"+OK", b"-ERR ", b"INFO ", b"\r\n", b"\r", b"\n",
    b" ", b"-1", b"0", b"5", b"99999999999", b"a.b", b"sid", b"{", b"}", b'{"a":1}', b"NATS/1.0",
    b"\x00", b"\xff", b"msg ", b"hmsg ",
    # whole valid frames, so that some hostile streams are valid and must parse right
    b"PING\r\n", b"PONG\r\n", b"MSG a.b 1 5\r\nhello\r\n", b"MSG a 2 r 0\r\n\r\n",
    b"HMSG h 3 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", b'INFO {"a":1}\r\n', b"-ERR 'x'\r\n",
])
_NOISE = st.one_of(st.binary(max_size=64), _ATOMS)
_HOSTILE = st.lists(_NOISE, max_size=40).map(b"".join)


def _check_against_reference(data: bytes, cuts: list[int]) -> bool:
    """Hostile bytes raise ProtocolError only. When the independent reference decoder finds
    the stream strictly valid, the parser must decode exactly what it does (so a parser that
    refuses everything fails). Returns whether the stream was valid."""
    try:
        ref_msgs, ref_ctrl, _left = reference_codec.decode(data, MAX_PAYLOAD)
    except reference_codec.Invalid:
        try:
            _parse(_split(data, cuts))
        except ProtocolError:
            pass
        return False
    msgs, ctrl = _parse(_split(data, cuts))
    want: dict[bytes, list[Any]] = {}
    for sid, *row in ref_msgs:
        want.setdefault(sid, []).append(tuple(row))
    assert (msgs, ctrl) == (want, ref_ctrl)
    return True


@FUZZ
@given(data=_HOSTILE, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_raise_only_protocol_error(data: bytes, cuts: list[int]) -> None:
    _check_against_reference(data, cuts)


@FUZZ
@given(data=st.binary(max_size=2048), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_pure_random_bytes(data: bytes, cuts: list[int]) -> None:
    _check_against_reference(data, cuts)


def test_hostile_streams_include_valid_ones() -> None:
    """The fuzz strategy does reach the positive branch, with messages in it."""
    found = find(_HOSTILE, lambda d: len(d) > 20 and b"MSG" in d
                 and _check_against_reference(d, []) and reference_codec.decode(d, 4096)[0],
                 settings=settings(max_examples=2000, database=None))
    assert reference_codec.decode(found, MAX_PAYLOAD)[0]


def test_endless_line_is_refused_not_buffered() -> None:
    parser = Parser(MAX_PAYLOAD)
    try:
        for _ in range(100):
            parser.feed(b"A" * 8192)
    except ProtocolError as exc:
        assert "control line longer" in str(exc)
    else:
        raise AssertionError("800 KB without CRLF was accepted")
    assert parser.buffered <= MAX_CONTROL_LINE + 8192


def test_huge_size_refused_before_allocation() -> None:
    for line in (b"MSG a 1 4097\r\n", b"MSG a 1 99999999999999999999\r\n",
                 b"HMSG a 1 10 99999999999\r\n", b"MSG a 1 -1\r\n"):
        parser = Parser(MAX_PAYLOAD)
        try:
            parser.feed(line)
        except ProtocolError as exc:
            assert "outside" in str(exc) or "malformed" in str(exc)
        else:
            raise AssertionError(f"{line!r} accepted")


# -- valid streams ---------------------------------------------------------------------------
_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789_-$", min_size=1, max_size=8)
_SUBJECT = st.lists(_TOKEN, min_size=1, max_size=4).map(".".join)
_SID = st.integers(min_value=1, max_value=10_000).map(lambda i: str(i).encode())
_HEADERS = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABC", min_size=1, max_size=8),
    st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
            max_size=12),
    min_size=1, max_size=3)


@st.composite
def _msg_frame(draw: st.DrawFn) -> tuple[bytes, tuple[str, Any]]:
    subject = draw(_SUBJECT).encode()
    sid = draw(_SID)
    reply = draw(st.none() | _SUBJECT.map(str.encode))
    payload = draw(st.binary(max_size=600))
    rp = b" " + reply if reply else b""
    if draw(st.booleans()):
        hdr = encode_headers(draw(_HEADERS))
        size = len(hdr) + len(payload)
        frame = b"HMSG %b %b%b %d %d\r\n%b%b\r\n" % (subject, sid, rp, len(hdr), size, hdr,
                                                     payload)
        return frame, ("msg", (sid, (subject, reply, hdr, payload)))
    frame = b"MSG %b %b%b %d\r\n%b\r\n" % (subject, sid, rp, len(payload), payload)
    return frame, ("msg", (sid, (subject, reply, None, payload)))


_INFO_OBJ = st.dictionaries(st.sampled_from(["server_id", "max_payload", "ldm", "x"]),
                            st.integers(0, 10**6) | st.booleans() | _TOKEN, max_size=3)
_CTRL = st.one_of(
    st.just((b"PING\r\n", ("ctrl", ("PING", None)))),
    st.just((b"PONG\r\n", ("ctrl", ("PONG", None)))),
    st.just((b"+OK\r\n", ("ctrl", ("+OK", None)))),
    _TOKEN.map(lambda t: (b"-ERR '" + t.encode() + b"'\r\n", ("ctrl", ("-ERR", t)))),
    _INFO_OBJ.map(lambda d: (b"INFO " + orjson.dumps(d) + b"\r\n", ("ctrl", ("INFO", d)))),
)
_STREAM = st.lists(st.one_of(_msg_frame(), _CTRL), max_size=25)


def _expected(frames: list[tuple[bytes, tuple[str, Any]]]) -> tuple[dict[bytes, list[Any]],
                                                                    list[Any]]:
    msgs: dict[bytes, list[Any]] = {}
    ctrl: list[Any] = []
    for _, (kind, item) in frames:
        if kind == "msg":
            sid, row = item
            msgs.setdefault(sid, []).append(row)
        else:
            ctrl.append(item)
    return msgs, ctrl


@FUZZ
@given(frames=_STREAM, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_valid_stream_parses_the_same_under_any_split(
        frames: list[tuple[bytes, tuple[str, Any]]], cuts: list[int]) -> None:
    data = b"".join(f for f, _ in frames)
    want = _expected(frames)
    assert _parse([data]) == want
    assert _parse(_split(data, cuts)) == want


@settings(max_examples=30, deadline=None)
@given(frames=_STREAM)
def test_valid_stream_byte_by_byte(frames: list[tuple[bytes, tuple[str, Any]]]) -> None:
    data = b"".join(f for f, _ in frames)
    assert _parse([data[i:i + 1] for i in range(len(data))]) == _expected(frames)


@settings(max_examples=20, deadline=None)
@given(payload_size=st.integers(min_value=70_000, max_value=300_000),
       cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_large_frames_split_anywhere(payload_size: int, cuts: list[int]) -> None:
    payload = bytes(range(256)) * (payload_size // 256 + 1)
    payload = payload[:payload_size]
    data = (b"PING\r\nMSG big.subject 7 %d\r\n%b\r\nPONG\r\n" % (len(payload), payload))
    msgs, ctrl = _parse(_split(data, cuts), max_payload=1 << 20)
    assert msgs == {b"7": [(b"big.subject", None, None, payload)]}
    assert ctrl == [("PING", None), ("PONG", None)]
