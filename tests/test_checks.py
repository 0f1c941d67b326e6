"""conn.check(): pass / warn / fail rows against real servers - consumer thresholds on one
server, a server without JetStream, a three-node cluster losing a node (replicas and
server health fail), and the %nats_check magic."""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook import jetstream as js
from natsbook.errors import BadInputError
from tests.conftest import TestingShell
from tests.faults.helpers import wait_for
from tests.support.clusters import ACCOUNTS, sys_cluster


def test_consumer_thresholds_and_missing_streams(conn: natsbook.Connection,
                                                 subject: str) -> None:
    stream = f"K{uuid.uuid4().hex[:8]}".upper()
    js.add_stream(conn, stream, [f"{subject}.>"])
    conn.add_consumer(stream, "slow")
    conn.add_consumer(stream, "idle")
    for i in range(5):
        conn.js_publish(f"{subject}.x", {"i": i})
    frame = conn.check(streams=[stream, "NOPE"], consumer_pending=(3, 5),
                       consumer_ack_pending=(1, 2))
    rows = frame.set_index(["check", "target"])
    assert rows.loc[("connection rtt", conn.connected_url), "status"] == "pass"
    assert rows.loc[("jetstream storage", "account"), "status"] == "pass"
    assert rows.loc[("stream", stream), "value"] == 5
    pending = rows.loc[("consumer pending", f"{stream}/slow")]
    assert (pending["status"], pending["value"], pending["warn"], pending["fail"]) == (
        "fail", 5, 3, 5)
    assert rows.loc[("consumer ack pending", f"{stream}/slow"), "status"] == "pass"
    assert rows.loc[("stream", "NOPE"), "status"] == "fail"
    assert frame.attrs["status"] == "fail"
    assert "server health" not in set(frame["check"])  # not a system-account user

    conn.pause_consumer(stream, "idle", 60)
    calm = conn.check(streams=stream, consumer_pending=(10, 20))
    assert set(calm["status"]) == {"pass", "warn"} and calm.attrs["status"] == "warn"
    assert calm.loc[calm["status"] == "warn", "check"].tolist() == ["consumer paused"]
    with pytest.raises(BadInputError, match="warn, fail"):
        conn.check(consumer_pending=5)
    with pytest.raises(BadInputError, match="warn <= fail"):
        conn.check(rtt=(2, 1))


def test_a_server_without_jetstream() -> None:
    with natsbook.local_server(jetstream=False) as srv, natsbook.connect(srv.url) as c:
        frame = c.check()
        assert frame["check"].tolist() == ["connection rtt", "jetstream"]
        assert frame["status"].tolist() == ["pass", "fail"]
        assert "JetStream" in frame["detail"].iloc[1]
        assert c.check(jetstream=False).attrs["status"] == "pass"


def test_garbled_jetstream_answers_are_failing_rows() -> None:
    """A hostile responder on ``$JS.API.>`` (a server without JetStream lets any client
    answer there): garbled stream / consumer infos and listings are failing rows saying so;
    a listing that repeats its page with a huge total used to loop forever, the others
    raised AttributeError / TypeError / ValueError out of check()."""
    info = {"memory": 0, "storage": 0, "streams": 1, "consumers": 0, "limits": {}}

    def stream(name: str, **kw: object) -> dict[str, object]:
        return {"config": {"name": name, "num_replicas": 1}, "state": {"messages": 1}, **kw}

    streams = [stream("A", cluster=[1]),
               stream("B", config={"name": "B", "num_replicas": "3"}),
               stream("C", cluster={"leader": "n1", "replicas": [7]}),
               stream("D", cluster={"leader": "n1", "replicas": [{"name": "n2", "lag": "x"}]}),
               stream("E")]

    def answer(msg: natsbook.Msg) -> object:
        if msg.subject == "$JS.API.INFO":
            return info
        if msg.subject == "$JS.API.STREAM.LIST":
            return {"streams": streams, "total": len(streams)}
        if msg.subject == "$JS.API.CONSUMER.LIST.E":
            return {"consumers": [{"name": "c", "num_pending": 1}], "total": 10**12}
        return {"consumers": [{"name": "c", "num_pending": 1, "paused": True,
                               "pause_until": []}], "total": "many"}

    with natsbook.local_server(jetstream=False) as srv, natsbook.connect(srv.url) as c:
        c.serve("$JS.API.>", answer)
        frame = c.check(jetstream=True, timeout=2)
    failing = frame[frame["status"] == "fail"].set_index(["check", "target"])["detail"]
    for name in "ABCD":
        assert "garbled stream info" in failing[("stream", name)]
        assert "garbled page" in failing[("consumers", name)]
    assert "sent already" in failing[("consumers", "E")]


