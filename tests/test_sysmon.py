"""Whole-cluster monitoring through the system account, on a real three-node cluster with a
system account (started race-free like tests/faults' cluster): every server answers once, in
the same units as the HTTP path; a killed server is reported missing, not silently absent."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

import natsbook
from natsbook.errors import MonitorError
from natsbook.ops import MissingServersWarning, SystemMonitor, monitor
from tests.faults.helpers import wait_for
from tests.support.clusters import NAMES, SysCluster, sys_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[SysCluster]:
    with sys_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def sysconn(cluster: SysCluster) -> Iterator[natsbook.Connection]:
    conn = natsbook.connect(cluster.nodes[0].url, user="sys", password="sys")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def mon(sysconn: natsbook.Connection) -> SystemMonitor:
    m = monitor(sysconn)
    assert isinstance(m, SystemMonitor)
    return m


def _once(frame: pd.DataFrame) -> None:
    assert frame.columns[0] == "server_name"
    assert sorted(frame["server_name"]) == NAMES, "every server answers exactly once"
    assert frame.attrs["missing"] == [] and frame.attrs["servers"] == NAMES


def test_discovery_knows_the_cluster(mon):
    assert mon.known == set(NAMES)


def test_per_server_endpoints_answer_once_each(mon):
    varz = mon.varz()
    _once(varz)
    assert isinstance(varz["uptime"].iloc[0], pd.Timedelta)  # "1m2s" converted
    assert varz["ping_interval"].iloc[0] == pd.Timedelta(minutes=2)  # nanoseconds converted
    assert str(varz["start"].dtype) == "datetime64[ns, UTC]"
    health = mon.healthz()
    _once(health)
    assert health["ok"].all()
    _once(mon.subsz(subs=False))
    _once(mon.jsz())
    accounts = mon.accountz()
    assert set(accounts["server_name"]) == set(NAMES)
    assert set(accounts[accounts["system"]]["account"]) == {"SYS"}
    assert set(accounts["account"]) >= {"SYS", "APP"}
    app = mon.accountz("APP")
    _once(app)
    assert set(app["account_name"]) == {"APP"}


def test_units_match_the_http_path(cluster, mon):
    sysrow = mon.varz().set_index("server_name").loc["n2"]
    http = monitor(cluster.nodes[1]).varz().iloc[0]
    assert sysrow["server_id"] == http["server_id"] and sysrow["port"] == http["port"]
    for col in ("start", "uptime", "ping_interval", "write_deadline", "auth_timeout"):
        assert type(sysrow[col]) is type(http[col]), col


def test_routes_leafs_gateways_and_connections(cluster, mon, subject):
    routez = mon.routez()
    for name in NAMES:
        peers = set(routez[routez["server_name"] == name]["remote_name"])
        assert peers == set(NAMES) - {name}
    assert isinstance(routez["rtt"].iloc[0], pd.Timedelta)
    assert len(mon.leafz()) == 0 and len(mon.gatewayz()) == 0
    with natsbook.connect(cluster.nodes[2].url, user="app", password="app",
                          name=f"app-{subject}") as app:
        app.subscribe(f"{subject}.>")
        app.flush()
        connz = mon.connz(subs=True)
        mine = connz[connz["name"] == f"app-{subject}"]
        assert mine["server_name"].tolist() == ["n3"]
        assert f"{subject}.>" in mine["subscriptions_list"].iloc[0]
        assert str(connz["start"].dtype) == "datetime64[ns, UTC]"
    closed = mon.connz(state="closed")
    assert closed[closed["name"] == f"app-{subject}"]["reason"].tolist() == ["Client Closed"]
    subsz = mon.subsz(test=f"{subject}.x")
    assert set(subsz["server_name"]) <= set(NAMES)


def test_jetstream_streams_per_replica(cluster, mon, subject):
    with natsbook.connect(cluster.nodes[0].url, user="app", password="app") as app:
        natsbook.jetstream.add_stream(app, subject, [f"{subject}.>"], num_replicas=3)
        try:
            app.js_publish(f"{subject}.a", b"x")
            app.request(f"$JS.API.CONSUMER.DURABLE.CREATE.{subject}.d1",
                        {"stream_name": subject,
                         "config": {"durable_name": "d1", "ack_policy": "explicit"}})
            frame = mon.jsz(streams=True, consumers=True)
            mine = frame[frame["name"] == subject]
            assert sorted(mine["server_name"]) == NAMES, "one row per replica"
            assert all(d[0]["name"] == "d1" for d in mine["consumer_detail"])
        finally:
            natsbook.jetstream.delete_stream(app, subject)


def test_leaf_node_shows_on_its_hub(cluster, mon):
    port = mon.varz().set_index("server_name").loc["n2", "leaf.port"]
    leaf = natsbook.LocalServer(jetstream=False, config=(
        "server_name: leaf1\nleafnodes { remotes = [ "
        f'{{ url: "nats-leaf://app:app@127.0.0.1:{port}" }} ] }}\n'))
    leaf.start()
    try:
        wait_for(lambda: len(mon.leafz()) > 0, timeout=10)
        frame = mon.leafz()
        assert frame[["server_name", "name", "account"]].values.tolist() == [
            ["n2", "leaf1", "APP"]]
        assert isinstance(frame["rtt"].iloc[0], pd.Timedelta)
        http = monitor(cluster.nodes[1]).leafz()
        assert http["name"].tolist() == ["leaf1"]
    finally:
        leaf.kill()
        leaf.close()


def test_expected_server_that_never_answers(sysconn):
    m = monitor(sysconn, expected=[*NAMES, "n9"], stall=0.3)
    with pytest.warns(MissingServersWarning, match="n9"):
        frame = m.varz()
    assert frame.attrs["missing"] == ["n9"]
    assert sorted(frame["server_name"]) == NAMES


def test_not_a_system_user(cluster):
    with (natsbook.connect(cluster.nodes[0].url, user="app", password="app") as app,
          pytest.raises(MonitorError, match="system-account")):
        monitor(app, timeout=0.5)


def test_nats_server_magic_uses_the_system_connection(ip, cluster):
    ip.run_cell(f"%nats_connect {cluster.nodes[0].url} --user sys --password sys")
    varz = ip.run_cell("%nats_server varz -o v").result
    assert sorted(varz["server_name"]) == NAMES and ip.user_ns["v"] is varz
    assert sorted(ip.run_cell("%nats_server healthz").result["server_name"]) == NAMES
    assert set(ip.run_cell("%nats_server accountz").result["server_name"]) == set(NAMES)
    # --url still asks one server over HTTP
    one = ip.run_cell(f"%nats_server varz --url {cluster.nodes[1].monitor_url}").result
    assert len(one) == 1 and one["server_name"].iloc[0] == "n2"


@pytest.mark.slow
def test_killed_server_shows_as_missing(mon, cluster):
    # Last in the module: the cluster stays down one node afterwards.
    _once(mon.varz())
    cluster.nodes[2].kill()
    with pytest.warns(MissingServersWarning, match="n3"):
        frame = mon.varz()
    assert frame.attrs["missing"] == ["n3"]
    assert sorted(frame["server_name"]) == ["n1", "n2"]
    with pytest.warns(MissingServersWarning):
        assert mon.healthz().attrs["missing"] == ["n3"]
