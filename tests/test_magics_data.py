"""Magics over JetStream, KV, monitoring and the dashboard, against the real server."""

from __future__ import annotations

import math
import time
import uuid

import pandas as pd
import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook import jetstream as js
from natsbook.notebook.magics import NatsMagics
from tests.conftest import TestingShell


@pytest.fixture
def stream(server: natsbook.LocalServer) -> tuple[str, str]:
    name = f"S{uuid.uuid4().hex[:8]}".upper()
    subject = f"m{uuid.uuid4().hex[:8]}"
    with natsbook.connect(server.url) as c:
        js.add_stream(c, name, [f"{subject}.>"])
        for i in range(20):
            c.js_publish(f"{subject}.{'a' if i % 2 else 'b'}", {"i": i})
    return name, subject


def test_streams_and_history(nats: TestingShell, stream: tuple[str, str]) -> None:
    name, subject = stream
    frame = nats.run_cell("%nats_streams").result
    assert name in set(frame["name"])
    hist = nats.run_cell(f"%nats_stream {name} --subject {subject}.a -o h").result
    assert list(hist["i"]) == list(range(1, 20, 2))
    assert list(hist["seq"]) == list(range(2, 21, 2))
    assert nats.user_ns["h"] is hist
    last = nats.run_cell(f"%nats_stream {name} --last 3").result
    assert list(last["i"]) == [17, 18, 19]
    with pytest.raises(natsbook.errors.NotFoundError, match="did you mean"):
        nats.run_cell(f"%nats_stream {name}X")
    with pytest.raises(UsageError, match="takes no arguments"):
        nats.run_cell("%nats_streams foo")


def test_stream_time_bounds_take_epoch_seconds(nats: TestingShell, server: natsbook.LocalServer,
                                               stream: tuple[str, str]) -> None:
    """--since/--until: a bare number >= 1e9 is epoch seconds (with a fraction too), a
    duration needs a unit, a smaller bare number is refused with a hint."""
    name, subject = stream
    stored = nats.run_cell(f"%nats_stream {name}").result["time"].iloc[-1].timestamp()
    # a cut on a half second after the 20 stored messages, and 5 more stored after it
    cut = math.floor(stored) + (0.5 if stored % 1 < 0.5 else 1.5)
    while time.time() < cut + 0.05:
        time.sleep(0.02)
    with natsbook.connect(server.url) as c:
        for i in range(20, 25):
            c.js_publish(f"{subject}.a", {"i": i})
    after = nats.run_cell(f"%nats_stream {name} --since {cut:.1f}").result
    assert list(after["seq"]) == [21, 22, 23, 24, 25]
    before = nats.run_cell(f"%nats_stream {name} --until {cut:.1f}").result
    assert list(before["seq"]) == list(range(1, 21))
    iso = pd.Timestamp(cut, unit="s", tz="UTC").isoformat()
    assert len(nats.run_cell(f"%nats_stream {name} --since {iso}").result) == 5
    assert nats.run_cell(f"%nats_stream {name} --since {int(cut) + 3600}").result.empty
    assert len(nats.run_cell(f"%nats_stream {name} --until {int(cut) + 3600}").result) == 25
    assert len(nats.run_cell(f"%nats_stream {name} --since 10m").result) == 25
    for bad in ("30", "999999999.9", "nan", "inf", "soon"):
        with pytest.raises(UsageError, match=r"30s.*10m") as exc:
            nats.run_cell(f"%nats_stream {name} --since {bad}")
        assert "Traceback" not in str(exc.value)


def test_kv_magic(nats: TestingShell, server: natsbook.LocalServer) -> None:
    bucket = f"b{uuid.uuid4().hex[:8]}"
    with natsbook.connect(server.url) as c:
        kv = c.kv(bucket, create=True, history=5)
        kv.put("k1", b"v1")
        kv.put("k1", b"v2")
        kv.put("k2", b"x")
    frame = nats.run_cell(f"%nats_kv {bucket} -o kvdf").result
    assert sorted(frame["key"]) == ["k1", "k2"]
    assert frame.set_index("key").loc["k1", "value"] == "v2"
    hist = nats.run_cell(f"%nats_kv {bucket} k1").result
    assert list(hist["revision"]) == sorted(hist["revision"]) and len(hist) == 2
    with pytest.raises(natsbook.errors.NotFoundError, match="not found"):
        nats.run_cell("%nats_kv nosuchbucket")


def test_server_magic(nats: TestingShell, server: natsbook.LocalServer,
                      magics: NatsMagics) -> None:
    with pytest.raises(UsageError):
        nats.run_cell("%nats_server nonsense")
    magics.monitor_url = server.monitor_url
    varz = nats.run_cell("%nats_server varz").result
    assert isinstance(varz, pd.DataFrame) and len(varz) == 1
    assert varz["version"].iloc[0] == magics.conn.server_info["version"]
    assert varz["port"].iloc[0] == server.port
    connz = nats.run_cell("%nats_server connz -o cz").result
    assert nats.user_ns["cz"] is connz
    # The magic's own connection is in the list, by its client id.
    assert magics.conn.server_info["client_id"] in set(connz["cid"])
    health = nats.run_cell("%nats_server healthz").result
    assert health["status"] == "ok"
    magics.monitor_url = ""
    with pytest.raises(natsbook.errors.MonitorError, match="cannot reach"):
        nats.run_cell("%nats_server varz --url http://127.0.0.1:1")


def test_panel_magic(nats: TestingShell) -> None:
    panel = nats.run_cell("%nats_panel").result
    try:
        assert panel.__class__.__name__ == "Dashboard"
    finally:
        panel.close()


def test_data_magics_need_a_connection(ip: TestingShell) -> None:
    for cell in ("%nats_streams", "%nats_stream S", "%nats_kv b", "%nats_panel"):
        with pytest.raises(UsageError, match="not connected"):
            ip.run_cell(cell)
