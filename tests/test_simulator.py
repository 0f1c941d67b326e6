"""The simulator's output, checked by subscribing with natsbook: schema, injected fractions,
services, the worker pool, and its lifecycle."""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

import natsbook
from natsbook.errors import BadInputError, NoRespondersError, ServiceError
from natsbook.lab.simulator import STATUSES, Simulator


@pytest.fixture
def fconn(fresh_server: natsbook.LocalServer) -> Iterator[natsbook.Connection]:
    """A connection to a server of the test's own: svc.* and jobs.* are fixed names."""
    c = natsbook.connect(fresh_server.url)
    yield c
    c.close()


def _wait_for(sub: natsbook.Subscription, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while sub.received < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sub.received >= n, f"only {sub.received} of {n} messages within {timeout}s"


def test_readings_schema_and_injected_fractions(conn: natsbook.Connection,
                                                subject: str) -> None:
    sub = conn.subscribe(f"{subject}.>")
    sim = Simulator(conn, devices=4, rate=50, anomaly_rate=0.1, malformed_rate=0.1,
                    services=False, workers=0, job_rate=0, prefix=subject, seed=11)
    t0 = time.time()
    with sim:
        _wait_for(sub, 600)
    conn.flush()
    msgs = sub.messages(last=sub.received)
    assert len(msgs) == sim.stats["published"]
    kinds: Counter[str] = Counter()
    seqs: dict[str, list[int]] = defaultdict(list)
    for m in msgs:
        _, site, device = m.subject.split(".")
        kind = m.headers["Sim-Injected"] if m.headers else "normal"
        kinds[kind] += 1
        if kind == "malformed":
            with pytest.raises(ValueError):
                body = json.loads(m.data)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            continue
        body = json.loads(m.data)
        assert set(body) == {"device", "site", "seq", "ts", "temperature", "humidity",
                             "battery", "status"}
        assert (body["device"], body["site"]) == (device, site)
        assert isinstance(body["seq"], int)
        assert isinstance(body["ts"], float) and t0 - 1 <= body["ts"] <= time.time() + 1
        for field in ("temperature", "humidity", "battery"):
            assert isinstance(body[field], float), (field, body)
        assert 0.0 <= body["humidity"] <= 100.0 and 0.0 < body["battery"] <= 100.0
        assert body["status"] in STATUSES
        if kind == "normal":
            assert -10.0 < body["temperature"] < 45.0 and body["status"] != "error"
        seqs[device].append(body["seq"])
    n = len(msgs)
    assert set(kinds) == {"normal", "anomaly", "malformed"}
    assert 0.04 * n < kinds["malformed"] < 0.2 * n
    assert 0.04 * n < kinds["anomaly"] < 0.2 * n
    assert kinds["malformed"] == sim.stats["malformed"]
    assert kinds["anomaly"] == sim.stats["anomalies"]
    assert set(seqs) == {"th-001", "th-002", "th-003", "th-004"}
    for values in seqs.values():
        assert values == sorted(values) and len(set(values)) == len(values)
    # The capture frame flags exactly the malformed payloads.
    frame = sub.to_pandas()
    assert int(frame["json_error"].sum()) == kinds["malformed"]


def _expected_delays(seed: int, latency: float, calls: list[tuple[float, float, float]]
                     ) -> list[float]:
    """The simulator's service delays in seconds, drawn from a copy of its seeded RNG:
    (median_ms, slow_p, slow_ms) per request, in the order the requests are made."""
    rng = random.Random(seed + 1)
    out = []
    for median_ms, slow_p, slow_ms in calls:
        ms = rng.lognormvariate(math.log(median_ms), 0.5)
        if slow_p and rng.random() < slow_p:
            ms += rng.uniform(0.5, 1.5) * slow_ms
        out.append(ms * latency / 1000.0)
    return out


def test_services_answer_with_variable_latency(fconn: natsbook.Connection) -> None:
    latency = 3.0
    with Simulator(fconn, devices=3, rate=1, workers=0, job_rate=0, seed=2,
                   latency=latency) as sim:
        now = fconn.request("svc.time", timeout=5).json()
        assert set(now) == {"epoch", "iso"} and abs(now["epoch"] - time.time()) < 60
        echo = fconn.request("svc.echo", b"\x00bytes", headers={"K": "v"}, timeout=5)
        assert echo.data == b"\x00bytes" and echo.headers is not None
        assert echo.headers["K"] == "v"
        dev = fconn.request("svc.lookup", "th-002", timeout=5).json()
        assert dev["device"] == "th-002" and dev["subject"].startswith("telemetry.")
        with pytest.raises(ServiceError) as exc:
            fconn.request("svc.lookup", "th-404", timeout=5)
        assert exc.value.code == 404 and "th-404" in str(exc.value)
        took = []
        for _ in range(20):
            t = time.perf_counter()
            fconn.request("svc.lookup", "th-001", timeout=5)
            took.append(time.perf_counter() - t)
        stats = fconn.request("svc.stats", timeout=5).json()
        assert stats["requests"]["lookup"] == 22 and stats["devices"] == 3
        assert sim.stats["requests"] == {**stats["requests"], "stats": 1}
    # Each request waited at least the delay the seeded RNG drew for it (scheduling jitter
    # only ever adds time), and those delays vary: a constant or missing delay fails here.
    lookup = (4.0, 0.05, 60.0)
    want = _expected_delays(2, latency, [(1.0, 0, 0), (0.5, 0, 0), lookup, lookup]
                            + [lookup] * 20)[4:]
    assert max(want) > 2 * min(want)
    pairs = list(zip(took, want, strict=True))
    assert all(t >= w * 0.98 for t, w in pairs), pairs


def test_jobs_are_spread_over_the_worker_pool(fconn: natsbook.Connection) -> None:
    results = fconn.subscribe("results.>")
    with Simulator(fconn, devices=0, workers=3, job_rate=0, latency=0.1, seed=3) as sim:
        replies = [fconn.request("jobs.resize", {"n": i}, timeout=5).json()
                   for i in range(60)]
        _wait_for(results, 60)
        stats = sim.stats
    per_worker = Counter(r["worker"] for r in replies)
    assert set(per_worker) == {"worker-1", "worker-2", "worker-3"}
    assert sum(per_worker.values()) == 60
    assert stats["jobs_done"] == dict(per_worker)
    assert [r["job"]["n"] for r in replies] == list(range(60))
    assert set(results.to_pandas()["subject"]) == {"results.resize"}


def test_published_jobs_reach_one_worker_each(fconn: natsbook.Connection) -> None:
    results = fconn.subscribe("results.>")
    with Simulator(fconn, devices=0, workers=2, job_rate=20, latency=0, seed=4) as sim:
        _wait_for(results, 10)
    fconn.flush()
    ids = [m.json()["job"]["id"] for m in results.messages(last=results.received)]
    assert len(ids) == len(set(ids))  # each job handled once across the pool
    assert sum(sim.stats["jobs_done"].values()) == len(ids) <= sim.stats["jobs_published"]


def test_stop_unsubscribes_and_keeps_a_borrowed_connection(fconn: natsbook.Connection,
                                                           subject: str) -> None:
    sim = Simulator(fconn, devices=2, rate=20, prefix=subject).start()
    assert sim.running
    assert {s.subject for s in fconn.subscriptions} >= {"svc.time", "jobs.>"}
    sim.stop()
    assert not sim.running and fconn.is_connected
    assert fconn.subscriptions == []
    with pytest.raises(NoRespondersError):
        fconn.request("svc.time", timeout=2)
    count = sim.stats["published"]
    time.sleep(0.3)
    assert sim.stats["published"] == count


def test_owned_connection_from_a_url_is_closed(fresh_server: natsbook.LocalServer) -> None:
    sim = Simulator(fresh_server.url, devices=1, rate=5).start()
    conn = sim.conn
    assert conn is not None and conn.is_connected
    sim.stop()
    assert conn.is_closed and sim.conn is None


def test_readings_are_reproducible_with_a_seed() -> None:
    a = Simulator(devices=3, seed=42)
    b = Simulator(devices=3, seed=42)
    for _ in range(50):
        for da, db in zip(a.devices, b.devices, strict=True):
            assert a.reading(da, now=1.0) == b.reading(db, now=1.0)


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"devices": -1}, {"anomaly_rate": 1.5},
                                    {"anomaly_rate": 0.6, "malformed_rate": 0.6},
                                    {"workers": -1}, {"sites": ()}])
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(BadInputError):
        Simulator(**kwargs)  # type: ignore[arg-type]


