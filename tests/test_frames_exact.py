"""Frames and the JSON decoder, value by value and dtype by dtype (no server: Arrow tables are
built directly, so each test is fast enough to run once per planted bug).

Each payload list goes through both JSON paths (fast and careful) and is held to the plain
reference decoder; dtypes, boundaries (2**53, 2**63, 2**64, depth 256, the auto-detect sample
of 2000 rows) and the filters' edges are pinned exactly.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from natsbook.capture import _jsondecode as jd
from natsbook.capture._frames import META_COLUMNS, filter_table, to_frame
from natsbook.capture._jsondecode import EMPTY, ERROR, decode_json, parse_careful, parse_payloads
from natsbook.capture._store import SCHEMA
from natsbook.errors import BadInputError

from .reference_decoder import check_json_frame

META = ["time", "subject", "reply", "headers", "size"]
BOM = b"\xef\xbb\xbf"

#: pandas' own dtype for text: "str" from pandas 3 on, "object" before (Python 3.10 gets
#: pandas 2): the contract is "what pandas makes of a list of str", pinned per version.
TEXT = str(pd.Series(["a", None]).dtype)


def table(payloads: list[bytes | None], subjects: list[str] | None = None,
          headers: list[bytes | None] | None = None, times: list[int] | None = None) -> pa.Table:
    n = len(payloads)
    return pa.table({
        "time": pa.array(times if times is not None else range(n),
                         pa.int64()).cast(SCHEMA.field("time").type),
        "subject": pa.array(subjects or ["s"] * n, pa.string()),
        "reply": pa.array(["r"] * n, pa.string()),
        "headers": pa.array(headers or [None] * n, pa.binary()),
        "payload": pa.array(payloads, pa.binary()),
    }, schema=SCHEMA)


def both(payloads: list[bytes]) -> list[pd.DataFrame]:
    """The frame by both JSON paths, each checked against the reference decoder."""
    frames = []
    for fast in (True, False):
        df = to_frame(table(payloads), "json", fast=fast)
        check_json_frame(df, payloads, META)
        frames.append(df)
    return frames


def nested(depth: int, array: bool = False) -> bytes:
    if array:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


# ------------------------------------------------------------------------------ names
def test_reserved_names_and_depth_limit() -> None:
    assert {"time", "subject", "reply", "headers", "header_error", "size", "data",
            "json_error", "seq", "sub"} == jd.RESERVED
    assert jd.MAX_DEPTH == 256
    assert set(META_COLUMNS) == set(META)
    assert (repr(EMPTY), repr(ERROR)) == ("EMPTY", "ERROR")


@pytest.mark.parametrize(("path", "name"), [
    (["a"], "a"), (["a", "b"], "a.b"), (["a.b"], "a\\.b"), (["a\\b"], "a\\\\b"),
    (["x\\.y", "z"], "x\\\\\\.y.z"), (["sub"], "data.sub"), (["data", "size"], "data.data.size"),
    (["a", "sub"], "a.sub"), ([""], ""), (["", ""], "."), (["a."], "a\\."), (["\\"], "\\\\"),
])
def test_column_name_and_split_name(path: list[str], name: str) -> None:
    assert jd.column_name(path) == name
    assert jd.split_name(name) == path


def test_split_name_keeps_a_trailing_backslash() -> None:
    assert jd.split_name("a\\") == ["a\\"]
    assert jd.split_name("data.") == [""]
    assert jd.split_name("datax.y") == ["datax", "y"]


# ------------------------------------------------------------------------------ one payload
@pytest.mark.parametrize(("payload", "value"), [
    (b"", EMPTY), (None, EMPTY), (b"null", None), (b" 1 ", 1), (BOM + b'{"x":1}', {"x": 1}),
    (b"NaN", ERROR), (b"Infinity", ERROR), (b"-Infinity", ERROR), (b"1e400", ERROR),
    (b"-1e400", ERROR), (b"1e300", 1e300), (b'"\\ud800"', ERROR), (b'{"\\ud800":1}', ERROR),
    (b'{"a":"\\ud800"}', ERROR), (b'["\\ud800"]', ERROR), (b'["\\u00e9"]', ["é"]),
    (b'{"a":"\xff"}', ERROR), (b"{bad", ERROR), (b" ", ERROR), (b'{"v":1}\n{"v":2}', ERROR),
    (b"18446744073709551616", 18446744073709551616), (b'{"a":1,"a":2}', {"a": 2}),
    (BOM, ERROR), (BOM + BOM + b"1", ERROR), (b"[1,[2,{}]]", [1, [2, {}]]),
])
def test_parse_careful(payload: bytes | None, value: object) -> None:
    got = parse_careful(payload)
    if value is EMPTY or value is ERROR:
        assert got is value
    else:
        assert got == value and type(got) is type(value)


@pytest.fixture
def deep_stack() -> Iterator[None]:
    """Room for the recursive string check at depth 256 under mutmut, whose trampolines add
    frames per call (natsbook alone needs about 2 per level)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 5000))
    yield
    sys.setrecursionlimit(old)


