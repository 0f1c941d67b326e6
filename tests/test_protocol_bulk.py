"""The parser's bulk pass for floods of differing MSG lines (many subjects and sizes) against a
plain reference decoder: long streams, any split, awkward subjects, payloads holding CRLFs and
whole fake frames, control lines and HMSGs in between."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from natsbook.wire._protocol import BULK_MIN, Parser
from tests.support.run_streams import switched_off


def reference(stream: bytes) -> tuple[list[tuple[bytes, ...]], list[str]]:
    """Frame by frame, the obvious way: (sid, subject, reply, headers, payload) per message,
    the op name of each control line."""
    msgs: list[tuple[bytes, ...]] = []
    ctrl: list[str] = []
    pos = 0
    while pos < len(stream):
        eol = stream.index(b"\r\n", pos)
        args = stream[pos:eol].split(b" ")
        op = args[0].upper()
        if op == b"MSG":
            subject, sid = args[1], args[2]
            reply = args[3] if len(args) == 5 else None
            size = int(args[-1])
            msgs.append((sid, subject, reply, None, stream[eol + 2:eol + 2 + size]))
            pos = eol + 2 + size + 2
        elif op == b"HMSG":
            subject, sid = args[1], args[2]
            reply = args[3] if len(args) == 6 else None
            hlen, total = int(args[-2]), int(args[-1])
            body = stream[eol + 2:eol + 2 + total]
            msgs.append((sid, subject, reply, body[:hlen], body[hlen:]))
            pos = eol + 2 + total + 2
        else:
            ctrl.append(op.decode().lstrip("+-"))
            pos = eol + 2
    msgs.sort(key=lambda m: m[0])  # stable: arrival order within each sid
    return msgs, ctrl


def parse(chunks: list[bytes]) -> tuple[list[tuple[bytes, ...]], list[str]]:
    p = Parser()
    msgs: list[tuple[bytes, ...]] = []
    ctrl: list[str] = []
    for c in chunks:
        groups, cs = p.feed(c)
        for sid, rows in groups.items():
            msgs.extend((sid, *r) for r in rows)
        ctrl.extend(op.lstrip("+-") for op, _ in cs)
    assert p.buffered == 0
    msgs.sort(key=lambda m: m[0])
    return msgs, ctrl


_TOKEN = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(c for c in b if c not in b" \t\r\n\x0b\x0c") or b"x")
_SUBJECT = st.one_of(
    st.builds(lambda i: b"flood.%d" % i, st.integers(0, 99)),
    _TOKEN,
    st.sampled_from([b"MSG", b"a.*.>", b"\xc3\xa9.\xff", b"x" * 300, b"PING"]),
)
_PAYLOAD = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda n: b"y" * n, st.integers(0, 2100)),
    st.sampled_from([b"", b"\r\n", b"a\r\nb", b"MSG a 1 3\r\nabc", b"\r\nMSG s 1 0\r\n",
                     b"x\r", b"\nx", b"\t", b"PING\r\n"]),
)


def _msg(subject: bytes, sid: int, reply: bytes | None, payload: bytes, lower: bool) -> bytes:
    op = b"msg" if lower else b"MSG"
    r = b" " + reply if reply else b""
    return b"%b %b %d%b %d\r\n%b\r\n" % (op, subject, sid, r, len(payload), payload)


_HDR = b"NATS/1.0\r\nA: 1\r\n\r\n"
_FRAME = st.one_of(
    st.builds(_msg, _SUBJECT, st.integers(1, 3), st.one_of(st.none(), _TOKEN), _PAYLOAD,
              st.just(False)),
    st.builds(_msg, _SUBJECT, st.integers(1, 3), st.none(), _PAYLOAD, st.just(True)),
    st.builds(lambda s, p: b"HMSG %b 2 %d %d\r\n%b%b\r\n"
              % (s, len(_HDR), len(_HDR) + len(p), _HDR, p), _SUBJECT, _PAYLOAD),
    st.sampled_from([b"PING\r\n", b"PONG\r\n", b"+OK\r\n"]),
)


def _streams() -> st.SearchStrategy[bytes]:
    # Mostly differing MSG lines (what the bulk pass is for), the rest awkward.
    plain = st.builds(_msg, _SUBJECT, st.integers(1, 3), st.one_of(st.none(), _TOKEN),
                      st.binary(max_size=47), st.just(False))
    frame = st.one_of(plain, plain, plain, _FRAME)
    return st.lists(frame, min_size=40, max_size=120).map(b"".join)


@settings(max_examples=150, deadline=None)
@given(_streams(), st.data())
def test_bulk_pass_agrees_with_reference_under_any_split(stream: bytes,
                                                         data: st.DataObject) -> None:
    want = reference(stream)
    assert parse([stream]) == want
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks, prev = [], 0
    for c in [*cuts, len(stream)]:
        chunks.append(stream[prev:c])
        prev = c
    assert parse(chunks) == want


def test_a_varied_flood_is_long_enough_for_the_bulk_pass() -> None:
    """The generated streams do reach the bulk pass: a typical one is past BULK_MIN."""
    frames = [_msg(b"flood.%d" % (i % 100), 1, None, b"x" * (8 + i % 40), False)
              for i in range(5000)]
    stream = b"".join(frames)
    assert len(stream) > BULK_MIN
    want = reference(stream)
    assert parse([stream]) == want
    assert parse([stream[i:i + 1000] for i in range(0, len(stream), 1000)]) == want


def _outcome(chunks: list[bytes]) -> object:
    try:
        return parse(chunks)
    except Exception as exc:  # a ProtocolError must be the same with and without bulk
        return type(exc).__name__


@settings(max_examples=100, deadline=None)
@given(st.lists(st.builds(_msg, st.sampled_from([b"a\tb", b"a\rb", b"a\nb", b"a\x0bb", b"s.1",
                                                b"s.2", b"s.3"]),
                          st.integers(1, 2), st.none(), st.binary(max_size=40), st.just(False)),
                min_size=60, max_size=150).map(b"".join))
def test_bulk_pass_changes_nothing_on_whitespace_in_lines(stream: bytes) -> None:
    """Lines the reference cannot judge (a tab or a lone CR/LF inside a token): the parser with
    the bulk pass answers exactly as without it."""
    import natsbook.wire._protocol as proto

    with_bulk = _outcome([stream])
    with switched_off(proto, "BULK_MIN"):
        without = _outcome([stream])
    assert with_bulk == without
