"""JetStream advisories and system events against real nats-servers: typed columns, the
join of max-deliveries / terminated advisories to stream_history, hostile payloads (flagged
rows), a system account's connect/disconnect events on a cluster, and nats.js's
``jsm.advisories()`` as the peer that decodes the same advisories."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.errors import BadInputError
from natsbook.ops import Advisories
from tests.faults.helpers import wait_for
from tests.support.clusters import SysCluster, sys_cluster

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")


def _stream() -> str:
    return f"A{uuid.uuid4().hex[:8]}".upper()


def _failing_messages(conn: natsbook.Connection, adv: Advisories, stream: str, subject: str,
                      ) -> None:
    """Four messages; a consumer (max_deliver=2, ack_wait 1s) acks #1, terminates #2 and
    leaves #3 and #4 unacknowledged until the server gives up on them."""
    for i in range(4):
        conn.js_publish(f"{subject}.work", {"i": i})
    conn.add_consumer(stream, "worker", max_deliver=2, ack_wait=1_000_000_000)
    inbox = conn.new_inbox()

    def work(msg: natsbook.Msg) -> None:  # at once, well within the ack wait
        if msg.reply is None:
            return  # the end of a pull request (a 408 status)
        seq = (msg.reply or "").split(".")[-4]  # $JS.ACK.<stream>.<consumer>.<n>.<sseq>...
        if seq in ("1", "2"):
            conn.publish(msg.reply, b"+ACK" if seq == "1" else b"+TERM")

    got = conn.subscribe(inbox, callback=work, capture=False)

    def pull_and_check() -> bool:
        conn.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.worker",
                     b'{"batch": 10, "expires": 300000000}', reply=inbox)
        frame = adv.to_pandas()
        return (frame["kind"] == "max_deliver").sum() >= 2 and (
            frame["kind"] == "terminated").any()

    wait_for(pull_and_check, timeout=15, interval=0.4)
    got.unsubscribe()


def test_failing_messages_join_stream_history(conn: natsbook.Connection, subject: str) -> None:
    stream = _stream()
    js.add_stream(conn, stream, [f"{subject}.>"])
    adv = conn.advisories(["max_deliver", "terminated"])
    assert adv.system is False and adv.subjects == ["$JS.EVENT.ADVISORY.>"]
    _failing_messages(conn, adv, stream, subject)
    frame = adv.to_pandas()
    adv.stop()
    assert set(frame["kind"]) == {"max_deliver", "terminated"}
    assert frame["type"].str.startswith("io.nats.jetstream.advisory.v1.").all()
    assert str(frame["stream_seq"].dtype) == "Int64" and str(frame["deliveries"].dtype) == "Int64"
    assert not frame["malformed"].any()
    assert set(frame["stream"]) == {stream} and set(frame["consumer"]) == {"worker"}

    history = conn.stream_history(stream)
    failing = history.merge(frame[["stream_seq", "kind", "deliveries", "consumer"]],
                            left_on="seq", right_on="stream_seq")
    by_seq = dict(zip(failing["seq"], failing["kind"], strict=True))
    assert by_seq == {2: "terminated", 3: "max_deliver", 4: "max_deliver"}
    assert failing.loc[failing["kind"] == "max_deliver", "deliveries"].tolist() == [2, 2]
    assert failing.sort_values("seq")["i"].tolist() == [1, 2, 3]


def test_stream_consumer_and_api_advisories(conn: natsbook.Connection, subject: str) -> None:
    adv = conn.advisories()
    stream = _stream()
    js.add_stream(conn, stream, [f"{subject}.>"])
    conn.add_consumer(stream, "c1")
    conn.delete_consumer(stream, "c1")
    wait_for(lambda: (adv.to_pandas()["kind"] == "consumer_action").sum() >= 2, timeout=5)
    frame = adv.to_pandas()
    adv.stop()
    mine = frame[frame["stream"] == stream]
    assert mine[["kind", "action", "consumer"]].fillna("").values.tolist() == [
        ["stream_action", "create", ""], ["consumer_action", "create", "c1"],
        ["consumer_action", "delete", "c1"]]
    audit = frame[frame["kind"] == "api_audit"]
    assert len(audit) >= 3 and set(audit["account"]) == {"$G"}
    assert audit["server"].notna().all() and (audit["action"] == "api_audit").all()
    assert frame["event_time"].notna().all() and not frame["malformed"].any()
    assert "client.name" in frame.columns  # the rest of each payload, flattened


def test_hostile_advisories_are_flagged_rows(conn: natsbook.Connection) -> None:
    adv = conn.advisories(["max_deliver"])
    base = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.X.y"
    conn.publish(base, b"not json")
    conn.publish(base, orjson.dumps({"type": "io.nats.jetstream.advisory.v1.max_deliver",
                                     "stream": ["x"], "stream_seq": "seven",
                                     "deliveries": -2}))
    conn.publish(base, orjson.dumps({"type": "something else", "stream_seq": 1.5}))
    conn.publish(base, orjson.dumps([1, 2, 3]))
    conn.publish(base, orjson.dumps({"type": "io.nats.jetstream.advisory.v1.max_deliver",
                                     "stream": "X", "consumer": "y", "stream_seq": 9,
                                     "deliveries": 3}))
    wait_for(lambda: len(adv.to_pandas()) == 5, timeout=5)
    frame = adv.to_pandas()
    adv.stop()
    assert frame["malformed"].tolist() == [True, True, True, True, False]
    wrong = frame.iloc[1]
    assert wrong["stream"] is pd.NA and wrong["stream_seq"] is pd.NA
    assert wrong["deliveries"] is pd.NA and wrong["kind"] == "max_deliver"
    good = frame.iloc[4]
    assert (good["stream"], good["stream_seq"], good["deliveries"]) == ("X", 9, 3)
    with pytest.raises(BadInputError, match="unknown advisory kind"):
        conn.advisories(["max_delivers"])