def test_services_are_nats_micro_services(fconn: natsbook.Connection) -> None:
    """svc.* belong to the micro service "svc": each of the `responders` instances answers
    the service API with its endpoints and counters, and every instance answers svc.ping."""
    with Simulator(fconn, devices=2, rate=1, workers=0, job_rate=0, seed=5, latency=0.1,
                   responders=3):
        fconn.request("svc.time", timeout=5)
        for _ in range(4):
            fconn.request("svc.lookup", "th-001", timeout=5)
        with pytest.raises(ServiceError):
            fconn.request("svc.lookup", "th-404", timeout=5)
        pings = fconn.request_many("svc.ping", max_wait=2)
        frame = fconn.services("svc", timeout=2)
    assert frame["id"].nunique() == 3 and set(frame["name"]) == {"svc"}
    assert frame.groupby("id")["endpoint"].apply(sorted).map(tuple).unique().tolist() == [
        ("echo", "lookup", "ping", "stats", "time")]
    by_ep = frame.groupby("endpoint")
    assert set(frame.loc[frame["endpoint"] != "ping", "queue_group"]) == {"svc"}
    assert set(frame.loc[frame["endpoint"] == "ping", "queue_group"]) == {""}
    assert (set(frame["subject"])
            == {"svc.time", "svc.echo", "svc.lookup", "svc.stats", "svc.ping"})
    assert by_ep["requests"].sum().to_dict() == {"echo": 0, "lookup": 5, "ping": 3,
                                                 "stats": 0, "time": 1}
    assert by_ep["errors"].sum()["lookup"] == 1
    lookup = frame[frame["endpoint"] == "lookup"]
    assert lookup["last_error"].str.contains("404:unknown device 'th-404'").sum() == 1
    # svc.ping: one answer per instance, each naming its instance
    assert len(pings) == 3
    assert sorted(pings["instance"]) == [1, 2, 3] and set(pings["service"]) == {"svc"}
    assert set(pings["id"]) == set(frame["id"])
    assert fconn.subscriptions == []  # stop() stopped every instance


def test_the_dashboard_services_tab_shows_the_simulator(fconn: natsbook.Connection) -> None:
    from natsbook.notebook.widgets import ServicesPanel
    from tests.support.waiting import wait_for

    with Simulator(fconn, devices=1, rate=1, workers=0, job_rate=0, latency=0, responders=2):
        panel = ServicesPanel(fconn, timeout=1.0)
        try:
            assert panel.refresh()
            wait_for(lambda: "svc.lookup" in panel.table.value, what="the simulator's service")
            assert panel.frame is not None and panel.frame["id"].nunique() == 2
            subjects = {v for _label, v in panel.endpoint.options}
            assert subjects == {"svc.time", "svc.echo", "svc.lookup", "svc.stats", "svc.ping"}
            panel.endpoint.value = "svc.lookup"
            panel.payload.value = "th-001"
            panel.send.click()
            wait_for(lambda: "TH-" in panel.reply.value or "ENV-" in panel.reply.value,
                     what="the lookup reply")
            assert panel.wait_idle()
        finally:
            panel.close()
