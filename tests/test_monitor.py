"""Monitoring endpoints parsed against real nats-servers."""

from __future__ import annotations

import socket
import time

import pandas as pd
import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.errors import BadInputError, MonitorError
from natsbook.ops import Monitor, monitor
from natsbook.ops._monitor import parse_duration
from tests.faults.helpers import route_port
from tests.support.waiting import wait_for


@pytest.fixture
def mon(server) -> Monitor:
    return monitor(server)


@pytest.mark.parametrize(("text", "expected"), [
    ("881µs", pd.Timedelta(881, "us")), ("1h2m3.5s", pd.Timedelta("1h2m3.5s")),
    ("2d3h", pd.Timedelta(days=2, hours=3)), ("1.5ms", pd.Timedelta(1500, "us")),
    ("100ns", pd.Timedelta(100, "ns")), ("0s", pd.Timedelta(0)), ("1y", pd.Timedelta(days=365)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


def test_parse_duration_leaves_other_values_alone():
    assert parse_duration("soon") == "soon" and parse_duration(5) == 5


def test_varz_units(mon, server):
    v = mon.varz()
    assert len(v) == 1
    row = v.iloc[0]
    assert row["port"] == int(server.url.rsplit(":", 1)[1])
    assert row["host"] == "127.0.0.1" and row["max_payload"] == 1024 * 1024
    assert row["ping_interval"] == pd.Timedelta(minutes=2)  # sent as nanoseconds
    assert row["write_deadline"] == pd.Timedelta(seconds=10)
    assert isinstance(row["uptime"], pd.Timedelta)  # sent as "1m2s"
    assert str(v["start"].dtype) == "datetime64[ns, UTC]" and row["now"] >= row["start"]
    assert row["jetstream.config.max_memory"] > 0  # nested fields flattened, bytes as ints


def test_connz_open_and_closed_with_reason(mon, server, subject):
    with natsbook.connect(server.url, name=f"open-{subject}") as c:
        c.subscribe(f"{subject}.>")
        c.rtt()
        frame = mon.connz(subs=True)
        row = frame[frame["name"] == f"open-{subject}"].iloc[0]
        assert isinstance(row["rtt"], pd.Timedelta) and row["rtt"] > pd.Timedelta(0)
        assert row["subscriptions_list"] == [f"{subject}.>"]
        assert row["subscriptions"] == 1 and row["lang"] == "python-natsbook"
        assert str(frame["start"].dtype) == "datetime64[ns, UTC]"
    # The server records a closed connection once it has read the client's close, a moment
    # after close() returns here: wait for it (bounded), then check it exactly.
    def mine() -> pd.DataFrame:
        closed = mon.connz(state="closed")
        return closed[closed["name"] == f"open-{subject}"]

    assert wait_for(lambda: len(mine()) == 1, timeout=5.0)
    mine_now = mine()
    assert mine_now["reason"].tolist() == ["Client Closed"]
    assert mine_now["stop"].notna().all()


def test_slow_consumer_kick_shows_up_as_a_close_reason(subject):
    with natsbook.local_server(config=("max_payload: 16KB\nmax_pending: 64KB\n"
                                             "write_deadline: \"500ms\"\n")) as srv:
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            raw.recv(4096)  # INFO
            raw.sendall(b'CONNECT {"verbose":false,"name":"slowpoke"}\r\nSUB slow.> 1\r\n'
                        b"PING\r\n")
            buf = b""
            while b"PONG" not in buf:
                buf += raw.recv(4096)
            # From here on the raw client never reads again.
            mon = monitor(srv)
            with natsbook.connect(srv.url) as pub:
                chunk = b"x" * 8192
                deadline = time.monotonic() + 20
                while mon.slow_consumers().empty and time.monotonic() < deadline:
                    for _ in range(200):
                        pub.publish("slow.data", chunk)
                    pub.flush()
            slow = mon.slow_consumers()
        finally:
            raw.close()
    assert slow["name"].tolist() == ["slowpoke"]
    assert "Slow Consumer" in slow["reason"].iloc[0]


def test_subsz_test_subject(mon, conn, subject):
    conn.subscribe(f"{subject}.*.temp")
    frame = mon.subsz(test=f"{subject}.dev1.temp")
    assert frame["subject"].tolist() == [f"{subject}.*.temp"]
    assert frame.attrs["stats"]["num_subscriptions"] > 0
    stats = mon.subsz(subs=False)
    assert len(stats) == 1 and stats.iloc[0]["num_subscriptions"] > 0


def test_jsz(mon, conn, subject):
    js.add_stream(conn, subject, [f"{subject}.>"], storage="memory")
    try:
        conn.publish(f"{subject}.x", b"1")
        conn.flush()
        summary = mon.jsz()
        assert len(summary) == 1 and summary.iloc[0]["streams"] >= 1
        assert isinstance(summary.iloc[0]["config.sync_interval"], pd.Timedelta)
        wait_for(lambda: (lambda f: len(f[f["name"] == subject]) == 1
                          and f[f["name"] == subject].iloc[0]["state.messages"] == 1)(
            mon.jsz(streams=True)), what="stream in jsz")
        streams = mon.jsz(streams=True)
        assert str(streams["created"].dtype) == "datetime64[ns, UTC]"
    finally:
        js.delete_stream(conn, subject)


def test_healthz(mon):
    h = mon.healthz()
    assert h["status"] == "ok" and h["ok"] and h["http_status"] == 200


def test_routez_without_and_with_a_cluster(mon):
    empty = mon.routez()
    assert empty.empty and "remote_name" in empty.columns
    # Race-free: n0 picks its own route port (-1) and logs it; n1 routes to that.
    servers = []
    try:
        servers.append(natsbook.local_server(
            jetstream=False,
            config="server_name: n0\ncluster { name: c1\n listen: 127.0.0.1:-1 }\n"))
        seed = route_port(servers[0])
        servers.append(natsbook.local_server(
            jetstream=False,
            config=f"server_name: n1\ncluster {{ name: c1\n listen: 127.0.0.1:-1\n"
                   f" routes: [ nats-route://127.0.0.1:{seed} ] }}\n"))
        m0 = monitor(servers[0])
        wait_for(lambda: not m0.routez().empty, what="route to form")
        frame = m0.routez()
        assert set(frame["remote_name"]) == {"n1"}
        assert isinstance(frame.iloc[0]["rtt"], pd.Timedelta)
        assert frame.attrs["num_routes"] >= 1
    finally:
        for s in servers:
            s.close()


def test_errors(server):
    with natsbook.local_server(jetstream=False) as srv:
        with pytest.raises(MonitorError, match="JetStream is not enabled"):
            monitor(srv).jsz()
        url = srv.monitor_url
    with pytest.raises(MonitorError, match="cannot reach"):
        Monitor(url, timeout=2).varz()
    with pytest.raises(BadInputError):
        monitor("ftp://example")
    for creds in ("http://admin:pw-Mon-Secret@127.0.0.1:8222", "pw-Mon-Secret@127.0.0.1:8222"):
        with pytest.raises(BadInputError, match="cannot carry credentials") as exc:
            monitor(creds)
        assert "pw-Mon-Secret" not in str(exc.value)
    with pytest.raises(BadInputError):
        monitor(object())
    with pytest.raises(BadInputError):
        monitor(server).connz(state="sleeping")


def test_gatewayz_leafz_accountz_over_http(mon):
    assert len(mon.gatewayz()) == 0 and "direction" in mon.gatewayz().columns
    assert len(mon.leafz()) == 0 and "account" in mon.leafz().columns
    accounts = mon.accountz()
    assert list(accounts.columns) == ["account", "system"]
    assert "$G" in set(accounts["account"])
    detail = mon.accountz("$G")
    assert len(detail) == 1 and detail["account_name"].iloc[0] == "$G"


def test_expected_needs_a_system_connection(server):
    with pytest.raises(BadInputError, match="system-account"):
        monitor(server, expected=["n1"])