def test_a_cluster_losing_a_node() -> None:
    with sys_cluster() as cluster:
        n1, _, n3 = cluster.nodes
        with natsbook.connect(n1.url, user="app", password="app") as app, \
                natsbook.connect(n1.url, user="sys", password="sys") as sysc:
            js.add_stream(app, "R3", ["r3.>"], num_replicas=3)
            app.js_publish("r3.x", b"1")
            healthy = app.check()
            rows = healthy.set_index("check")
            assert healthy.attrs["status"] == "pass"
            assert len(healthy[healthy["check"] == "stream replica"]) == 2
            assert len(healthy[healthy["check"] == "stream replica seen"]) == 2
            assert rows.loc["stream leader", "detail"] in {"n1", "n2", "n3"}
            ok = sysc.check(servers=["n1", "n2", "n3"])
            assert "jetstream" not in set(ok["check"])  # the system account has none
            assert ok.loc[ok["check"] == "server health", "target"].tolist() == [
                "n1", "n2", "n3"]
            assert ok.attrs["status"] == "pass"

            for _ in range(10):  # the worst case: the stream's leader goes away
                if app.stream_info("R3")["cluster"].get("leader") == "n3":
                    break
                app.request("$JS.API.STREAM.LEADER.STEPDOWN.R3",
                            {"placement": {"preferred": "n3"}}, timeout=5)
                time.sleep(0.5)
            assert app.stream_info("R3")["cluster"].get("leader") == "n3"
            n3.kill()

            def replica_down() -> list[pd.DataFrame]:
                frame = app.check(timeout=2)
                failed = frame[(frame["status"] == "fail") & frame["check"].isin(
                    ["stream replica", "stream replica seen", "stream leader"])]
                return [frame] if len(failed) else []
            (frame,) = wait_for(replica_down, timeout=40, interval=0.5)
            bad = frame[frame["status"] != "pass"].set_index(["check", "target"])
            # a new leader (n1 or n2) lists n3 as a replica it has never heard from
            assert bad.loc[("stream replica seen", "R3@n3"), "status"] == "fail"
            assert set(bad.index.get_level_values("check")) <= {
                "stream replica", "stream replica seen"}
            assert frame.set_index("check").loc["stream leader", "detail"] in {"n1", "n2"}
            down = sysc.check(servers=["n1", "n2", "n3"], timeout=2)
            health = down[down["check"] == "server health"].set_index("target")
            assert health.loc["n3", "status"] == "fail"
            assert health.loc["n3", "detail"] == "did not answer"
            assert health.loc["n1", "status"] == "pass"


def test_nats_check_magic(nats: TestingShell, server: natsbook.LocalServer, subject: str,
                          capsys: pytest.CaptureFixture[str]) -> None:
    stream = f"M{uuid.uuid4().hex[:8]}".upper()
    with natsbook.connect(server.url) as c:
        js.add_stream(c, stream, [f"{subject}.>"])
        c.add_consumer(stream, "w")
        c.js_publish(f"{subject}.x", b"1")
    capsys.readouterr()
    frame = nats.run_cell(f"%nats_check {stream} --pending 1,5 -o ch").result
    assert nats.user_ns["ch"] is frame
    rows = frame.set_index(["check", "target"])
    assert rows.loc[("consumer pending", f"{stream}/w"), "status"] == "warn"
    assert "overall: warn" in capsys.readouterr().out
    with pytest.raises(UsageError, match="WARN,FAIL"):
        nats.run_cell("%nats_check --pending 5")
    with pytest.raises(UsageError, match="WARN <= FAIL"):
        nats.run_cell("%nats_check --lag 9,1")


def test_one_expected_server_given_as_text() -> None:
    """``servers="solo"`` is one server: it used to expect servers 's', 'o' and 'l', and fail
    each of them as "did not answer"."""
    with natsbook.local_server(config=ACCOUNTS + "server_name: solo\n") as srv, \
            natsbook.connect(srv.url.replace("nats://", "nats://sys:sys@")) as c:
        frame = c.check(servers="solo")
        health = frame[frame["check"] == "server health"]
        assert health["target"].tolist() == ["solo"] and frame.attrs["status"] == "pass"
        missing = c.check(servers="gone")
        assert missing.set_index("target").loc["gone", "detail"] == "did not answer"
