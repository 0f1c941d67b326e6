"""The simulator's binary-telemetry family: each reading again as MessagePack and Protobuf,
decoded by natsbook into the same readings as the JSON subject carries."""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest

import natsbook
from natsbook.errors import BadInputError
from natsbook.lab._binary import PROTO_TEXT, READING, descriptor_set
from natsbook.lab.simulator import Simulator


def _wait_for(subs: list[natsbook.Subscription], n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while min(s.received for s in subs) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert min(s.received for s in subs) >= n


def test_binary_family_carries_the_json_readings(conn: natsbook.Connection) -> None:
    root = f"b{uuid.uuid4().hex[:10]}"
    subs = [conn.subscribe(f"{root}j.>"), conn.subscribe(f"{root}.msgpack.>"),
            conn.subscribe(f"{root}.proto.>")]
    sim = Simulator(conn, devices=3, rate=20, services=False, workers=0, job_rate=0,
                    prefix=f"{root}j", binary=root, seed=3, anomaly_rate=0.0,
                    malformed_rate=0.0).start()
    try:
        _wait_for(subs, 30)
    finally:
        sim.stop()
    conn.flush()
    js = subs[0].to_pandas("json")
    mp = subs[1].to_pandas("msgpack")
    pb = subs[2].to_pandas(natsbook.protobuf(READING, descriptor_set()))
    n = min(len(js), len(mp), len(pb))
    cols = ["device", "site", "data.seq", "temperature", "humidity", "battery", "status"]
    key = ["device", "data.seq"]
    js, mp, pb = (f[cols + (["ts"] if "ts" in f else [])].sort_values(key).head(n)
                  .reset_index(drop=True) for f in (js, mp, pb))
    assert len(mp) == n > 0
    pd.testing.assert_frame_equal(mp[cols], js[cols], check_dtype=False)
    pb = pb.assign(status=pb["status"].str.lower())
    pd.testing.assert_frame_equal(pb[cols], js[cols], check_dtype=False)
    assert str(mp["ts"].dtype) == str(pb["ts"].dtype) == "datetime64[ns, UTC]"
    want_ts = pd.to_datetime(js["ts"], unit="s", utc=True).dt.round("us")
    assert (mp["ts"].dt.round("us") == want_ts).all()
    assert (pb["ts"].dt.round("us") == want_ts).all()
    assert subs[1].to_pandas("msgpack")["raw"].map(type).eq(bytes).all()


def test_malformed_binary_readings_are_flagged_rows(conn: natsbook.Connection) -> None:
    root = f"b{uuid.uuid4().hex[:10]}"
    subs = [conn.subscribe(f"{root}.msgpack.>"), conn.subscribe(f"{root}.proto.>")]
    sim = Simulator(conn, devices=2, rate=20, services=False, workers=0, job_rate=0,
                    prefix=f"{root}j", binary=root, seed=4, anomaly_rate=0.0,
                    malformed_rate=0.5).start()
    try:
        _wait_for(subs, 40)
    finally:
        sim.stop()
    mp = subs[0].to_pandas("msgpack")
    flagged = mp["json_error"]
    injected = mp["headers"].map(lambda h: (h or {}).get("Sim-Injected") == ["malformed"])
    assert flagged.tolist() == injected.tolist() and flagged.any() and not flagged.all()
    pb = subs[1].to_pandas(natsbook.protobuf(READING, descriptor_set()))
    assert pb["json_error"].any()


def test_descriptor_set_matches_the_proto_text(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "telemetry.proto"  # type: ignore[operator]
    path.write_text(PROTO_TEXT)
    compiled = natsbook.protobuf(READING, path)
    built = natsbook.protobuf(READING, descriptor_set())
    from natsbook.capture._protobuf import _message_class

    a = _message_class(READING, compiled.metadata()[b"natsbook.protobuf.descriptors"])
    b = _message_class(READING, built.metadata()[b"natsbook.protobuf.descriptors"])
    assert [(f.name, f.number, f.type) for f in a.DESCRIPTOR.fields] == \
        [(f.name, f.number, f.type) for f in b.DESCRIPTOR.fields]


def test_binary_root_must_be_a_subject_token() -> None:
    with pytest.raises(BadInputError):
        Simulator(binary="bad subject")


def test_the_lab_simulator_publishes_the_binary_family(conn: natsbook.Connection,
                                                        server: natsbook.LocalServer) -> None:
    """natsbook lab / simulate / server --simulate run the family by default (issue 27: "the
    lab simulator grows a binary-telemetry subject family"); --no-binary turns it off."""
    from natsbook.lab import _run, cli

    for argv, want in ((["simulate"], True), (["simulate", "--no-binary"], False)):
        args = cli.build_parser().parse_args([*argv, "--devices", "2", "--rate", "20",
                                              "--no-services", "--workers", "0"])
        sub = conn.subscribe("binary.msgpack.>")
        sim = _run.start_simulator(server.url, args)
        try:
            time.sleep(1.0) if not want else _wait_for([sub], 5)
        finally:
            sim.stop()
        conn.flush()
        sub.unsubscribe()
        assert (sub.received > 0) is want, argv
        if want:
            assert sub.to_pandas("msgpack")["temperature"].notna().all()
