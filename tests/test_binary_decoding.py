"""MessagePack and CBOR payloads decode by the JSON contract (docs/capture.md).

Differential: random objects sent as JSON and as MessagePack / CBOR give equal frames, on the
fast and careful paths. Values JSON has no form for are held to a plain reading of the mapping
(tests/reference_binary.py). Bad payloads are flagged rows. Then the same through a real
nats-server: to_pandas, conn.to_pandas, Parquet and spill round trips, a declared decoder.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import cbor2
import msgpack
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import natsbook
from natsbook.capture import CaptureStore, register_decoder, to_frame
from natsbook.capture._store import SCHEMA
from natsbook.errors import BadInputError

from . import reference_binary as ref
from .reference_decoder import check_rows

META = ["time", "subject", "reply", "headers", "size"]
KEYS = st.sampled_from(["a", "b", "v", "a.b", "b.c", "x\\y", "", ".", "é", "sub", "seq", "data",
                        "size", "time", "json_error", "subject", "headers"])
# MessagePack holds integers in [-2**63, 2**64); CBOR any (bignum tags).
MP_INTS = st.one_of(st.integers(-(2**63), 2**64 - 1), st.sampled_from(
    [2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63, -(2**63), 2**64 - 1, 0, -1]))
CBOR_INTS = st.one_of(MP_INTS, st.integers(-(2**70), 2**70), st.sampled_from([2**64, 10**30]))
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=6)  # no lone surrogates


def _values(ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), ints,
                       st.floats(allow_nan=False, allow_infinity=False), TEXT)
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)


def _batches(ints: st.SearchStrategy[int]) -> st.SearchStrategy[list[Any]]:
    values = _values(ints)
    narrow = st.dictionaries(st.sampled_from(["v", "a"]), st.one_of(
        st.none(), st.booleans(), ints, st.floats(allow_nan=False, allow_infinity=False),
        st.dictionaries(st.sampled_from(["v", "b"]), ints, max_size=2)), max_size=2)
    item = st.one_of(st.dictionaries(KEYS, values, max_size=5), values, narrow,
                     st.sampled_from([EMPTY, BAD]))
    return st.lists(item, min_size=1, max_size=8)


EMPTY = object()  # an empty payload
BAD = object()  # a payload that is not the format


def table(payloads: list[bytes], metadata: dict[bytes, bytes] | None = None) -> pa.Table:
    n = len(payloads)
    t = pa.table({
        "time": pa.array(range(n), pa.int64()).cast(SCHEMA.field("time").type),
        "subject": pa.array(["s"] * n, pa.string()),
        "reply": pa.nulls(n, pa.string()),
        "headers": pa.nulls(n, pa.binary()),
        "payload": pa.array(payloads, pa.binary()),
    }, schema=SCHEMA)
    return t.replace_schema_metadata(metadata) if metadata else t


def _json(obj: Any) -> bytes:
    if obj is EMPTY:
        return b""
    return b"{bad" if obj is BAD else json.dumps(obj).encode()


def _msgpack(obj: Any) -> bytes:
    if obj is EMPTY:
        return b""
    return b"\xc1" if obj is BAD else msgpack.packb(obj)  # 0xc1: never used by MessagePack


def _cbor(obj: Any) -> bytes:
    if obj is EMPTY:
        return b""
    return b"\xa1\x61" if obj is BAD else cbor2.dumps(obj)  # a map cut short


FORMATS = {"msgpack": (_msgpack, ref.msgpack_loads), "cbor": (_cbor, ref.cbor_loads)}


def same_as_json(objs: list[Any], fmt: str) -> None:
    encode, loads = FORMATS[fmt]
    payloads = [encode(o) for o in objs]
    want = to_frame(table([_json(o) for o in objs]), "json").drop(columns="size")
    for fast in (True, False):
        got = to_frame(table(payloads), fmt, fast=fast)
        pd.testing.assert_frame_equal(got.drop(columns="size"), want, check_exact=True)
        assert got["size"].tolist() == list(map(len, payloads))
        check_rows(got, [ref.read(p, loads) for p in payloads], META)


# ------------------------------------------------------------------ differential, no server
@example([{"id": 2**63 - 1}, {"id": 2**63}])
@example([{"a.b": 1, "a": {"b": 2}, "sub": 3}, 5, None, EMPTY, BAD, {}])
@example([{"v": 1}, {"v": 1.5}, {"v": True}])
@settings(derandomize=True, max_examples=400, deadline=None)
@given(_batches(MP_INTS))
def test_msgpack_frames_equal_json_frames(objs: list[Any]) -> None:
    same_as_json(objs, "msgpack")


@example([{"big": 10**30}, {"big": 1}])
@settings(derandomize=True, max_examples=400, deadline=None)
@given(_batches(CBOR_INTS))
def test_cbor_frames_equal_json_frames(objs: list[Any]) -> None:
    same_as_json(objs, "cbor")


# Values JSON has no form for, and maps with non-text keys.
BINARY_LEAVES = st.one_of(
    st.binary(max_size=4),
    st.builds(msgpack.Timestamp, st.integers(-(2**34), 2**34), st.integers(0, 10**9 - 1)),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=3)),
    MP_INTS, TEXT, st.none(), st.booleans(), st.floats(allow_nan=False))
ODD_KEYS = st.one_of(KEYS, st.integers(-3, 3), st.booleans(), st.none(), st.binary(max_size=2),
                     st.floats(allow_nan=False, allow_infinity=False))
BINARY_VALUES = st.recursive(BINARY_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(ODD_KEYS, inner, max_size=3)), max_leaves=8)


@example([{1: "one", "1": "text one"}, {b"\xff": 1}, {"t": msgpack.Timestamp(2**40, 0)}])
@example([{"a": [{b"": 1}]}, {"b": b""}])  # an empty bin as a key inside an array
@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.dictionaries(ODD_KEYS, BINARY_VALUES, max_size=4), BINARY_VALUES),
                min_size=1, max_size=6))
def test_msgpack_values_without_json_form_follow_the_mapping(objs: list[Any]) -> None:
    payloads = [msgpack.packb(o, strict_types=False) for o in objs]
    for fast in (True, False):
        df = to_frame(table(payloads), "msgpack", fast=fast)
        check_rows(df, [ref.read(p, ref.msgpack_loads) for p in payloads], META)
    for p in payloads:  # a row reads the same alone and next to bad and empty payloads
        batch = [b"\xc1", p, b""]
        check_rows(to_frame(table(batch), "msgpack"), [ref.read(q, ref.msgpack_loads)
                                                        for q in batch], META)


# ------------------------------------------------------------------ the mapping, exactly
def test_bytes_timestamps_and_keys_map_as_documented() -> None:
    payloads = [
        msgpack.packb({"blob": b"\x00\x01", "t": msgpack.Timestamp(1, 5), 7: "seven",
                       True: "yes", None: "nil", 1.5: "x"}),
        msgpack.packb({"t": msgpack.Timestamp(2, 0), "e": msgpack.ExtType(5, b"ab")}),
    ]
    df = to_frame(table(payloads), "msgpack")
    assert list(df.columns[5:]) == ["blob", "t", "7", "true", "null", "1\\.5", "e",
                                "json_error"]
    assert df["blob"].tolist() == [b"\x00\x01", None]
    assert str(df["t"].dtype) == "datetime64[ns, UTC]"
    assert df["t"].tolist() == [pd.Timestamp(1_000_000_005, tz="UTC"),
                                pd.Timestamp(2_000_000_000, tz="UTC")]
    assert df["e"].tolist()[1] == msgpack.ExtType(5, b"ab")
    assert df["7"].tolist()[0] == "seven"


def test_cbor_tags_map_as_documented() -> None:
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    payloads = [cbor2.dumps({"t": when, "d": Decimal("1.25"), "u": cbor2.undefined,
                             "n": float("nan"), 3: [b"x"]}),
                cbor2.dumps({"t": dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc)})]
    df = to_frame(table(payloads), "cbor")
    assert list(df.columns[5:]) == ["t", "d", "u", "n", "3", "json_error"]
    assert df["t"].tolist()[0] == pd.Timestamp(when)
    assert df["t"].tolist()[1] == dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc)  # past 2262
    assert df["d"].tolist()[0] == Decimal("1.25")
    assert df["u"].isna().all()  # undefined is missing, as null is
    assert math.isnan(df["n"].tolist()[0])
    assert df["3"].tolist()[0] == [b"x"]


def test_duplicate_keys_after_key_mapping_keep_the_last_value() -> None:
    df = to_frame(table([msgpack.packb({1: "int", "1": "text"})]), "msgpack")
    assert df["1"].tolist() == ["text"]
    assert list(df.columns[5:]) == ["1", "json_error"]


@pytest.mark.parametrize(("fmt", "payload"), [
    ("msgpack", b"\xc1"),  # never used
    ("msgpack", msgpack.packb({"a": 1})[:-1]),  # truncated
    ("msgpack", msgpack.packb({"a": 1}) + b"\x01"),  # two values
    ("msgpack", b"\x81\xa1a\xa2\xff\xfe"),  # a str that is not UTF-8
    ("msgpack", b"\x81\x91\x01\x02"),  # an array as a map key
    ("msgpack", b"\x81\xc4\x01\xff\x01"),  # a bytes key that is not UTF-8
    ("msgpack", b"\x91" * 257 + b"\x90"),  # 258 levels deep
    ("cbor", b"\xa1\x61"),  # truncated
    ("cbor", cbor2.dumps({"a": 1}) + b"\x00"),  # two values
    ("cbor", b"\xa1\x61a\x62\xff\xfe"),  # text that is not UTF-8
    ("cbor", b"\x81" * 257 + b"\x80"),  # 258 levels deep
    ("cbor", b"\x81" * 2000 + b"\x80"),  # past cbor2's own depth limit
    ("cbor", b"\xa1\x81\x01\x01"),  # an array as a map key
    ("cbor", b"\xff"),  # a break with nothing to end
])
@pytest.mark.parametrize("fast", [True, False])
def test_bad_payload_is_a_flagged_row(fmt: str, payload: bytes, fast: bool) -> None:
    encode = FORMATS[fmt][0]
    good = encode({"v": 1})
    df = to_frame(table([good, payload, good]), fmt, fast=fast)
    assert df["json_error"].tolist() == [False, True, False]
    assert df["v"].tolist() == [1, pd.NA, 1]
    assert list(df.columns[5:]) == ["v", "json_error"]


def test_depth_limit_is_256_as_for_json() -> None:
    for fmt in FORMATS:
        encode = FORMATS[fmt][0]
        deep: Any = 1
        for _ in range(256):
            deep = [deep]
        too_deep = [deep]
        for fast in (True, False):
            df = to_frame(table([encode(deep), encode(too_deep)]), fmt, fast=fast)
            assert df["json_error"].tolist() == [False, True], (fmt, fast)


# ------------------------------------------------------------------ auto, registry
def test_auto_detects_msgpack_and_cbor_maps_only() -> None:
    mp = [msgpack.packb({"v": i}) for i in range(4)]
    cb = [cbor2.dumps({"v": i}) for i in range(4)]
    assert to_frame(table(mp), "auto")["v"].tolist() == [0, 1, 2, 3]
    assert to_frame(table(cb), "auto")["v"].tolist() == [0, 1, 2, 3]
    # Mostly not maps: left as bytes. UTF-8 payloads stay text even if MessagePack reads them.
    assert list(to_frame(table([msgpack.packb([1, 2]), b"\xff"] * 2), "auto").columns)[-1] \
        == "data"
    assert to_frame(table([b"\x01", b"\x02"]), "auto")["data"].tolist() == ["\x01", "\x02"]


def test_register_decoder_flattens_by_the_contract_and_flags_what_raises() -> None:
    def framed(p: bytes) -> Any:  # a company framing: b"K" + JSON
        if not p.startswith(b"K"):
            raise ValueError("no K")
        return {"k": json.loads(p[1:]), "n": len(p)}

    register_decoder("k-framed", framed)
    df = to_frame(table([b'K{"a": {"b": 1}}', b"nope", b""]), "k-framed")
    assert list(df.columns[5:]) == ["k.a.b", "n", "json_error"]
    assert df["k.a.b"].tolist() == [1, pd.NA, pd.NA]
    assert df["json_error"].tolist() == [False, True, False]


@pytest.mark.parametrize("name", ["json", "msgpack", "auto", "a b", "", "protobuf:x"])
def test_register_decoder_refuses_natsbook_names_and_odd_names(name: str) -> None:
    with pytest.raises(BadInputError):
        register_decoder(name, bytes)


def test_unknown_decode_names_what_is_accepted() -> None:
    with pytest.raises(BadInputError, match="msgpack, cbor"):
        to_frame(table([b"x"]), "avro-nobody-registered")


# ------------------------------------------------------------------ declared decoder, store
def test_store_declares_its_decoder_in_every_table_it_gives(tmp_path: Path) -> None:
    store = CaptureStore(spill=tmp_path / "s", seal_rows=2, decode="msgpack")
    store.append([(b"s", None, None, msgpack.packb({"v": i})) for i in range(5)])
    store.flush_spill()
    store.append([(b"s", None, None, msgpack.packb({"v": 5}))])
    assert to_frame(store.table())["v"].tolist() == list(range(6))  # auto uses it
    store.finish()  # the spill directory now holds every row
    assert natsbook.read_capture(tmp_path / "s")["v"].tolist() == list(range(6))
    assert to_frame(store.table(), "bytes")["data"].tolist()[0] == msgpack.packb({"v": 0})


def test_declared_decoder_not_registered_here_is_named() -> None:
    meta = {b"natsbook.decode": b"nobody-registered-this"}
    with pytest.raises(BadInputError, match="register_decoder"):
        to_frame(table([b"x"], meta))
    assert to_frame(table([b"x"], meta), "bytes")["data"].tolist() == [b"x"]


# ------------------------------------------------------------------ through a real server
def _wait(sub: natsbook.Subscription, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sub.stats.received < n and time.monotonic() < deadline:
        time.sleep(0.002)
    assert sub.stats.received == n


@settings(derandomize=True, max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(_batches(MP_INTS), st.sampled_from(sorted(FORMATS)))
def test_every_path_through_a_server_equals_json(server: natsbook.LocalServer, objs: list[Any],
                                                 fmt: str) -> None:
    encode, loads = FORMATS[fmt]
    payloads = [encode(o) for o in objs]
    rows = [ref.read(p, loads) for p in payloads]
    want = to_frame(table([_json(o) for o in objs]), "json").drop(columns=META)
    root = f"b{uuid.uuid4().hex[:12]}"
    conn = natsbook.connect(server.url, name="natsbook-binary")
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
            frames = [sub.to_pandas(fmt)]
            mine = conn.to_pandas(fmt)
            frames.append(mine[mine["sub"] == f"{root}.m"].drop(columns="sub")
                          .reset_index(drop=True))
            sub.to_parquet(Path(tmp) / "one.parquet")
            frames.append(natsbook.read_capture(Path(tmp) / "one.parquet", fmt))
            spilled.unsubscribe()
            frames.append(natsbook.read_capture(spill, fmt))
            for df in frames:
                check_rows(df, rows, META)
                pd.testing.assert_frame_equal(df.drop(columns=META), want, check_exact=True)
    finally:
        conn.close()


# ------------------------------------------------------------------ SQL
def test_sql_sees_a_declared_binary_capture_as_json_text(tmp_path: Path) -> None:
    when = msgpack.Timestamp(1_700_000_000, 0)
    store = CaptureStore(spill=tmp_path / "spill", seal_rows=2, decode="msgpack")
    rows = [msgpack.packb({"temp": 20.5 + i, "site": f"s{i % 2}", "blob": b"\x01", "at": when})
            for i in range(5)]
    store.append([(b"t.bin", None, None, p) for p in [*rows, b"", b"\xc1"]])
    store.finish()
    query = ("SELECT data::JSON ->> 'site' AS site, (data::JSON ->> 'temp')::DOUBLE AS temp, "
             "data::JSON ->> 'blob' AS blob, data::JSON ->> 'at' AS at, data, payload "
             "FROM messages")
    plain = CaptureStore()  # an undeclared capture in the same directory stays as it was
    plain.append([(b"t.json", None, None, b'{"site": "j"}')])
    pq.write_table(plain.table(), tmp_path / "spill" / "plain.parquet")
    for path in (tmp_path / "spill",):
        df = natsbook.sql(query + " ORDER BY temp NULLS LAST, site NULLS FIRST", path)
        assert df["site"].tolist()[:5] == ["s0", "s1", "s0", "s1", "s0"]
        assert df["temp"].tolist()[:5] == [20.5, 21.5, 22.5, 23.5, 24.5]
        assert df["blob"].tolist()[:5] == ["AQ=="] * 5  # bytes as base64
        assert df["at"].tolist()[0] == "2023-11-14T22:13:20+00:00"
        assert df["data"].tolist()[7] == '{"site": "j"}'  # no temp: sorted last
        assert df["data"].isna().tolist()[5:] == [True, True, False]  # empty, bad
        assert df["payload"].tolist()[:5] == rows  # the raw bytes stay


def test_subscribe_with_decode_declares_it_for_frames_sql_and_files(
        conn: natsbook.Connection, tmp_path: Path) -> None:
    root = f"d{uuid.uuid4().hex[:12]}"
    sub = conn.subscribe(f"{root}.>", decode="msgpack", spill=tmp_path / "spill")
    for i in range(4):
        conn.publish(f"{root}.a", msgpack.packb({"v": i, "site": "x" if i % 2 else "y"}))
    for _ in range(5):  # mostly bad: undeclared, auto would not take it for MessagePack
        conn.publish(f"{root}.a", b"\xc1")
    conn.flush()
    _wait(sub, 9)
    df = sub.to_pandas()  # auto: the declared decoder
    assert df["v"].tolist() == [0, 1, 2, 3, *[pd.NA] * 5]
    assert df["json_error"].tolist() == [False] * 4 + [True] * 5
    assert sub.to_pandas("bytes")["data"].tolist()[-1] == b"\xc1"  # explicit decode wins
    got = sub.sql("SELECT data::JSON ->> 'site' AS site, count(*) AS n FROM messages "
                  "WHERE data IS NOT NULL GROUP BY 1 ORDER BY 1")
    assert got.to_dict("list") == {"site": ["x", "y"], "n": [2, 2]}
    sub.to_parquet(tmp_path / "one.parquet")
    sub.unsubscribe()
    for path in (tmp_path / "one.parquet", tmp_path / "spill"):
        pd.testing.assert_frame_equal(natsbook.read_capture(path), df)
        assert natsbook.sql("SELECT sum((data::JSON ->> 'v')::INT) AS s FROM messages",
                            path)["s"].tolist() == [6]
    with pytest.raises(BadInputError, match="register_decoder"):
        conn.subscribe(f"{root}.b", decode="nobody-registered-this")


def test_a_live_view_decodes_a_declared_capture(conn: natsbook.Connection) -> None:
    from natsbook.capture import Refresher

    register_decoder("k-live", lambda p: json.loads(p[1:]))  # auto could never guess it
    root = f"l{uuid.uuid4().hex[:12]}"
    sub = conn.subscribe(f"{root}.>", decode="k-live")
    for i in range(3):
        conn.publish(f"{root}.a", b"K" + json.dumps({"v": i}).encode())
    conn.flush()
    _wait(sub, 3)
    results: list[Any] = []
    errors: list[str] = []
    for decode in ("auto", "k-live"):
        view = Refresher(lambda: [sub], lambda: not sub.active, sub.sql,
                         lambda df: df["v"].tolist(), every=0.1, decode=decode,
                         on_result=results.append, on_error=errors.append)
        view._render()
    assert results == [[0, 1, 2], [0, 1, 2]] and not errors
    with pytest.raises(BadInputError):
        Refresher(lambda: [sub], lambda: not sub.active, sub.sql, len, decode="nope",
                  on_result=results.append, on_error=errors.append)


@pytest.mark.parametrize("fast", [True, False])
def test_a_value_split_over_two_payloads_is_two_bad_rows(fast: bool) -> None:
    # Read as one stream, these are exactly two values: each payload alone is bad.
    whole = msgpack.packb({"a": 1})
    batch = [msgpack.packb({"v": 1}) + whole[:1], whole[1:], msgpack.packb({"v": 2})]
    df = to_frame(table(batch), "msgpack", fast=fast)
    assert df["json_error"].tolist() == [True, True, False]
    assert df["v"].tolist() == [pd.NA, pd.NA, 2]


def test_stream_history_and_follow_decode_msgpack(conn: natsbook.Connection) -> None:
    from natsbook import jetstream as js

    root = f"h{uuid.uuid4().hex[:12]}"
    js.add_stream(conn, root, [f"{root}.>"], storage="memory")
    try:
        for i in range(3):
            js.js_publish(conn, f"{root}.a", msgpack.packb({"i": i, "m": {"k": "v"}}))
        hist = js.stream_history(conn, root, decode="msgpack")
        assert list(hist.columns[:2]) == ["time", "seq"]
        assert hist["i"].tolist() == [0, 1, 2] and hist["m.k"].tolist() == ["v"] * 3
        with js.follow(conn, root) as f:
            js.js_publish(conn, f"{root}.a", cbor2.dumps({"i": 3}))
            deadline = time.monotonic() + 10
            while len(f) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            frame = f.to_pandas("msgpack")
        assert frame["i"].tolist() == [0, 1, 2, pd.NA]  # the CBOR row is not MessagePack
        assert frame["json_error"].tolist() == [False, False, False, True]
    finally:
        js.delete_stream(conn, root)


def test_replaying_a_msgpack_frame_sends_json_and_refuses_bytes(conn: natsbook.Connection,
                                                                subject: str) -> None:
    good = to_frame(table([msgpack.packb({"v": 1, "t": msgpack.Timestamp(1, 0)})]), "msgpack")
    sub = conn.subscribe(f"{subject}.back")
    assert conn.publish_frame(good, subject=f"{subject}.back") == 1
    conn.flush()
    _wait(sub, 1)
    assert json.loads(sub.to_pandas("bytes")["data"][0]) == {
        "v": 1, "t": "1970-01-01T00:00:01+00:00"}
    for obj, name in (({"b": b"\x00"}, "'b'"), ({"l": [b"\x00"]}, "row 0")):
        df = to_frame(table([msgpack.packb(obj)]), "msgpack")
        with pytest.raises(BadInputError, match=name):
            conn.publish_frame(df, subject=f"{subject}.back")


def test_kv_values_decode_like_captures(conn: natsbook.Connection) -> None:
    """KV's to_pandas / history / watch take the same decode names: a MessagePack value is its
    object, one that does not decode is None (as a non-JSON value is for decode="json")."""
    kv = conn.kv(f"kvbin{uuid.uuid4().hex[:10]}", create=True, history=3)
    kv.put("a", msgpack.packb({"t": 21.5, "ok": True}))
    kv.put("b", b"\xc1")  # 0xc1 is never used in MessagePack
    kv.put("a", msgpack.packb([1, 2]))
    latest = kv.to_pandas("msgpack").set_index("key")["value"]
    assert latest["a"] == [1, 2] and latest["b"] is None
    assert kv.history("a", decode="msgpack")["value"].tolist() == [{"t": 21.5, "ok": True},
                                                                  [1, 2]]
    with pytest.raises(BadInputError, match="nope"):
        kv.to_pandas("nope")
