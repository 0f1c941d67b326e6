"""The wire codec byte for byte and its errors word for word (mutations of the codec that the
round-trip tests let through: exact encodings, header key boundaries, status lines, error
texts, a frame completed by the last byte of a chunk)."""

from __future__ import annotations

import pytest

from natsbook.errors import BadHeaderError, ProtocolError
from natsbook.wire._info import check_info, info_error
from natsbook.wire._protocol import (
    MAX_CONTROL_LINE,
    Parser,
    decode_info,
    encode_connect,
    encode_headers,
    encode_pub,
    parse_headers,
)


def test_exact_encodings() -> None:
    assert encode_connect({"verbose": False, "name": "x"}) == \
        b'CONNECT {"verbose":false,"name":"x"}\r\n'
    hdr = b"NATS/1.0\r\nK: v\r\n\r\n"
    assert encode_pub(b"s", None, b"ab", hdr) == b"HPUB s 18 20\r\n" + hdr + b"ab\r\n"
    assert encode_pub(b"s", b"r", b"ab", hdr) == b"HPUB s r 18 20\r\n" + hdr + b"ab\r\n"
    assert encode_pub(b"s", b"r", b"ab") == b"PUB s r 2\r\nab\r\n"
    assert encode_pub(b"s", None, b"") == b"PUB s 0\r\n\r\n"


def test_encode_headers_exact() -> None:
    assert encode_headers({}, status="503") == b"NATS/1.0 503\r\n\r\n"
    assert encode_headers({"A": ["1", "2"], "B": b"raw"}) == \
        b"NATS/1.0\r\nA: 1\r\nA: 2\r\nB: raw\r\n\r\n"
    assert encode_headers([("C", 5)]) == b"NATS/1.0\r\nC: 5\r\n\r\n"  # type: ignore[list-item]
    assert encode_headers([("K", "v"), ("K", "w")]) == b"NATS/1.0\r\nK: v\r\nK: w\r\n\r\n"
    # The printable ASCII boundaries are keys' own characters.
    assert encode_headers({"!~": "x"}) == b"NATS/1.0\r\n!~: x\r\n\r\n"


@pytest.mark.parametrize("key", ["a\x00", "a\x01", "a\x7f", "caf\u00e9", "a b", "a:b", "a\tb"])
def test_header_key_refused_exactly(key: str) -> None:
    with pytest.raises(BadHeaderError) as exc:
        encode_headers({key: "v"})
    assert exc.value.key == key
    assert str(exc.value) == (f"natsbook: bad header {key!r}: keys may not contain ':', spaces "
                              "or control characters - use e.g. 'X-Sensor-Id'")


def test_header_errors_exact() -> None:
    with pytest.raises(BadHeaderError) as exc:
        encode_headers({"": "v"})
    assert exc.value.key == ""
    assert str(exc.value) == "natsbook: bad header '': header keys must be non-empty strings"
    with pytest.raises(BadHeaderError) as exc:
        encode_headers([(3, "v")])  # type: ignore[list-item]
    assert exc.value.key == "3"
    with pytest.raises(BadHeaderError) as exc:
        encode_headers({"K": "a\nb"})
    assert exc.value.key == "K"
    assert str(exc.value) == ("natsbook: bad header 'K': values may not contain CR or LF - send "
                              "it in the payload")


