"""Protobuf payloads decode by the JSON contract: a message gives the columns its fields give
as a JSON object (the official runtime's own JSON mapping, field names as in the .proto, every
field without presence printed), compiled from .proto text or read from a descriptor set."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from google.protobuf import descriptor_pb2, json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import natsbook
from natsbook.capture import CaptureStore, protobuf, to_frame
from natsbook.capture._protobuf import _message_class
from natsbook.errors import BadInputError

from .test_binary_decoding import META, table

PROTO = """
syntax = "proto3";
package telemetry;
import "google/protobuf/timestamp.proto";
enum State { UNKNOWN = 0; OK = 1; FAULT = 2; }
message Location { double lat = 1; double lon = 2; }
message Reading {
  string sensor_id = 1;
  double temp = 2;
  int32 count = 3;
  bool on = 4;
  State state = 5;
  optional int32 maybe = 6;
  Location loc = 7;
  repeated double samples = 8;
  map<string, int32> tags = 9;
  oneof extra { string note = 12; int32 code = 13; }
}
message Wide {
  int64 counter = 1;
  uint64 big = 2;
  bytes raw = 3;
  google.protobuf.Timestamp at = 4;
  State state = 5;
  map<int32, string> names = 6;
}
"""


@pytest.fixture(scope="module")
def proto_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("protos")
    (d / "telemetry.proto").write_text(PROTO)
    return d


@pytest.fixture(scope="module")
def reading(proto_dir: Path) -> natsbook.capture.Decoder:
    return protobuf("telemetry.Reading", proto_dir / "telemetry.proto")


def _cls(decoder: natsbook.capture.Decoder, name: str = "telemetry.Reading") -> Any:
    return _message_class(name, decoder.metadata()[b"natsbook.protobuf.descriptors"])


FINITE = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=4)
READINGS = st.fixed_dictionaries({}, optional={
    "sensor_id": TEXT, "temp": FINITE, "count": st.integers(-(2**31), 2**31 - 1),
    "on": st.booleans(), "state": st.integers(0, 2), "maybe": st.integers(-5, 5),
    "loc": st.fixed_dictionaries({}, optional={"lat": FINITE, "lon": FINITE}),
    "samples": st.lists(FINITE, max_size=3),
    "tags": st.dictionaries(st.sampled_from(["a", "b.c", "sub", ""]), st.integers(-9, 9),
                            max_size=2),
    "note": TEXT, "code": st.integers(-9, 9)})


def _in_field_order(msg: Any, d: dict[str, Any]) -> dict[str, Any]:
    """The runtime's JSON object with its keys in field order (it prints set fields first)
    and map entries in key order."""
    out = {}
    for field in msg.DESCRIPTOR.fields:
        if field.name in d:
            v = d[field.name]
            if field.message_type is not None and not field.is_repeated:
                v = _in_field_order(getattr(msg, field.name), v)
            elif isinstance(v, dict):  # a map: natsbook gives its entries in key order
                v = dict(sorted(v.items()))
            out[field.name] = v
    return out


@settings(derandomize=True, max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(READINGS, min_size=1, max_size=6))
def test_protobuf_frames_equal_json_frames(reading: natsbook.capture.Decoder,
                                           fields: list[dict[str, Any]]) -> None:
    cls = _cls(reading)
    msgs = [cls(**f) for f in fields]
    as_json = [json.dumps(_in_field_order(m, json_format.MessageToDict(
        m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)))
        .encode() for m in msgs]
    want = to_frame(table(as_json), "json").drop(columns=META)
    payloads = [m.SerializeToString() for m in msgs]
    got = to_frame(table(payloads), reading)
    pd.testing.assert_frame_equal(got.drop(columns=META), want, check_exact=True)


def test_values_json_has_no_form_for(proto_dir: Path) -> None:
    wide = protobuf("telemetry.Wide", proto_dir)  # a folder compiles every .proto in it
    cls = _cls(wide, "telemetry.Wide")
    m = cls(counter=2**62 + 1, big=2**64 - 1, raw=b"\x00\xff", state=7, names={3: "three"})
    m.at.seconds, m.at.nanos = 1_700_000_000, 5
    df = to_frame(table([m.SerializeToString(), b"", b"\xff\xff"]), wide)
    assert list(df.columns[5:]) == ["counter", "big", "raw", "at", "state", "names.3",
                                    "names", "json_error"]
    assert df["counter"].tolist()[:2] == [2**62 + 1, 0] and str(df["big"].dtype) == "UInt64"
    assert df["raw"].tolist() == [b"\x00\xff", b"", None]
    assert df["at"].tolist()[0] == pd.Timestamp(1_700_000_000_000_000_005, tz="UTC")
    assert df["state"].tolist()[:2] == [7, "UNKNOWN"]  # a number outside the enum stays one
    assert df["names"].tolist()[1] == {}  # an empty map is one cell holding {}
    # Zero bytes are the all-default message; bytes that are no message are a flagged row.
    assert df["json_error"].tolist() == [False, False, True]


def test_descriptor_set_file_bytes_and_object_give_the_same_decoder(
        reading: natsbook.capture.Decoder, tmp_path: Path) -> None:
    file_set = reading.metadata()[b"natsbook.protobuf.descriptors"]
    (tmp_path / "set.pb").write_bytes(file_set)
    fds = descriptor_pb2.FileDescriptorSet.FromString(file_set)
    payload = _cls(reading)(sensor_id="x", temp=1.5).SerializeToString()
    want = to_frame(table([payload]), reading)
    for given_ in (tmp_path / "set.pb", file_set, fds):
        got = to_frame(table([payload]), protobuf("telemetry.Reading", given_))
        pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize(("name", "text", "match"), [
    ("telemetry.Nope", PROTO, "telemetry.Reading"),  # lists what there is
    ("telemetry.Reading", "syntax = 'proto3'; message {", "protoc could not compile"),
])
def test_bad_descriptors_are_named(tmp_path: Path, name: str, text: str, match: str) -> None:
    (tmp_path / "x.proto").write_text(text)
    with pytest.raises(BadInputError, match=match):
        protobuf(name, tmp_path / "x.proto")


def test_missing_descriptors_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="descriptor_set_out"):
        protobuf("telemetry.Reading", tmp_path / "nowhere.pb")
    with pytest.raises(BadInputError, match="FileDescriptorSet"):
        protobuf("telemetry.Reading", b"\xff\xff\xff")


def test_declared_protobuf_capture_reads_back_from_parquet(
        server: natsbook.LocalServer, reading: natsbook.capture.Decoder,
        tmp_path: Path) -> None:
    cls = _cls(reading)
    subject = f"pb.{uuid.uuid4().hex[:12]}"
    conn = natsbook.connect(server.url)
    try:
        sub = conn.subscribe(subject)
        for i in range(5):
            conn.publish(subject, cls(sensor_id=f"s{i}", temp=20 + i).SerializeToString())
        conn.flush()
        deadline = time.monotonic() + 10
        while sub.stats.received < 5 and time.monotonic() < deadline:
            time.sleep(0.002)
        df = sub.to_pandas(reading)
        assert df["sensor_id"].tolist() == [f"s{i}" for i in range(5)]
        # A store that declares the decoder writes it (with the descriptors) into its files.
        store = CaptureStore(decode=reading)
        store.append([(subject.encode(), None, None, p) for p in sub.to_pandas("bytes")["data"]])
        path = tmp_path / "c.parquet"
        import pyarrow.parquet as pq

        pq.write_table(store.table(), path)
        back = natsbook.read_capture(path)  # auto: the declared protobuf decoder
        pd.testing.assert_series_equal(back["temp"], df["temp"])
    finally:
        conn.close()


def test_without_grpcio_tools_the_error_says_how_to_make_a_descriptor_set(
        proto_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "grpc_tools" else real(name, *a))
    with pytest.raises(BadInputError, match=r"natsbook\[protobuf\].*--descriptor_set_out"):
        protobuf("telemetry.Reading", proto_dir / "telemetry.proto")