@pytest.mark.usefixtures("deep_stack")
@pytest.mark.parametrize("array", [False, True])
def test_depth_limit_is_256_on_both_paths(array: bool) -> None:
    ok, deep = nested(256, array), nested(257, array)
    assert parse_careful(ok) is not ERROR and parse_careful(deep) is ERROR
    assert jd.depth_ok(json.loads(ok)) and not jd.depth_ok(json.loads(deep))
    _, values = parse_payloads(pa.array([ok, deep], pa.binary()))
    assert values[0] is not ERROR and values[1] is ERROR
    assert len(nested(257, True)) == jd._MIN_DEEP_BYTES  # the shortest payload that deep


@pytest.mark.usefixtures("deep_stack")
def test_depth_counts_the_deepest_branch() -> None:
    value = {"a": 1, "b": json.loads(nested(256)), "c": [1]}
    assert not jd.depth_ok(value)
    assert jd.depth_ok([json.loads(nested(255, True)), {"x": 1}])
    assert jd.depth_ok(5) and jd.depth_ok("s")


def test_parse_payloads_slow_and_fast_agree() -> None:
    col = pa.array([b'{"a":1}', b"", None, b"{bad", b"[1]", b"NaN"], pa.binary())
    for fast in (True, False):
        payloads, values = parse_payloads(col, fast=fast)
        assert payloads == col.to_pylist()
        assert values == [{"a": 1}, EMPTY, EMPTY, ERROR, [1], ERROR]


def test_fast_parse_with_only_good_payloads() -> None:
    payloads, values = parse_payloads(pa.chunked_array([[b"1", b'"x"']], pa.binary()))
    assert values == [1, "x"] and payloads == [b"1", b'"x"']


# ------------------------------------------------------------------------------ big numbers
def test_has_big_float_boundary_and_nesting() -> None:
    big = 2.0**63
    assert jd._has_big_float(big) and jd._has_big_float(-big)
    assert not jd._has_big_float(np.nextafter(big, 0)) and not jd._has_big_float(-1e18)
    assert jd._has_big_float([1, big]) and jd._has_big_float({"a": {"b": -big}})
    assert not jd._has_big_float([1, 2.5]) and not jd._has_big_float({"a": 1})
    assert not jd._has_big_float(2**70)  # an int is exact already
    assert not jd._has_big_float("1e19")


def test_big_floats_rows() -> None:
    big = 2.0**63
    assert jd._big_floats([1, 2], {int}) == []
    assert jd._big_floats(["a"], {str}) == []
    assert jd._big_floats([1.0, big, None, -big, 2], {float, int, type(None)}) == [1, 3]
    assert jd._big_floats([[big], [1.0]], {list}) == [0]
    assert jd._big_floats([{"a": 1}, {"a": -big}], {dict}) == [1]
    assert jd._big_floats([-big, 10**400], {float, int}) == [0]  # an int too big for a double
    assert jd._big_floats(["x", big], {str, float}) == [1]


@pytest.mark.parametrize("fast", [True, False])
def test_integers_beyond_64_bits_stay_exact_everywhere(fast: bool) -> None:
    big = 2**64 + 1
    payloads = [b'{"v": %d, "l": [%d], "o": {"x": %d}, "m": [{"y": %d}]}' % (big, big, -big, big),
                b"[%d]" % big, b"%d" % -big, b'{"v": 1.5}']
    df = to_frame(table(payloads), "json", fast=fast)
    check_json_frame(df, payloads, META)
    assert df["v"].tolist()[0] == big and type(df["v"].tolist()[0]) is int
    assert df["l"][0] == [big] and type(df["l"][0][0]) is int
    assert df["o.x"][0] == -big and df["m"][0] == [{"y": big}]
    assert df["data"][1] == [big] and df["data"][2] == -big
    assert df["v"][3] == 1.5


