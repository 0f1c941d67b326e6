"""Every decoding path agrees with the plain reference decoder (tests/reference_decoder.py).

Batches of awkward payloads go through a real nats-server into captures; then to_pandas in
every mode, the fast and careful JSON paths, conn.to_pandas, Parquet and spill round trips and
publish_frame replays are each held to the reference, row by row. Derandomised, so CI runs the
same examples every time; the payloads of issue 11 are explicit examples.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import natsbook
from natsbook.capture._frames import to_frame
from natsbook.capture._store import SCHEMA
from natsbook.errors import BadInputError

from .reference_decoder import check_json_frame, decode, same_payload

META = ["time", "subject", "reply", "headers", "size"]
BOM = b"\xef\xbb\xbf"

# The payloads of issue 11, each the smallest list that showed a fault on the old code.
ISSUE_BATCHES: list[list[bytes]] = [
    [b"null"],
    [b'{"a.b": 1, "a": {"b": 2}}'],
    [b'{"big": 9223372036854775808}', b"{bad"],
    [b'{"sub": 1, "seq": 2, "x": 3}'],
    [b'{"v":1}\n{"v":2}', b" ", b'{"v":3}'],
    [b'{"a":"\xff"}'],
    [b'{"id": 9007199254740993}', b"{}"],
    [b'{"id": 9007199254740993}', b"oops"],
    [b'{"u": 18446744073709551615}', b'{"u": 100000000000000000000000000000}'],
    [b'{"data":{"size":1}}', b'{"size":2}'],
    [b'{"a":[null,null]}', b'{"a":[1.5,true]}', b'{"a":[{"b":1},{"c":2}]}'],
    [b'{"ts":"2024-05-01T12:00:00Z"}', b"{bad"],
    [BOM + b'{"x":1}', b"{bad"],
    [b'{"seq":7,"sub":"a","temp":1.5}', b'{"data":{"x":1},"y":2}'],
    [b'{"a":[1,2]}', b'{"a":[]}', b'{"a":[7]}'],
    [b"{}"],
    [b'{"t":1}', b"[1,2]", b'"s"', b"null", b"", b"{bad"],
    [b'{"v": 9007199254740993}', b'{"v": 1.5}'],
    [b'{"v": true}', b'{"v": 1}', b'{"v": 2.5}'],
]


def _nested(depth: int, array: bool = False) -> bytes:
    if array:
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# Nesting around the contract's limit (256) and around orjson's and Python's own limits.
DEEP = [_nested(d, a) for d in (256, 257, 500, 1000, 1100) for a in (False, True)]

KEYS = st.sampled_from(["a", "b", "v", "a.b", "b.c", "x\\y", "", ".", "é", "sub", "seq", "data",
                        "size", "time", "json_error", "subject", "headers"])
INTS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(2**53 - 2, 2**64 + 2),  # where floats stop being exact, and where int64 ends
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1,
                     2**64 - 1, 2**64, 10**30, 0, -1]),
)
LEAVES = st.one_of(st.none(), st.booleans(), INTS,
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=6), st.sampled_from(["2024-05-01T12:00:00Z", "1.5", "null"]))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=5)


@st.composite
def payload(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        obj = draw(OBJECTS)
        text = json.dumps(obj, ensure_ascii=draw(st.booleans()),
                          separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
        raw = text.encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 9)) == 0:
            raw = draw(st.sampled_from([BOM, b" ", b"\n", b"\t "])) + raw
        return raw
    if kind == 6:
        return json.dumps(draw(VALUES)).encode()
    if kind == 7:
        return draw(st.binary(max_size=6))
    return draw(st.sampled_from([b"", b" ", b"null", b"{bad", b'{"v":1}\n{"v":2}',
                                 b'{"a":"\xff"}', b'"\\ud800"', b"1e400", b"NaN",
                                 b'{"a":1,"a":2}', b'{"a":1} {"b":2}', b'{"a":1}}',
                                 BOM + b'{"x":1}', b"\xff\xfe", b"{}", b"[]", *DEEP]))


SCALARS = st.one_of(INTS, st.floats(allow_nan=False, allow_infinity=False), st.none(),
                    st.booleans(), st.text(max_size=2))
# Rows with few keys, so that one column meets several types across the batch.
NARROW = st.dictionaries(st.sampled_from(["v", "a"]), st.one_of(
    SCALARS, st.dictionaries(st.sampled_from(["v", "b"]), SCALARS, max_size=2)), max_size=2)
BATCHES = st.one_of(
    st.lists(payload(), min_size=1, max_size=8),
    st.lists(st.one_of(NARROW.map(lambda o: json.dumps(o).encode()), payload()),
             min_size=2, max_size=8),
)


def _frame(payloads: list[bytes]) -> pa.Table:
    n = len(payloads)
    return pa.table({
        "time": pa.array(range(n), pa.int64()).cast(SCHEMA.field("time").type),
        "subject": pa.array(["s"] * n, pa.string()),
        "reply": pa.nulls(n, pa.string()),
        "headers": pa.nulls(n, pa.binary()),
        "payload": pa.array(payloads, pa.binary()),
    }, schema=SCHEMA)


def _with_issue_examples(f):  # type: ignore[no-untyped-def]
    for batch in [*ISSUE_BATCHES, DEEP]:
        f = example(batch)(f)
    return f


# ------------------------------------------------------------------ decoding alone (fast)
@_with_issue_examples
@settings(derandomize=True, max_examples=600, deadline=None)
@given(BATCHES)
def test_fast_and_careful_paths_agree_with_reference(payloads: list[bytes]) -> None:
    table = _frame(payloads)
    for fast in (True, False):
        check_json_frame(to_frame(table, "json", fast=fast), payloads, META)
    # A row reads the same whatever else is in the batch: alone, and next to every batch.
    for p in payloads:
        check_json_frame(to_frame(_frame([p]), "json"), [p], META)
        check_json_frame(to_frame(_frame([b"{bad", p, b"{}"]), "json"), [b"{bad", p, b"{}"],
                         META)


# ------------------------------------------------------------------ through a real server
def _wait(sub: natsbook.Subscription, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sub.stats.received < n and time.monotonic() < deadline:
        time.sleep(0.002)
    assert sub.stats.received == n


def _check_modes(df_of: object, payloads: list[bytes], meta: list[str]) -> None:
    """decode="json", "text", "bytes" and "auto" of one source, against the reference."""
    get = df_of  # a callable: decode -> DataFrame
    check_json_frame(get("json"), payloads, meta)  # type: ignore[operator]
    assert get("bytes")["data"].tolist() == payloads  # type: ignore[operator]
    text = [p.decode("utf-8", "replace") for p in payloads]
    assert get("text")["data"].tolist() == text  # type: ignore[operator]
    auto = get("auto")  # type: ignore[operator]
    if "json_error" in auto.columns:
        check_json_frame(auto, payloads, meta)
    else:
        assert auto["data"].tolist() in (payloads, text)


@_with_issue_examples
@settings(derandomize=True, max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(BATCHES)
def test_every_path_through_a_server_agrees_with_reference(server: natsbook.LocalServer,
                                                           payloads: list[bytes]) -> None:
    root = f"p{uuid.uuid4().hex[:12]}"
    conn = natsbook.connect(server.url, name="natsbook-props")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spill = Path(tmp) / "spill"
            sub = conn.subscribe(f"{root}.m")
            spilled = conn.subscribe(f"{root}.*", spill=spill)
            for p in payloads:
                conn.publish(f"{root}.m", p)
            conn.flush()
            _wait(sub, len(payloads))
            _wait(spilled, len(payloads))
            n = len(payloads)

            _check_modes(sub.to_pandas, payloads, META)
            check_json_frame(to_frame(sub.to_arrow(), "json", fast=False), payloads, META)

            both = conn.to_pandas("json", subject=f"{root}.m")
            assert len(both) == 2 * n and list(both.columns[:2]) == ["time", "sub"]
            mine = both[both["sub"] == f"{root}.m"].reset_index(drop=True)
            # The other capture's copies add no column the reference does not expect.
            check_json_frame(mine.drop(columns="sub"), payloads, META)

            one = Path(tmp) / "one.parquet"
            sub.to_parquet(one)
            _check_modes(lambda d: natsbook.read_capture(one, d), payloads, META)

            spilled.unsubscribe()  # the spill directory now holds the whole capture
            _check_modes(lambda d: natsbook.read_capture(spill, d), payloads, META)

            _check_replay(conn, root, sub.to_pandas("json"), payloads)
    finally:
        conn.close()


def _check_replay(conn: natsbook.Connection, root: str, df: pd.DataFrame,
                  payloads: list[bytes]) -> None:
    rows = [decode(p) for p in payloads]
    if any(r.json_error for r in rows):
        with pytest.raises(BadInputError, match="json_error"):
            conn.publish_frame(df, subject=f"{root}.r")
        df = df[~df["json_error"]].reset_index(drop=True)
        payloads = [p for p, r in zip(payloads, rows, strict=True) if not r.json_error]
    if not payloads:
        return
    dst = conn.subscribe(f"{root}.r")
    assert conn.publish_frame(df, subject=f"{root}.r") == len(payloads)
    _wait(dst, len(payloads))
    replayed = dst.to_pandas("bytes")["data"].tolist()
    for original, again in zip(payloads, replayed, strict=True):
        assert same_payload(original, again), (original, again)


# ------------------------------------------------------------------ pinned promises
def test_null_payload_does_not_crash(conn: natsbook.Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    for p in (b"null", b"null", b'{"a":1}'):
        conn.publish(subject, p)
    conn.flush()
    _wait(sub, 3)
    for mode in ("json", "auto"):
        df = sub.to_pandas(mode)
        assert len(df) == 3
    df = sub.to_pandas("json")
    assert df["data"].tolist()[:2] == [None, None] and df["data"].iloc[2] is pd.NA


def test_spill_directory_holds_whole_capture_after_unsubscribe(conn: natsbook.Connection,
                                                               subject: str,
                                                               tmp_path: Path) -> None:
    sub = conn.subscribe(subject, spill=tmp_path)
    for i in range(10):
        conn.publish(subject, {"i": i})
    conn.flush()
    _wait(sub, 10)
    sub.unsubscribe()
    back = natsbook.read_capture(tmp_path, "json")
    assert back["i"].tolist() == list(range(10))
    pd.testing.assert_frame_equal(back, sub.to_pandas("json"))


def test_publish_frame_names_the_column_it_cannot_fold(conn: natsbook.Connection,
                                                       subject: str) -> None:
    df = pd.DataFrame({"a": [1], "a.b": [2]})
    with pytest.raises(BadInputError, match=r"'a\.b'"):
        conn.publish_frame(df, subject=subject)
    df = pd.DataFrame({"when": [pd.Timedelta(1)]})
    with pytest.raises(BadInputError, match="'when'"):
        conn.publish_frame(df, subject=subject)
