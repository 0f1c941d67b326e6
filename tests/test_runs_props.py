"""Property tests of the bulk run path (natsbook.wire._runs; fixed cases in test_runs.py):
held to the strict reference decoder on valid streams under any split, to the per-frame parser
(runs switched off) on awkward ones, and to the store's row path for the Arrow columns it
builds from offsets."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from natsbook.capture._store import _seal
from natsbook.wire._protocol import Parser
from tests.support.run_streams import (
    LIMIT,
    ODD,
    OTHER,
    STREAM,
    SUBJECT,
    T_NS,
    TOKEN,
    UTF8,
    msg,
    outcome,
    parse,
    reference,
    run,
    split,
    store_table,
    without_runs,
)


@settings(max_examples=200, deadline=None)
@given(STREAM, st.lists(st.integers(0, 1 << 16), max_size=4))
@example(b"".join(msg(b"flood.%d" % i, b"1", None, b"x" * (i % 40)) for i in range(300)), [])
def test_runs_agree_with_the_reference_under_any_split(stream: bytes, cuts: list[int]) -> None:
    want = reference(stream)
    msgs, ctrl, _ = parse(split(stream, [c % (len(stream) + 1) for c in cuts]))
    assert (msgs, ctrl) == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(run(), run(), run(), ODD, OTHER), min_size=1, max_size=8).map(
    b"".join), st.lists(st.integers(0, 1 << 16), max_size=3))
def test_runs_change_nothing_on_awkward_streams(stream: bytes, cuts: list[int]) -> None:
    """Frames the strict reference refuses (lower case, doubled spaces, tabs, lone LFs, bad
    sizes, other sids, non-ASCII subjects): the parser answers exactly as with runs off,
    errors included."""
    chunks = split(stream, [c % (len(stream) + 1) for c in cuts])
    assert outcome(chunks) == without_runs(chunks)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.one_of(SUBJECT, UTF8), st.one_of(st.none(), TOKEN, UTF8),
                          st.binary(max_size=40)), min_size=40, max_size=200),
       st.booleans())
def test_store_columns_from_offsets_equal_the_row_path(frames: list[tuple[bytes, bytes | None,
                                                                          bytes]],
                                                       all_replies: bool) -> None:
    """The batch built from a run's offsets equals the one the row path seals from the same
    rows: subjects and replies as text (invalid UTF-8 replaced), payloads, one receive time."""
    sid = b"9"
    stream = b"".join(msg(s, sid, (r or b"r") if all_replies else None, p)
                      for s, r, p in frames)
    groups, _ = Parser(LIMIT).feed(stream)
    rows_in = groups[sid]
    rows = list(rows_in)
    assert len(rows) == len(frames)
    table = store_table(rows_in)
    for batch in table.to_batches():
        batch.validate(full=True)
    assert table.equals(pa.Table.from_batches([_seal(rows, [(T_NS, len(rows))])]))