def test_a_genuine_big_float_stays_a_float() -> None:
    for df in both([b'{"f": 1e19}', b'{"f": -1e19}', b"[1e19]"]):
        assert df["f"].dtype == np.float64 and df["f"].tolist()[:2] == [1e19, -1e19]
        assert np.isnan(df["f"][2])
        assert df["data"][2] == [1e19] and type(df["data"][2][0]) is float


# ------------------------------------------------------------------------------ dtypes
@pytest.mark.parametrize(("cells", "dtype", "values"), [
    ([1, -2], "int64", [1, -2]),
    ([-(2**63), 2**63 - 1], "int64", [-(2**63), 2**63 - 1]),
    ([1, None], "Int64", [1, pd.NA]),
    ([-(2**63), None], "Int64", [-(2**63), pd.NA]),
    ([0, 2**63], "uint64", [0, 2**63]),
    ([0, 2**64 - 1], "uint64", [0, 2**64 - 1]),
    ([2**63, None], "UInt64", [2**63, pd.NA]),
    ([-1, 2**63], "object", [-1, 2**63]),
    ([0, 2**64], "object", [0, 2**64]),
    ([-(2**63) - 1, 1], "object", [-(2**63) - 1, 1]),
    ([1.5, 2.5], "float64", [1.5, 2.5]),
    ([1, 2.5, 2**53], "float64", [1.0, 2.5, float(2**53)]),
    ([-(2**53), 2.5], "float64", [-(2**53), 2.5]),
    ([2**53 + 1, 2.5], "object", [2**53 + 1, 2.5]),
    ([-(2**53) - 1, 2.5], "object", [-(2**53) - 1, 2.5]),
    ([True, False], "bool", [True, False]),
    ([True, None], "boolean", [True, pd.NA]),
    (["a", "é"], TEXT, ["a", "é"]),
    ([True, 1], "object", [True, 1]),
    ([[1], "a"], "object", [[1], "a"]),
])
def test_typed_column(cells: list, dtype: str, values: list) -> None:
    kinds = set(map(type, cells))
    col = pd.Series(jd.typed_column(cells, kinds))
    assert str(col.dtype) == dtype
    got = col.tolist()
    for g, w in zip(got, values, strict=True):
        if w is pd.NA:
            assert g is pd.NA
        else:
            assert g == w and (dtype != "object" or type(g) is type(w))
    assert kinds == set(map(type, cells))  # the caller's set is left alone


@pytest.mark.parametrize("fast", [True, False])
def test_frame_dtypes_by_path(fast: bool) -> None:
    payloads = [b'{"i": 1, "n": 1, "f": 1.5, "b": true, "s": "x", "u": 9223372036854775808}',
                b'{"i": 2, "f": 2, "b": false, "s": "y", "u": 1}']
    df = to_frame(table(payloads), "json", fast=fast)
    check_json_frame(df, payloads, META)
    assert {c: str(df[c].dtype) for c in ["i", "n", "f", "b", "s", "u", "json_error"]} == {
        "i": "int64", "n": "Int64", "f": "float64", "b": "bool", "s": TEXT, "u": "uint64",
        "json_error": "bool"}


