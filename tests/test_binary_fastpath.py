"""The MessagePack fast path's shortcuts, each held to what it stands for.

`_msgpack_suspects` must name every payload the strict bulk reading may have let through
wrongly (an empty bin's bytes anywhere in it, or long enough to nest too deep): checked
against a plain per-payload scan on random bytes rich in the pattern bytes. Then whole frames
of many payloads with empty bins at the start, middle and end of payloads are held to the
reference reading (tests/reference_binary.py).
"""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import example, given, settings
from hypothesis import strategies as st

from natsbook.capture import to_frame
from natsbook.capture._binary import _EMPTY_BINS, _msgpack_suspects
from natsbook.capture._jsondecode import MAX_DEPTH

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
                 st.binary(max_size=3), st.floats(), st.text(max_size=3))
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