def test_parse_headers_edges() -> None:
    assert parse_headers(b"NATS/1.0\r\n\r\n") == (None, "", [])
    assert parse_headers(b"NATS/1.0 Idle Heartbeat\r\n\r\n") == (None, "Idle Heartbeat", [])
    assert parse_headers(b"NATS/1.0 503\r\n\r\n") == (503, "", [])
    # A line without ':' and an empty line in the middle are skipped, not the end.
    assert parse_headers(b"NATS/1.0\r\nA: 1\r\nnocolon\r\n\r\nB: 2\r\n\r\n") == \
        (None, "", [("A", "1"), ("B", "2")])
    assert parse_headers(b"NATS/1.0\r\nUrl: http://x:80/\r\n\r\n") == \
        (None, "", [("Url", "http://x:80/")])  # split at the first ':' only
    assert parse_headers(b"NATS/1.0\r\nK: caf\xc3\xa9 \xff\r\n\r\n") == \
        (None, "", [("K", "caf\u00e9 \ufffd")])
    long = b"X" * 100
    with pytest.raises(ProtocolError) as exc:
        parse_headers(long + b"\r\n\r\n")
    assert str(exc.value) == ("natsbook: header block does not start with NATS/1.0: "
                              f"{'X' * 40!r}")


def test_decode_info_errors_exact() -> None:
    assert decode_info(b'INFO {"a":1}') == {"a": 1}
    long = b"HELLO " + b"x" * 100
    with pytest.raises(ProtocolError) as exc:
        decode_info(long)
    assert str(exc.value) == f"natsbook: expected INFO, got {long[:40]!r}"
    bad = b"INFO {" + b"x" * 100
    with pytest.raises(ProtocolError) as exc:
        decode_info(bad)
    assert str(exc.value) == f"natsbook: malformed INFO: {bad[:80]!r}"
    arr = b"INFO [" + b"1," * 50 + b"1]"
    with pytest.raises(ProtocolError) as exc:
        decode_info(arr)
    assert str(exc.value) == f"natsbook: INFO is not a JSON object: {arr[:80]!r}"


def test_check_info_keeps_good_fields_drops_nulls_ignores_unknown() -> None:
    info = {"server_id": "S", "server_name": "n", "version": "2.10.0", "proto": 1,
            "headers": True, "max_payload": 0, "port": -1, "client_id": 0, "ldm": False,
            "connect_urls": [], "ws_connect_urls": ["h:1", ""], "nonce": None, "jetstream": None,
            "x": {"any": [1]}, "y": None}
    assert check_info(info) is info
    assert "nonce" not in info and "jetstream" not in info  # null: as if absent (nats.go)
    assert info["y"] is None and info["x"] == {"any": [1]}  # unknown fields: left alone
    assert info["client_id"] == 0 and info["ws_connect_urls"] == ["h:1", ""]


