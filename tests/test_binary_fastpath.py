"""The MessagePack fast path's shortcuts, each held to what it stands for.

`_msgpack_suspects` must name every payload the strict bulk reading may have let through
wrongly (an empty bin's bytes anywhere in it, or long enough to nest too deep): checked
against a plain per-payload scan on random bytes rich in the pattern bytes. Then whole frames
of many payloads with empty bins at the start, middle and end of payloads are held to the
reference reading (tests/reference_binary.py).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pandas as pd
import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from natsbook.capture import to_frame
from natsbook.capture._binary import _EMPTY_BINS, _msgpack_suspects
from natsbook.capture._jsondecode import MAX_DEPTH
from natsbook.capture._mpcolumns import columns as msgpack_columns

from . import reference_binary as ref
from .reference_decoder import check_rows
from .test_binary_decoding import META, table

# Bytes drawn mostly from the patterns' own (0xc4-0xc6, 0x00), so hits are common, some of
# them across two payloads.
PATTERN_BYTES = st.binary(max_size=12) | st.lists(
    st.sampled_from([0x00, 0xC4, 0xC5, 0xC6, 0x01]), max_size=12).map(bytes)


def _must(payloads: list[bytes]) -> set[int]:
    return {i for i, p in enumerate(payloads)
            if len(p) > MAX_DEPTH or any(pat in p for pat in _EMPTY_BINS)}


def _may(payloads: list[bytes]) -> set[int]:
    """Also the payloads where a pattern starts and runs on into the next payloads."""
    joined = b"".join(payloads)
    starts, at = [], 0
    for p in payloads:
        starts.append(at)
        at += len(p)
    rows = set()
    for pat in _EMPTY_BINS:
        for pos in range(len(joined)):
            if joined.startswith(pat, pos):
                rows.add(max(i for i, s in enumerate(starts) if s <= pos and payloads[i]))
    return rows


@example([b"\xc4\x00", b"\x01", b"\xc4", b"\x00"])
@example([b"\xc6\x00\x00", b"\x00\x00", b"\xc5\x00\x00"])
@example([b"\x01" * (MAX_DEPTH + 1), b"\xc4\x00"])
@settings(derandomize=True, max_examples=500, deadline=None)
@given(st.lists(PATTERN_BYTES.filter(bool), min_size=1, max_size=30))
def test_suspects_name_every_payload_that_may_need_the_careful_reading(
        payloads: list[bytes]) -> None:
    got = set(_msgpack_suspects(payloads, b"".join(payloads)))
    must = _must(payloads)
    assert must <= got
    assert got <= must | _may(payloads)


LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.just(b""),
                 st.binary(max_size=3), st.floats(allow_nan=False), st.text(max_size=3))
VALUE = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(["a", "b", "a.b", ""]), st.just(b""),
                              st.binary(max_size=2)), inner, max_size=3)), max_leaves=6)


@example([b"", {"a": 1}, {"a": b""}, [b""], {b"": 2}])
@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(st.one_of(VALUE, st.dictionaries(st.sampled_from(["a", "b", "v"]), VALUE,
                                                 max_size=3)), min_size=1, max_size=40))
def test_many_payloads_with_empty_bins_read_as_the_reference(objs: list[Any]) -> None:
    payloads = [msgpack.packb(o) for o in objs]
    check_rows(to_frame(table(payloads), "msgpack"),
               [ref.read(p, ref.msgpack_loads) for p in payloads], META)


# ------------------------------------------------------------------ columns read by numpy
# Telemetry-like batches: a few keys, each holding values of one kind in most rows (so the
# numpy reading takes the batch), keys missing from some rows, in any order, nested maps,
# and now and then what sends the batch back to the general path (empty map, mixed kinds,
# a list, a long string, a key repeated after the key mapping).
NAMES = st.sampled_from(["a", "b", "v", "a.b", "", ".", "é", "seq", "data", "x\\y", "time",
                         "loc", "k" * 31, "k" * 32])
LEAF_KINDS = [
    st.none(), st.booleans(), st.integers(-40, 200), st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**64 - 1), st.integers(2**53 - 2, 2**53 + 2).map(lambda i: i * -1),
    st.floats(), st.floats(width=32), st.one_of(st.floats(), st.integers(-(2**54), 2**54)),
    st.text(max_size=40), st.one_of(st.none(), st.text(max_size=3)),
    st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1)), st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.floats()), st.just({}), st.lists(st.integers(-5, 5), max_size=2),
    st.one_of(st.booleans(), st.integers(0, 1)), st.text(min_size=256, max_size=300),
]


@st.composite
def _kind(draw: st.DrawFn, depth: int = 0) -> st.SearchStrategy[Any]:
    if depth < 2 and draw(st.integers(0, 4)) == 0:
        keys = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
        subs = {k: draw(_kind(depth + 1)) for k in keys}
        return st.fixed_dictionaries({}, optional=subs)
    return draw(st.sampled_from(LEAF_KINDS))


@st.composite
def telemetry(draw: st.DrawFn) -> list[bytes]:
    keys = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    kinds = {k: draw(_kind()) for k in keys}
    rows = draw(st.lists(st.fixed_dictionaries({}, optional=kinds), min_size=1, max_size=30))
    flips = draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    rows = [dict(reversed(o.items())) if flip else o for o, flip in zip(rows, flips, strict=True)]
    single = draw(st.booleans())  # some payloads with floats as float32
    return [_pack(o, single and draw(st.booleans())) for o in rows]


def _pack(obj: Any, single: bool) -> bytes:
    try:
        return msgpack.packb(obj, use_single_float=single)
    except OverflowError:  # too large for a float32
        return msgpack.packb(obj)


def _nan(value: Any) -> bool:
    if isinstance(value, dict):
        return any(map(_nan, value.values()))
    if isinstance(value, list):
        return any(map(_nan, value))
    return isinstance(value, float) and math.isnan(value)


def _differential(payloads: list[bytes]) -> None:
    """The fast path (the numpy reading when it takes the batch) equals the careful path
    exactly, and the reference reading (which cannot tell NaN from a missing float)."""
    t = table(payloads)
    fast = to_frame(t, "msgpack")
    careful = to_frame(t, "msgpack", fast=False)
    pd.testing.assert_frame_equal(fast, careful, check_exact=True)
    rows = [ref.read(p, ref.msgpack_loads) for p in payloads]
    if not any(_nan(r.cells) for r in rows):
        check_rows(fast, rows, META)


@example([msgpack.packb({"a": 1, "a.b": {"c": 2}}), msgpack.packb({"a": None})])
@example([b"\x82\xa1a\x01\xa1a\x81\xa1b\x02"])  # {"a": 1, "a": {"b": 2}}: the last one wins
@example([b"\x81\xa1a\xa2\xed\xa0"])  # an encoded surrogate: not UTF-8, a bad row
@example([msgpack.packb({"v": 1.5}), msgpack.packb({"v": 2**53 + 1})])  # not exact: objects
@example([msgpack.packb({"v": 1}) + b"\x01", msgpack.packb({"v": 2})])  # two values: bad
@example([b"\x81\xa1v\xa1\xff", msgpack.packb({"v": "x"})])  # not UTF-8: a bad row
@example([b"\x81\xa1v\xa3\xed\xa0\x80", msgpack.packb({"v": "x"})])  # a surrogate: bad
@example([msgpack.packb({"a": 1, "s": "x"}), msgpack.packb({"s": "y"})])  # keys shift place
@example([b"\x81\xa1v\xd9\x05abc", msgpack.packb({"v": "x"})])  # a str8 cut short
@example([msgpack.packb({"v": 2**63}), msgpack.packb({"v": 1})])
@example([msgpack.packb({"v": 2**63}), msgpack.packb({"v": -1})])
@settings(derandomize=True, max_examples=600, deadline=None)
@given(telemetry())
def test_numpy_columns_equal_the_general_path(payloads: list[bytes]) -> None:
    _differential(payloads)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(telemetry(), st.lists(st.tuples(st.integers(0, 29), st.integers(0, 40),
                                       st.integers(0, 255)), max_size=3))
def test_numpy_columns_of_damaged_payloads_equal_the_general_path(
        payloads: list[bytes], damage: list[tuple[int, int, int]]) -> None:
    out = [bytearray(p) for p in payloads]
    for row, at, byte in damage:  # a changed byte, or a payload cut short
        p = out[row % len(out)]
        if at < len(p):
            p[at] = byte
        elif len(p) > 1:
            del p[-1]
    _differential([bytes(p) for p in out])


def test_bench_like_batches_take_the_numpy_reading() -> None:
    objs = [{"sensor": f"s{i}" * (1 + i % 20), "seq": i * 1000, "temp": i / 3, "hum": i - 50,
             "ok": i % 3 == 0, "loc": {"lat": 52.0 + i, "lon": -1.5 * i},
             **({"alarm": "hi"} if i % 5 else {})}
            for i in range(300)]
    payloads = [msgpack.packb(o) for o in objs]
    assert msgpack_columns(pa.array(payloads, pa.binary())) is not None
    _differential(payloads)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(telemetry(), telemetry(), st.integers(0, 40), st.integers(0, 40))
def test_numpy_columns_of_chunked_and_sliced_tables_equal_the_general_path(
        one: list[bytes], two: list[bytes], start: int, length: int) -> None:
    t = pa.concat_tables([table(one), table(two)]).slice(start, length)
    fast = to_frame(t, "msgpack")
    pd.testing.assert_frame_equal(fast, to_frame(t, "msgpack", fast=False), check_exact=True)


def test_numpy_columns_of_a_sliced_array_are_those_of_its_rows() -> None:
    payloads = [msgpack.packb({"v": i, "s": "x" * i}) for i in range(40)]
    whole = pa.array(payloads, pa.binary())
    for start in (1, 7, 39):
        got = msgpack_columns(whole.slice(start))
        want = msgpack_columns(pa.array(payloads[start:], pa.binary()))
        assert got is not None and want is not None
        pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(want), check_exact=True)