# ------------------------------------------------------------------------------ frames
CONTRACT_BATCHES: list[list[bytes]] = [
    [b'{"a": 1, "b": {"c": 2, "d": {}}}', b'{"b": {"c": 3}, "a": 4}', b'{"e": null}'],
    [b'{"a": {"b": 1}}', b'{"a": 5}', b'{"a": {}}', b'{"a": {"b": 2, "c": 3}}'],
    [b'{"x": 1}', b'{"y": 2}', b'{"x": 3, "y": 4}', b'{"z": {"w": 1}}', b'{"y": 5, "x": 6}'],
    [b'{"a": {"x": 1}}', b'{"a": {"y": 2}}', b'{"a": {"x": 3, "y": 4}}'],
    [b'{"a": {"x": {"p": 1}}}', b'{"a": {"x": 2}}', b'{"a": {"x": {"q": 3}, "y": null}}'],
    [b'{"k": 1, "j": 2}', b'{"j": 3, "k": 4}', b'{"k": 5}', b'{"j": 6, "m": 7}'],
    [b'{"t":1}', b"[1,2]", b'"s"', b"null", b"", b"{bad", b"true", b"{}"],
    [b'{"sub": 1, "seq": 2, "x": 3, "a.b": 4, "a": {"b": 5}}', b'{"data": {"size": 1}}'],
    [b"", b"", b'{"a": 1}'],
    [b"{}", b"{}"],
    [b"{}", b'{"a": 1}', b'{"a": 2, "b": 3}'],
    [b"1", b"2"],
    [b"", b"{bad"],
    [b'{"a": [null, null]}', b'{"a": [1.5, true]}', b'{"a": [{"b": 1}, {"c": 2}]}'],
    [b'{"a": {"b": {"c": 1}}, "d": 2}', b'{"d": 3, "a": {"b": {"c": 4, "e": 5}}}'],
    [b'{"a": 1, "b": 2}', b'{"a": 3, "c": 4}', b'{"b": 5, "a": 6}'],
]


@pytest.mark.parametrize("payloads", CONTRACT_BATCHES)
def test_contract_batches_by_both_paths(payloads: list[bytes]) -> None:
    fast, careful = both(payloads)
    pd.testing.assert_frame_equal(fast, careful)


def test_column_order_is_first_appearance_then_data_then_json_error() -> None:
    df, _ = both([b"[1]", b'{"b": 1, "a": {"y": 1, "x": 2}}', b'{"c": 1, "b": 2}', b"{bad"])
    assert list(df.columns) == [*META, "b", "a.y", "a.x", "c", "data", "json_error"]
    assert df["json_error"].tolist() == [False, False, False, True]
    assert df["data"][0] == [1] and df["data"][1] is pd.NA and df["data"][3] is pd.NA


def test_null_inside_an_object_is_missing_but_null_payload_is_none() -> None:
    df, _ = both([b"null", b'{"a": null}', b'{"a": 1}'])
    assert df["data"].tolist()[0] is None and df["data"][1] is pd.NA
    assert df["a"].dtype == "Int64" and df["a"][1] is pd.NA and df["a"][2] == 1


def test_json_error_column_when_every_row_is_an_object() -> None:
    df = decode_json(pa.array([b'{"a":1}', b'{"a":2}'], pa.binary()))
    assert list(df) == ["a", "json_error"]
    assert df["json_error"].dtype == bool and df["json_error"].tolist() == [False, False]
    df = decode_json(pa.array([b"", b"{x"], pa.binary()))
    assert list(df) == ["json_error"] and df["json_error"].tolist() == [False, True]


