"""Msg, Headers and payload encoding, pinned field by field (mutation testing found them
reached only through the connection, with most fields never compared)."""

from __future__ import annotations

import numpy as np
import pytest

from natsbook import Connection
from natsbook.errors import BadInputError
from natsbook.wire._msg import Headers, Msg, encode_payload
from tests.support.waiting import wait_for


def test_from_raw_without_headers_keeps_every_field() -> None:
    m = Msg.from_raw(b"a.b", None, None, b"data")
    assert (m.subject, m.data, m.reply, m.headers, m.status, m.description, m.time, m.sid) == \
        ("a.b", b"data", None, None, None, "", 0.0, 0)
    m = Msg.from_raw(b"a.b", b"r.1", b"", b"", time=12.5, sid=7, conn="c")
    assert (m.reply, m.headers, m.status, m.description, m.time, m.sid, m._conn) == \
        ("r.1", None, None, "", 12.5, 7, "c")


def test_from_raw_with_status_headers() -> None:
    m = Msg.from_raw(b"s", None, b"NATS/1.0 503 No Responders\r\nA: 1\r\nA: 2\r\n\r\n", b"")
    assert (m.status, m.description) == (503, "No Responders")
    assert m.headers is not None and m.headers.items_all() == [("A", "1"), ("A", "2")]


def test_from_raw_of_a_bad_header_block_raises_or_flags() -> None:
    from natsbook.errors import ProtocolError

    with pytest.raises(ProtocolError, match=r"^natsbook: header block does not start with "
                                            r"NATS/1\.0: 'XYZ'$"):
        Msg.from_raw(b"s", None, b"XYZ\r\n\r\n", b"p")
    m = Msg.from_raw(b"s", b"r", b"XYZ\r\n\r\n", b"p", time=1.5, sid=3, lenient=True)
    assert (m.subject, m.reply, m.data, m.headers, m.status, m.time, m.sid) == \
        ("s", "r", b"p", None, None, 1.5, 3)
    assert m.header_error == "header block does not start with NATS/1.0: 'XYZ'"
    ok = Msg.from_raw(b"s", None, b"NATS/1.0 503\r\n\r\n", b"", lenient=True)
    assert ok.header_error is None and ok.status == 503 and ok.headers is not None
    assert Msg.from_raw(b"s", None, None, b"").header_error is None


def test_from_raw_replaces_bad_utf8_in_subject_and_reply() -> None:
    m = Msg.from_raw(b"a.\xff", b"r.\xfe", None, b"\xff")
    assert m.subject == "a.\ufffd" and m.reply == "r.\ufffd" and m.data == b"\xff"
    with pytest.raises(UnicodeDecodeError):
        m.text()


def test_headers_mapping_keeps_repeats_and_order() -> None:
    h = Headers([("B", "1"), ("A", "2"), ("B", "3")])
    assert list(h) == ["B", "A"] and len(h) == 2
    assert h["B"] == "1" and h.getall("B") == ["1", "3"]
    assert h.items_all() == [("B", "1"), ("A", "2"), ("B", "3")]
    assert h.to_dict() == {"B": ["1", "3"], "A": ["2"]}
    assert dict(h) == {"B": "1", "A": "2"}
    with pytest.raises(KeyError) as exc:
        h["b"]  # case-sensitive, as on the wire
    assert exc.value.args == ("b",)
    assert Headers().to_dict() == {} and list(Headers()) == []
    assert repr(Headers([("K", "v")])) == "Headers([('K', 'v')])"


def test_encode_payload_types() -> None:
    assert encode_payload(b"x") == b"x"
    assert encode_payload(bytearray(b"y")) == b"y"
    assert encode_payload(memoryview(b"z")) == b"z"
    assert encode_payload("é") == "é".encode()
    assert encode_payload(None) == b""
    assert encode_payload({"a": [1, 2.5, True, None]}) == b'{"a":[1,2.5,true,null]}'
    assert encode_payload({1: "int key"}) == b'{"1":"int key"}'
    assert encode_payload(np.array([1, 2])) == b"[1,2]"
    with pytest.raises(BadInputError) as exc:
        encode_payload(object())
    assert str(exc.value) == ("natsbook: cannot send a object as a payload (Type is not JSON "
                              "serializable: object) - pass bytes, str, or a JSON-serialisable "
                              "dict/list")


def test_respond(conn: Connection, subject: str) -> None:
    replies = conn.subscribe(f"{subject}.reply")
    got: list[Msg] = []
    conn.subscribe(subject, callback=got.append)
    conn.publish(subject, b"q1", reply=f"{subject}.reply")
    conn.publish(subject, b"q2")
    conn.flush()
    assert wait_for(lambda: len(got) == 2)
    got[0].respond()
    got[0].respond({"ok": 1}, headers={"K": "v"})
    conn.flush()
    assert wait_for(lambda: len(replies) == 2)
    first, second = replies.messages(last=2)
    assert first.data == b"" and first.headers is None
    assert second.json() == {"ok": 1} and second.headers is not None
    assert second.headers["K"] == "v"
    with pytest.raises(BadInputError) as exc:
        got[1].respond(b"x")
    assert str(exc.value) == (f"natsbook: message on {subject!r} has no reply subject to "
                              "respond to")
    with pytest.raises(BadInputError) as exc:
        Msg("s", b"", reply="r").respond(b"x")
    assert str(exc.value) == "natsbook: message is not bound to a connection"
