"""The bulk run path (natsbook.wire._runs): floods of differing MSG lines parsed as offsets into
the receive buffer, and the capture store's Arrow columns built straight from those offsets.

Fixed cases, fast enough for the mutation runs (bench/mutation.py): each awkward frame inside a
run and every read boundary around it answers as with runs off, floods do take the run path,
and the store's columns equal its row path's. The property tests are in test_runs_props.py.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from natsbook.capture._store import CaptureStore, _seal
from natsbook.errors import ProtocolError
from natsbook.wire._protocol import Parser
from natsbook.wire._runs import MsgRun, RunColumns
from tests.support.reference_codec import decode
from tests.support.run_streams import (
    LIMIT,
    ODD_FRAMES,
    T_NS,
    flood,
    msg,
    outcome,
    parse,
    store_table,
    without_runs,
)


# Plain ids: mutmut selects tests by id, and ids holding CR/LF bytes do not survive that.
@pytest.mark.parametrize("reply", [None, b"_INBOX.r"], ids=["plain", "reply"])
@pytest.mark.parametrize("sid", [b"1", b"12"])
@pytest.mark.parametrize("odd", ODD_FRAMES, ids=[f"odd{i}" for i in range(len(ODD_FRAMES))])
def test_an_awkward_frame_inside_a_run(odd: bytes, sid: bytes, reply: bytes | None) -> None:
    """Each awkward frame between two runs: the same answer as with runs off, and when the
    stream parses, both floods around the frame went through runs."""
    stream = flood(200, sid, reply) + odd + flood(200, sid, reply)
    assert outcome([stream]) == without_runs([stream])
    try:
        bulk = parse([stream])[2]
    except ProtocolError:
        return
    # (A bulk pass that proves nothing turns bulk off for the rest of a read: after a run
    # that starts at an awkward frame, the second flood goes frame by frame.)
    assert bulk >= (180 if odd.startswith(b"msg q") else 380)


@pytest.mark.parametrize("reply", [None, b"_INBOX.r"], ids=["plain", "reply"])
def test_every_split_around_an_awkward_frame(reply: bytes | None) -> None:
    """A read may end anywhere: just before, inside or after an awkward frame (a lone CR at
    the very end of a read once indexed past the buffer). Every cut there parses as with runs
    off."""
    for odd in ODD_FRAMES:
        stream = flood(60, reply=reply) + odd + b"\r\r" + flood(3, reply=reply)
        at = len(flood(60, reply=reply))
        for cut in range(at - 12, min(at + len(odd) + 14, len(stream))):
            chunks = [stream[:cut], stream[cut:]]
            assert outcome(chunks) == without_runs(chunks), (odd, cut)


def test_a_varied_flood_takes_the_run_path() -> None:
    """The property tests are not vacuous: a plain varied flood is parsed almost all in bulk
    (the first frames of a read go one by one until lines are seen to differ)."""
    msgs, _, bulk = parse([flood(3000)])
    assert len(msgs) == 3000 and bulk >= 2900
    msgs, _, bulk = parse([flood(3000, reply=b"_INBOX.r")])
    assert bulk >= 2900 and all(m[2] == b"_INBOX.r" for m in msgs)
    # Interleaved sids are not a run: the per-frame passes take them.
    mixed = b"".join(msg(b"s.%d" % i, b"%d" % (1 + i % 2), None, b"p") for i in range(2000))
    assert parse([mixed])[2] == 0
    # A read longer than the probe: the run goes on past it, to the end of the read.
    assert parse([flood(20000)])[2] >= 19900


_NAMES = [b"caf\xc3\xa9", b"\xff\xfe", b"a\xed\xa0\x80", b"\xe2\x82", b"ok", b"x" * 300, b"1"]


@pytest.mark.parametrize("reply", [None, b"r.1", b"\xff.r"], ids=["plain", "reply", "bad-reply"])
@pytest.mark.parametrize("bad_at", [None, 0, 57])
def test_store_columns_from_offsets_equal_the_row_path(reply: bytes | None,
                                                       bad_at: int | None) -> None:
    """The batch built from a run's offsets equals the one the row path seals from the same
    rows: subjects and replies as text (invalid UTF-8 replaced, wherever it sits), payloads
    of every length (none included), one receive time; and it is a valid Arrow batch."""
    subjects = [b"s.%d" % i for i in range(120)]
    if bad_at is not None:
        subjects[bad_at] = b"bad.\xff"
    subjects[10:17] = _NAMES
    stream = b"".join(msg(s, b"9", reply, b"p" * (i % 50)) for i, s in enumerate(subjects))
    run = Parser(LIMIT).feed(stream)[0][b"9"]
    assert isinstance(run, MsgRun) and any(isinstance(p, RunColumns) for p in run.parts)
    rows = list(run)
    table = store_table(run)
    for batch in table.to_batches():
        batch.validate(full=True)
    assert table.equals(pa.Table.from_batches([_seal(rows, [(T_NS, len(rows))])]))
    assert table.column("subject")[16].as_py() == "1"


def test_a_store_keeps_order_and_counts_across_rows_and_runs() -> None:
    """Rows before a run, the run, rows after it: one table in arrival order, every row
    counted once, whatever mix the parser hands over."""
    p = Parser(LIMIT)
    head = b"MSG first 1 1\r\na\r\nMSG second 1 1\r\nb\r\n"
    groups, _ = p.feed(head + flood(500) + b"PING\r\n" + flood(40))
    run = groups[b"1"]
    assert isinstance(run, MsgRun) and any(isinstance(x, RunColumns) for x in run.parts)
    store = CaptureStore(max_bytes=None, seal_rows=64)
    store.append([(b"before", None, None, b"0")], T_NS)
    store.append(run, T_NS)  # type: ignore[arg-type]
    table = store.table()
    assert table.column("subject").to_pylist()[:4] == ["before", "first", "second", "flood.0"]
    assert table.num_rows == len(run) + 1 == store.stats.received == store.stats.stored == 543
    assert table.column("payload").to_pylist() == [b"0"] + [r[3] for r in run]


@pytest.mark.parametrize("reply", [None, b"_INBOX.r"], ids=["plain", "reply"])
@pytest.mark.parametrize("index", [0, 1, 2, 100, -1, -541])
def test_a_run_reads_like_the_row_list_it_stands_for(index: int, reply: bytes | None) -> None:
    stream = b"MSG a 1 1\r\nz\r\n" + flood(540, reply=reply) + b"MSG b 1 0\r\n\r\n"
    run = Parser(LIMIT).feed(stream)[0][b"1"]
    assert isinstance(run, MsgRun)
    rows = run.rows()
    want = [(r[1], r[2], None, r[4]) for r in decode(stream, LIMIT)[0]]
    assert len(run) == len(rows) == len(want) == 542
    assert run[index] == rows[index] == want[index]
    with pytest.raises(IndexError, match=r"^MsgRun index out of range$"):
        run[542]


def test_runs_and_rows_of_one_sid_in_one_read_keep_arrival_order() -> None:
    """Another sid first (so a run opens its sid's list), then for sid 1: a run, a control
    line, rows one by one, a flood of identical frames (taken by the identical-line path,
    which extends the list in one go), a second run, one more row: every row in arrival
    order, as the reference decoder reads them."""
    one = msg(b"one", b"1", None, b"o")
    stream = (msg(b"other.a", b"2", None, b"x") + msg(b"other.b", b"2", None, b"y")
              + flood(300) + b"PING\r\n" + one * 3 + msg(b"same", b"1", None, b"s") * 50
              + flood(300) + msg(b"last", b"1", None, b"z") + one)
    groups, ctrl = Parser(LIMIT).feed(stream)
    run = groups[b"1"]
    assert isinstance(run, MsgRun)
    assert isinstance(run.parts[0], RunColumns)  # opened by the run itself
    assert sum(isinstance(p, RunColumns) for p in run.parts) == 2
    rows, want_ctrl, _ = decode(stream, LIMIT)
    assert list(run) == [(r[1], r[2], None, r[4]) for r in rows if r[0] == b"1"]
    assert len(run) == len(list(run)) == 655
    assert [op for op, _ in ctrl] == [op for op, _ in want_ctrl]
    table = store_table(run)
    assert table.column("subject").to_pylist() == [r[1].decode() for r in rows if r[0] == b"1"]


def test_identical_frames_after_a_run_extend_it_in_order() -> None:
    """A line seen before the run, repeated after it, is taken by the identical-line path,
    which extends the sid's list in one go: those rows land after the run's, in order."""
    first = msg(b"a.0", b"1", None, b"p")
    stream = (first + msg(b"b.0", b"2", None, b"q") + flood(300) + b"PING\r\n" + first * 50
              + msg(b"z", b"1", None, b""))
    run = Parser(LIMIT).feed(stream)[0][b"1"]
    assert isinstance(run, MsgRun) and isinstance(run.parts[1], RunColumns)
    rows = decode(stream, LIMIT)[0]
    assert list(run) == [(r[1], r[2], None, r[4]) for r in rows if r[0] == b"1"]
    assert len(run) == 352