def test_big_float_rows_are_reread_in_the_right_columns() -> None:
    payloads = [b'{"a": 1, "v": 2}', b'{"v": 18446744073709551617, "a": 2}', b'{"a": 3}']
    df, _ = both(payloads)
    assert list(df.columns) == [*META, "a", "v", "json_error"]
    assert df["v"].tolist()[:2] == [2, 18446744073709551617]


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_setting_is_restored(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    try:
        decode_json(pa.array([b'{"a":1}'], pa.binary()))
        assert gc.isenabled() is enabled
        with pytest.raises(ZeroDivisionError), jd.no_gc():
            assert not gc.isenabled()
            raise ZeroDivisionError
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


# ------------------------------------------------------------------------------ _frames
def test_to_frame_refuses_an_unknown_decode() -> None:
    msg = (r"^natsbook: decode='xml' is not one of auto, json, text, bytes, msgpack, cbor, a "
           r"name given to natsbook.register_decoder, or natsbook.protobuf\(...\)$")
    with pytest.raises(BadInputError, match=msg):
        to_frame(table([b"1"]), "xml")


def test_to_frame_meta_columns_and_extra() -> None:
    t = table([b"ab", None, b""], times=[5, 6, 7])
    df = to_frame(t, "bytes", extra=[("seq", pa.array([1, 2, 3])), ("sub", pa.array(["x"] * 3))])
    assert list(df.columns) == ["time", "seq", "sub", "subject", "reply", "headers", "size",
                                "data"]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert [x.value for x in df["time"]] == [5, 6, 7]
    assert df["seq"].tolist() == [1, 2, 3] and df["sub"].tolist() == ["x"] * 3
    assert df["size"].dtype == np.int64 and df["size"].tolist() == [2, 0, 0]
    assert df["subject"].tolist() == ["s"] * 3 and df["reply"].tolist() == ["r"] * 3
    assert df["headers"].tolist() == [None, None, None] and df["headers"].dtype == object
    assert isinstance(df["data"].dtype, pd.ArrowDtype)
    assert df["data"][0] == b"ab" and df["data"][1] is pd.NA and df["data"][2] == b""


def test_text_mode_replaces_invalid_utf8() -> None:
    df = to_frame(table([b"h\xc3\xa9", b"\xff", None]), "text")
    assert df["data"].tolist()[:2] == ["hé", "\ufffd"] and pd.isna(df["data"][2])
    assert str(df["data"].dtype) == TEXT
    df = to_frame(table([b"ok", None]), "text")
    assert df["data"].tolist()[0] == "ok" and pd.isna(df["data"][1])
    assert str(df["data"].dtype) == TEXT


def test_headers_column() -> None:
    blocks = [None, b"NATS/1.0\r\nA: 1\r\nA: 2\r\nB: x\r\n\r\n", b"",
              b"NATS/1.0\r\nA: 1\r\nA: 2\r\nB: x\r\n\r\n", b"NATS/1.0 503 No Responders\r\n\r\n",
              b"NATS/1.0 404\r\n\r\n", b"NATS/1.0 408 Timeout\r\nStatus: 1\r\n\r\n"]
    df = to_frame(table([b""] * len(blocks), headers=blocks), "bytes")
    h = df["headers"].tolist()
    assert h[0] is None and h[2] is None
    assert h[1] == {"A": ["1", "2"], "B": ["x"]} == h[3]
    assert h[4] == {"Status": ["503"], "Description": ["No Responders"]}
    assert h[5] == {"Status": ["404"]}
    assert h[6] == {"Status": ["1"], "Description": ["Timeout"]}
    h[1]["A"].append("3")  # each row owns its dict and lists
    assert h[3] == {"A": ["1", "2"], "B": ["x"]}


@pytest.mark.parametrize("decode", ["auto", "json", "text", "bytes"])
def test_a_bad_header_block_is_a_flagged_row(decode: str) -> None:
    good = b"NATS/1.0\r\nA: 1\r\n\r\n"
    blocks = [good, b"XYZ\r\n\r\n", None, b"XYZ\r\n\r\n", b"\xff\xfeNATS/1.0\r\n\r\n", good]
    payloads = [b'{"i":%d}' % i for i in range(len(blocks))]
    df = to_frame(table(payloads, headers=blocks), decode)
    assert list(df.columns[:6]) == ["time", "subject", "reply", "headers", "header_error",
                                    "size"]
    assert df["headers"].tolist() == [{"A": ["1"]}, None, None, None, None, {"A": ["1"]}]
    assert str(df["header_error"].dtype) == TEXT
    errors = [None if pd.isna(v) else v for v in df["header_error"]]
    assert errors == [None, "header block does not start with NATS/1.0: 'XYZ'", None,
                      "header block does not start with NATS/1.0: 'XYZ'",
                      "header block does not start with NATS/1.0: '\ufffd\ufffdNATS/1.0'", None]
    assert df["size"].tolist() == [7] * 6  # the payloads are all there
    if decode in ("auto", "json"):
        assert df["i"].tolist() == list(range(6)) and not df["json_error"].any()
    # Only a frame holding a bad block has the column (as `data` only with a non-object).
    assert "header_error" not in to_frame(table(payloads[:1], headers=blocks[:1]), decode)
    assert "header_error" not in to_frame(table(payloads), decode)


def test_a_payload_key_named_header_error_keeps_its_own_column() -> None:
    df = to_frame(table([b'{"header_error": 1}'], headers=[b"XYZ\r\n\r\n"]), "json")
    assert list(df.columns) == [*META[:4], "header_error", "size", "data.header_error",
                                "json_error"]
    assert df["data.header_error"].tolist() == [1]


@pytest.mark.parametrize(("payloads", "mode"), [
    ([], "bytes"),
    ([b'{"a":1}', b"x"], "json"),
    ([b'{"a":1}', b"x", b"y"], "text"),
    ([b'{"a":1}', b"", b"", b"1"], "json"),
    ([b"", b""], "text"),
    ([b'{"a":1}', b"\xff", b"\xff"], "bytes"),
    ([b"[1]", b"2"], "text"),
])
def test_auto_detection(payloads: list[bytes], mode: str) -> None:
    df = to_frame(table(payloads), "auto")
    if mode == "json":
        assert "json_error" in df.columns
    elif mode == "text":
        assert "json_error" not in df.columns and str(df["data"].dtype) == TEXT
    else:
        assert "json_error" not in df.columns and isinstance(df["data"].dtype, pd.ArrowDtype)


def test_auto_detection_samples_the_first_2000_rows() -> None:
    objects = [b'{"a":1}'] * 1000 + [b"x"] * 1000 + [b"y"]  # 1000 of the first 2000: json
    assert "json_error" in to_frame(table(objects), "auto").columns
    text = [b"x"] * 2000 + [b'{"a":1}'] * 3000
    assert "json_error" not in to_frame(table(text), "auto").columns


def test_filter_by_subject_pattern() -> None:
    subjects = ["a.b", "a.c", "a.b.c", "b.b", "a.b"]
    t = table([b"%d" % i for i in range(5)], subjects=subjects)
    def got(**kw: object) -> list[bytes]:
        return filter_table(t, **kw)["payload"].to_pylist()  # type: ignore[arg-type]
    assert got(subject="a.b") == [b"0", b"4"]
    assert got(subject="a.*") == [b"0", b"1", b"4"]
    assert got(subject="a.>") == [b"0", b"1", b"2", b"4"]
    assert got(subject="z") == []
    assert got() == [b"%d" % i for i in range(5)]
    empty = table([])
    assert filter_table(empty, subject="a").num_rows == 0


def test_filter_since_is_inclusive_and_naive_means_utc() -> None:
    base = pd.Timestamp("2024-05-01T12:00:00Z")
    t = table([b"0", b"1", b"2"], times=[base.value - 1, base.value, base.value + 1])
    def got(since: object) -> list[bytes]:
        return filter_table(t, since=since)["payload"].to_pylist()
    assert got(base) == [b"1", b"2"]
    assert got("2024-05-01T12:00:00") == [b"1", b"2"]  # naive: UTC
    assert got(pd.Timestamp("2024-05-01T14:00:00+02:00")) == [b"1", b"2"]
    assert got(base + pd.Timedelta(1, "ns")) == [b"2"]
    assert got(None) == [b"0", b"1", b"2"]
    assert filter_table(table([]), since=base).num_rows == 0


def test_filter_last() -> None:
    t = table([b"0", b"1", b"2"])
    assert filter_table(t, last=2)["payload"].to_pylist() == [b"1", b"2"]
    assert filter_table(t, last=0).num_rows == 0
    assert filter_table(t, last=3).num_rows == 3 and filter_table(t, last=9).num_rows == 3
    with pytest.raises(BadInputError, match=r"^natsbook: last=-1 must be >= 0$"):
        filter_table(t, last=-1)
    sub = filter_table(table([b"0", b"1", b"2"], subjects=["a", "b", "a"]), subject="a", last=1)
    assert sub["payload"].to_pylist() == [b"2"]


@pytest.mark.parametrize("fast", [True, False])
def test_data_and_json_error_dtypes(fast: bool) -> None:
    cols = decode_json(pa.array([b'"a"', b'"b"', b"{bad"], pa.binary()), fast=fast)
    assert list(cols) == ["data", "json_error"]
    assert cols["data"].dtype == object and cols["data"].tolist()[:2] == ["a", "b"]
    assert cols["data"][2] is pd.NA
    assert cols["json_error"].dtype == bool and cols["json_error"].tolist() == [False, False, True]


def test_to_frame_decodes_auto_by_default() -> None:
    df = to_frame(table([b'{"a": 1}', b'{"a": 2}']))
    assert list(df.columns) == [*META, "a", "json_error"] and df["a"].tolist() == [1, 2]
    df = to_frame(table([b"x"]))
    assert list(df.columns) == [*META, "data"] and df["data"].tolist() == ["x"]
