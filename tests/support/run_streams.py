"""Streams for the bulk run path's tests (tests/test_runs.py, tests/test_runs_props.py):
frame builders, hypothesis strategies, and the parser driven with runs on and off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pyarrow as pa
from hypothesis import strategies as st

import natsbook.wire._runs as runs
from natsbook.capture._store import CaptureStore
from natsbook.wire._protocol import Parser, RawMsg
from natsbook.wire._runs import MsgRun, RunColumns
from tests.support.reference_codec import decode

LIMIT = 1 << 20
T_NS = 1_700_000_000_123_456_789

TOKEN = st.binary(min_size=1, max_size=10).map(
    lambda b: bytes(c for c in b if 0x20 < c < 0x7F) or b"t")
SUBJECT = st.one_of(st.builds(lambda i: b"flood.%d" % i, st.integers(0, 99)), TOKEN,
                     st.sampled_from([b"MSG", b"a.*.>", b"x" * 200, b"PING", b"1"]))
AWKWARD = st.sampled_from([b"", b"\r\n", b"a\r\nb", b"MSG a 1 3\r\nabc", b"\r\nMSG s 1 0\r\n",
                           b"x\r", b"\nx", b"\t", b"PING\r\n", b" ", b"\r", b"\n"])
CLEAN = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"."))  # LF, tab, space kept
#: Mostly payloads a run can take, one in eleven that ends it (a CR) or looks like a frame.
PAYLOAD = st.one_of(*[CLEAN] * 10, AWKWARD, st.binary(max_size=60))


def msg(subject: bytes, sid: bytes, reply: bytes | None, payload: bytes) -> bytes:
    r = b" " + reply if reply else b""
    return b"MSG %b %b%b %d\r\n%b\r\n" % (subject, sid, r, len(payload), payload)


@st.composite
def run(draw: st.DrawFn) -> bytes:
    """A stretch of one sid's plain MSG frames: replies on every line, none, or some; clean
    payloads or now and then one that ends a run."""
    sid = draw(st.sampled_from([b"1", b"7", b"12", b"123456"]))
    replies = draw(st.sampled_from(["none", "all", "some"]))
    payloads = draw(st.sampled_from([CLEAN, PAYLOAD]))
    n = draw(st.integers(1, 150))
    out = []
    for i in range(n):
        with_reply = replies == "all" or (replies == "some" and draw(st.booleans()))
        reply = draw(TOKEN) if with_reply else None
        # Lines differ frame to frame (what runs are for): a numbered subject, mostly.
        subject = draw(SUBJECT) + (b".%d" % i if draw(st.integers(0, 9)) else b"")
        out.append(msg(subject, sid, reply, draw(payloads)))
    return b"".join(out)


HDR = b"NATS/1.0\r\nA: 1\r\n\r\n"
OTHER = st.one_of(
    st.sampled_from([b"PING\r\n", b"PONG\r\n", b"+OK\r\n"]),
    st.builds(lambda s, p: b"HMSG %b 7 %d %d\r\n%b%b\r\n" % (s, len(HDR), len(HDR) + len(p),
                                                           HDR, p), SUBJECT, PAYLOAD),
    st.builds(lambda p: b"MSG big 1 %d\r\n%b\r\n" % (len(p), p),
              st.builds(lambda n: b"z" * n, st.integers(0, 5000))),
)
STREAM = st.lists(st.one_of(run(), run(), run(), OTHER), min_size=1, max_size=8).map(
    b"".join)


def parse(chunks: list[bytes]) -> tuple[list[tuple[bytes, ...]], list[str], int]:
    """Rows as (sid, subject, reply, headers, payload) in arrival order within each sid, the
    control ops, and how many rows came through bulk columns."""
    p = Parser(LIMIT)
    msgs: list[tuple[bytes, ...]] = []
    ctrl: list[str] = []
    bulk = 0
    for c in chunks:
        groups, cs = p.feed(c)
        for sid, rows in groups.items():
            if isinstance(rows, MsgRun):
                bulk += sum(part.n for part in rows.parts if isinstance(part, RunColumns))
            msgs.extend((sid, *r) for r in rows)
        ctrl.extend(op for op, _ in cs)
    assert p.buffered == 0
    msgs.sort(key=lambda m: m[0])  # stable: arrival order within each sid
    return msgs, ctrl, bulk


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    chunks, prev = [], 0
    for c in [*sorted(cuts), len(stream)]:
        chunks.append(stream[prev:c])
        prev = c
    return chunks


def reference(stream: bytes) -> tuple[list[tuple[bytes, ...]], list[str]]:
    rows, ctrl, rest = decode(stream, LIMIT)
    assert rest == 0
    return sorted(rows, key=lambda r: r[0]), [op for op, _ in ctrl]


@contextmanager
def switched_off(module: ModuleType, threshold: str) -> Iterator[None]:
    """A fast path's threshold set out of reach while the block runs (``_runs.RUN_MIN``: no
    runs; ``_protocol.BULK_MIN``: no bulk pass at all), then put back."""
    saved = getattr(module, threshold)
    setattr(module, threshold, 1 << 62)
    try:
        yield
    finally:
        setattr(module, threshold, saved)


def without_runs(chunks: list[bytes]) -> object:
    with switched_off(runs, "RUN_MIN"):
        return outcome(chunks)


def outcome(chunks: list[bytes]) -> object:
    try:
        return parse(chunks)[:2]
    except Exception as exc:  # a ProtocolError must be the same with and without runs
        return type(exc).__name__, str(exc)


ODD_FRAMES = [b"msg a 1 1\r\nx\r\n", b"MSG a  1 1\r\nx\r\n", b"MSG a 1 1 \r\nx\r\n",
                        b"MSG a\t1 1\r\nx\r\n", b"MSG a\n 1 1\r\nx\r\n", b"MSG a 1 x\r\nx\r\n",
                        b"MSG a 1 -1\r\nx\r\n", b"MSG a 1 0001\r\nx\r\n", b"MSG a 1\r\n",
                        b"MSG a 1 2\r\nx\r\n", b"MSG a 1 1\r\nx\rx", b"MSG \xff\xfe 1 1\r\nx\r\n",
                        b"MSG caf\xc3\xa9 1 1\r\nx\r\n", b"MSG a 1 1234567890123\r\nx\r\n",
                        b"MSG a 1 2000000\r\n", b"MSG a 2 1\r\nx\r\n", b"\r\n",
                        b"MSG a 1 0000000000001\r\nx\r\n", b"MSG  1 1\r\nx\r\n",
                        b"MSG a 1  1\r\nx\r\n", b"MSX a 1 1\r\nx\r\n", b"PUB a 1 1\r\nx\r\n",
                        b"MSG a 1 1\rxy\r\n", b"MSG a 1 r 1\r\nx\r\n", b"MSG a 1 1\r\nx\r\r\n",
                        b"MSG a 1 0000000000010\r\nx\r\n", b"NSG a 1 1\r\nx\r\n",
                        b"MSG a 1 r \r\n\r\n", b"MSGa b 1 1\r\nx\r\n",
                        b"MSG a 1 0:\r\n0123456789\r\n", b"MSG a 13 1\r\nx\r\n",
                        b"MSG a 21 1\r\nx\r\n", b"MSG a 11 1\r\nx\r\n"]
#: A run may also start at an awkward frame: after a frame only the per-frame parser takes (a
#: lower-case verb) and one new subject, the next "MSG " line opens a bulk pass.
ODD_FRAMES += [b"msg q 1 1\r\nx\r\nMSG y 1 1\r\nx\r\n" + f
               for f in ODD_FRAMES if f.startswith(b"MSG ")]
ODD = st.sampled_from(ODD_FRAMES)


def flood(n: int, sid: bytes = b"1", reply: bytes | None = None) -> bytes:
    return b"".join(msg(b"flood.%d" % (i % 100), sid, reply, b"x" * (8 + i % 40))
                    for i in range(n))


def store_table(rows: list[RawMsg] | MsgRun) -> pa.Table:
    store = CaptureStore(max_bytes=None)
    store.append(rows, T_NS)  # type: ignore[arg-type]
    return store.table()


UTF8 = st.sampled_from([b"caf\xc3\xa9", b"\xff\xfe", b"a\xed\xa0\x80", b"\xe2\x82", b"ok"])