def test_advisory_numbers_past_int64_are_flagged_not_wrapped(conn: natsbook.Connection
                                                            ) -> None:
    """A sequence no int64 holds used to come out as -9223372036854775808, unflagged (and
    joined stream_history on a sequence that does not exist)."""
    adv = conn.advisories(["max_deliver"])
    base = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.X.y"
    for seq in (b"18446744073709551615", b"9223372036854775808", b"1e300", b"4"):
        conn.publish(base, b'{"type": "io.nats.jetstream.advisory.v1.max_deliver", '
                           b'"stream": "X", "stream_seq": ' + seq + b', "deliveries": 2}')
    wait_for(lambda: len(adv.to_pandas()) == 4, timeout=5)
    frame = adv.to_pandas()
    adv.stop()
    assert frame["malformed"].tolist() == [True, True, True, False]
    assert frame["stream_seq"].tolist() == [pd.NA, pd.NA, pd.NA, 4]


def test_an_advisory_with_a_number_for_its_timestamp(conn: natsbook.Connection) -> None:
    """A numeric ``timestamp`` is no time (NaT); it used to raise pandas' deprecation warning
    out of to_pandas() (an error under -W error, a changed meaning in pandas 4)."""
    adv = conn.advisories(["nak"])
    conn.publish("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.X.y",
                 b'{"type": "io.nats.jetstream.advisory.v1.nak", "timestamp": 1767225600, '
                 b'"stream": "X", "stream_seq": 1}')
    conn.publish("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.X.y",
                 b'{"type": "io.nats.jetstream.advisory.v1.nak", '
                 b'"timestamp": "2026-01-01T00:00:00Z", "stream": "X", "stream_seq": 2}')
    wait_for(lambda: len(adv.to_pandas()) == 2, timeout=5)
    frame = adv.to_pandas()
    adv.stop()
    assert frame["event_time"].isna().tolist() == [True, False]
    assert frame["stream_seq"].tolist() == [1, 2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[SysCluster]:
    with sys_cluster() as c:
        yield c


def test_system_events_on_a_cluster(cluster: SysCluster) -> None:
    with natsbook.connect(cluster.nodes[0].url, user="sys", password="sys") as sysconn:
        adv = sysconn.advisories(["client_connect", "client_disconnect"])
        assert adv.system and "$SYS.ACCOUNT.>" in adv.subjects
        with natsbook.connect(cluster.nodes[1].url, user="app", password="app", name="visitor"):
            pass
        wait_for(lambda: set(adv.to_pandas()["kind"]) >= {"client_connect",
                                                          "client_disconnect"}, timeout=10)
        frame = adv.to_pandas()
        adv.stop()
    visits = frame[frame["client.name"] == "visitor"]
    assert visits["kind"].tolist() == ["client_connect", "client_disconnect"]
    assert set(visits["account"]) == {"APP"} and set(visits["server"]) == {"n2"}
    assert visits["type"].str.startswith("io.nats.server.advisory.v1.").all()
    assert visits["reason"].iloc[1] and not visits["malformed"].any()


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.skipif(not (JS / "node_modules" / "@nats-io" / "jetstream").is_dir(),
                    reason="nats.js is not installed: npm install --prefix tests/js")
def test_nats_js_decodes_the_same_advisories(conn: natsbook.Connection,
                                             server: natsbook.LocalServer,
                                             subject: str) -> None:
    stream = _stream()
    js.add_stream(conn, stream, [f"{subject}.>"])
    proc = subprocess.Popen([str(NODE), str(JS / "advisories.js"), server.url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready = proc.stdout.readline()
        assert ready == "ready\n", proc.stderr.read() if proc.stderr else ready
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        every = conn.advisories()
        adv = conn.advisories(["max_deliver", "terminated"])
        conn.add_consumer(stream, "other")
        _failing_messages(conn, adv, stream, subject)
        ours = adv.to_pandas()
        adv.stop()

        def peer_has_them() -> bool:
            kinds = [json.loads(x)["kind"] for x in list(lines)]
            return kinds.count("max_deliver") >= 2 and "terminated" in kinds
        wait_for(peer_has_them, timeout=10)
        all_ours = every.to_pandas()
        every.stop()
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
    theirs = [json.loads(x) for x in lines]
    peer = sorted((a["kind"], a["data"]["stream"], a["data"]["consumer"],
                   a["data"]["stream_seq"], a["data"]["deliveries"])
                  for a in theirs if a["kind"] in ("max_deliver", "terminated")
                  and a["data"]["stream"] == stream)
    mine = sorted(zip(ours["kind"], ours["stream"], ours["consumer"],
                      ours["stream_seq"].astype(int), ours["deliveries"].astype(int),
                      strict=True))
    assert mine == peer and len(mine) == 3
    # every advisory both saw (by its id) has the same kind on both sides
    kind_by_id = dict(zip(all_ours["id"], all_ours["kind"], strict=True))
    shared = [(a["kind"], kind_by_id[a["data"]["id"]]) for a in theirs
              if a["data"]["id"] in kind_by_id]
    assert len(shared) >= 5 and all(k1 == k2 for k1, k2 in shared)
    assert {k for k, _ in shared} >= {"consumer_action", "api_audit", "max_deliver",
                                      "terminated"}