@pytest.mark.parametrize(("key", "value", "want"), [
    ("server_id", 1, "a string, got int 1"),
    ("version", 2.1, "a string, got float 2.1"),
    ("host", ["h"], "a string, got list ['h']"),
    ("nonce", True, "a string, got bool True"),
    ("tls_available", 1, "true or false, got int 1"),
    ("auth_required", "true", "true or false, got str 'true'"),
    ("jetstream", [], "true or false, got list []"),
    ("port", "4222", "an integer, got str '4222'"),
    ("proto", False, "an integer, got bool False"),
    ("max_payload", 1.0, "an integer, got float 1.0"),
    ("client_id", -1, "a non-negative integer, got int -1"),
    ("client_id", True, "a non-negative integer, got bool True"),
    ("connect_urls", "h:1", "a list of strings, got str 'h:1'"),
    ("connect_urls", ("h:1",), "a list of strings, got tuple ('h:1',)"),
    ("connect_urls", ["h:1", None], "a list of strings, got list ['h:1', None]"),
    ("ws_connect_urls", 0, "a list of strings, got int 0"),
    # 40 characters of repr are shown as they are; longer ones cut to 37 and "..."
    ("cluster", 10 ** 39, f"a string, got int {10 ** 39}"),
    ("cluster", 10 ** 40, f"a string, got int {str(10 ** 40)[:37]}..."),
])
def test_check_info_refuses_exactly(key: str, value: object, want: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        check_info({"server_id": "S", key: value, "later": 1})
    assert str(exc.value) == f"natsbook: INFO field {key!r} must be {want}"


def test_check_info_names_the_first_bad_field() -> None:
    with pytest.raises(ProtocolError, match="'port'"):
        check_info({"port": "x", "max_payload": "y"})
    assert info_error({"port": "x"}) == "INFO field 'port' must be an integer, got str 'x'"
    assert info_error({"port": 1, "other": "x"}) is None


@pytest.mark.parametrize("line", [b"X\r\n", b"M\r\n", b"\x00\r\n"])
def test_one_byte_lines_are_not_nats(line: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"unknown protocol line|malformed message line"):
        Parser().feed(line)


def test_control_lines_exact() -> None:
    p = Parser()
    _, ctrl = p.feed(b"-ERR 'XbadX \xff'\r\n-ERR 'Stale Connection'\r\n")
    assert ctrl == [("-ERR", "XbadX \ufffd"), ("-ERR", "Stale Connection")]
    line = b"WHAT " + b"y" * 100
    with pytest.raises(ProtocolError) as exc:
        Parser().feed(line + b"\r\n")
    assert str(exc.value) == f"natsbook: unknown protocol line {line[:80]!r}"


def test_frame_completed_by_the_last_byte_of_a_chunk_is_delivered_at_once() -> None:
    payload = b"p" * 100_000  # over 64 KiB: the parser collects parts without re-joining
    data = b"MSG big 1 %d\r\n%b\r\n" % (len(payload), payload)
    p = Parser()
    assert p.feed(data[:50_000]) == ({}, [])
    assert p.buffered == 50_000
    groups, _ = p.feed(data[50_000:])  # ends exactly at the frame's CRLF
    assert groups == {b"1": [(b"big", None, None, payload)]}
    assert p.buffered == 0


def test_reset_drops_a_partial_frame() -> None:
    assert Parser().buffered == 0
    p = Parser()
    p.feed(b"MSG a 1 10\r\nabc")
    assert p.buffered > 0
    p.reset()
    assert p.buffered == 0
    assert p.feed(b"PING\r\nMSG a 1 2\r\nok\r\n") == ({b"1": [(b"a", None, None, b"ok")]},
                                                     [("PING", None)])
    big = Parser()
    big.feed(b"MSG a 1 100000\r\n" + b"x" * 70_000)
    big.reset()
    assert big.buffered == 0
    assert big.feed(b"PONG\r\n") == ({}, [("PONG", None)])


@pytest.mark.parametrize("headed", [False, True])
def test_cached_line_resumes_after_other_lines(headed: bool) -> None:
    """The line cache outlives 15 frames of another line (the probe countdown): when the
    cached line comes back, its flood must still be filed under its own sid, with its
    headers."""
    hdr = b"NATS/1.0\r\nA: 1\r\n\r\n"

    def frame(sid: int, body: bytes) -> bytes:
        if headed and sid == 1:
            return b"HMSG x 1 %d %d\r\n%b%b\r\n" % (len(hdr), len(hdr) + len(body), hdr, body)
        return b"MSG %b %d %d\r\n%b\r\n" % (b"x" if sid == 1 else b"y", sid, len(body), body)

    stream = b"".join([frame(1, b"a0")] + [frame(2, b"b%d" % (i % 10)) for i in range(15)]
                      + [frame(1, b"a%d" % (i % 10)) for i in range(1, 21)])
    groups, _ = Parser().feed(stream)
    assert [r[3] for r in groups[b"1"]] == [b"a%d" % (i % 10) for i in range(21)]
    assert [r[3] for r in groups[b"2"]] == [b"b%d" % (i % 10) for i in range(15)]
    assert {r[2] for r in groups[b"1"]} == ({hdr} if headed else {None})
    assert {(r[0], r[1]) for r in groups[b"1"]} == {(b"x", None)}


def test_size_error_quotes_the_line_exactly() -> None:
    line = b"MSG " + b"s" * 90 + b" 1 101"
    with pytest.raises(ProtocolError) as exc:
        Parser(max_payload=100).feed(line + b"\r\n")
    assert str(exc.value) == f"natsbook: message size 101 outside 0..100 in {line[:80]!r}"
    short = b"MSG a 1 101"
    with pytest.raises(ProtocolError) as exc:
        Parser(max_payload=100).feed(short + b"\r\n")
    assert str(exc.value) == f"natsbook: message size 101 outside 0..100 in {short!r}"


def test_cached_line_needs_its_crlf_right_after_it() -> None:
    """'MSG a 1 8' cached must not match 'MSG a 1 80', even when a CRLF sits inside the
    previous payload (the check must look right after the line, nowhere else)."""
    small = b"MSG a 1 8\r\nx\r\nyyyyy\r\n"
    big = b"MSG a 1 80\r\n" + b"z" * 80 + b"\r\n"
    groups, _ = Parser().feed(small * 16 + big)
    assert [r[3] for r in groups[b"1"]] == [b"x\r\nyyyyy"] * 16 + [b"z" * 80]


def test_control_line_limits() -> None:
    # A stray CRLF between frames is skipped, also at the very start of a chunk.
    assert Parser().feed(b"\r\nPING\r\n") == ({}, [("PING", None)])
    # Up to MAX_CONTROL_LINE bytes of an unfinished line are buffered; one more is refused.
    p = Parser()
    assert p.feed(b"A" * MAX_CONTROL_LINE) == ({}, [])
    with pytest.raises(ProtocolError, match="control line longer than"):
        Parser().feed(b"A" * (MAX_CONTROL_LINE + 1))
    # The limit applies to the unfinished line, not to the whole chunk it ends.
    frames = b"MSG a 1 100\r\n" + b"p" * 100 + b"\r\n"
    chunk = frames * (MAX_CONTROL_LINE // len(frames) + 10) + b"PIN"
    groups, _ = Parser().feed(chunk)
    assert len(groups[b"1"]) == MAX_CONTROL_LINE // len(frames) + 10


def test_tolerated_spellings_take_the_per_line_path() -> None:
    """Lines the fast regex does not take (lower case, tabs, doubled spaces) still parse the
    same: with and without reply, MSG and HMSG."""
    stream = (b"msg a 1 2\r\nok\r\n" b"MSG\ta  1\tr.1 3\r\nabc\r\n"
              b"hmsg h 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
              b"HMSG  h 2 r.2 12 12\r\nNATS/1.0\r\n\r\n\r\n")
    groups, _ = Parser().feed(stream)
    assert groups == {
        b"1": [(b"a", None, None, b"ok"), (b"a", b"r.1", None, b"abc")],
        b"2": [(b"h", None, b"NATS/1.0\r\n\r\n", b"hi"), (b"h", b"r.2", b"NATS/1.0\r\n\r\n", b"")],
    }


@pytest.mark.parametrize(("line", "why"), [
    (b"msg " + b"s" * 90 + b" 1 x", "malformed message line"),
    (b"MSGX " + b"s" * 90, "unknown protocol line"),
    (b"msg " + b"s" * 90 + b" 1 999", "message size 999 outside 0..100 in"),
])
def test_per_line_errors_quote_80_bytes(line: bytes, why: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        Parser(max_payload=100).feed(line + b"\r\n")
    assert str(exc.value) == f"natsbook: {why} {line[:80]!r}"


def test_endless_line_error_quotes_40_bytes() -> None:
    data = b"Q" * 10 + b"R" * (MAX_CONTROL_LINE + 10)
    with pytest.raises(ProtocolError) as exc:
        Parser().feed(data)
    assert str(exc.value) == (f"natsbook: control line longer than {MAX_CONTROL_LINE} bytes: "
                              f"{data[:40]!r}...")


def test_unterminated_payload_error_quotes_80_bytes() -> None:
    line = b"MSG " + b"s" * 90 + b" 1 2"
    with pytest.raises(ProtocolError) as exc:
        Parser().feed(line + b"\r\nokXY")
    assert str(exc.value) == ("natsbook: message payload not terminated by CRLF after 2 bytes "
                              f"({line[:80]!r})")
