"""JetStream consumers as DataFrames against a real server: the counters follow what was
delivered and acknowledged, info and not-found errors, and the backlog sampled over time."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats
import pandas as pd
import pytest

from natsbook import Connection, LocalServer
from natsbook import jetstream as js
from natsbook.errors import BadInputError, NotFoundError
from tests.support.waiting import wait_for


@pytest.fixture
def stream(conn: Connection, subject: str) -> str:
    name = f"C{uuid.uuid4().hex[:8]}".upper()
    js.add_stream(conn, name, [f"{subject}.>"])
    for i in range(10):
        conn.js_publish(f"{subject}.{'a' if i < 6 else 'b'}", {"i": i})
    yield name
    js.delete_stream(conn, name)


def _pull(conn: Connection, stream: str, consumer: str, n: int) -> list:
    """n messages through one pull request (they arrive on the inbox with their own subjects,
    so a plain subscription collects them, not request())."""
    inbox = conn.new_inbox()
    sub = conn.subscribe(inbox, max_msgs=n)
    conn.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                 {"batch": n, "expires": 2_000_000_000}, reply=inbox)
    wait_for(lambda: len(sub) == n, what=f"{n} pulled messages")
    return sub.messages(n)


def test_counters_follow_deliveries_and_acks(conn: Connection, stream: str,
                                             subject: str) -> None:
    info = conn.add_consumer(stream, "worker", filter_subject=f"{subject}.a")
    assert info["name"] == "worker" and info["num_pending"] == 6
    conn.add_consumer(stream, "both", filter_subject=[f"{subject}.a", f"{subject}.b"],
                      ack_policy="none", deliver_policy="new")
    t0 = pd.Timestamp.now(tz="UTC")
    msgs = _pull(conn, stream, "worker", 4)
    assert [m.json()["i"] for m in msgs] == [0, 1, 2, 3]
    for m in msgs[:2]:
        conn.publish(m.reply, b"+ACK")
    conn.publish(msgs[3].reply, b"-NAK")  # redelivered at once
    conn.flush()
    wait_for(lambda: conn.consumer_info(stream, "worker")["ack_floor"]["stream_seq"] == 2,
             what="the acks")
    frame = conn.consumers(stream)
    assert list(frame["name"]) == ["both", "worker"]
    w = frame.set_index("name").loc["worker"]
    assert w["durable"] and not w["paused"] and not w["push"]
    assert w["filter_subjects"] == [f"{subject}.a"]
    assert (w["deliver_policy"], w["ack_policy"]) == ("all", "explicit")
    assert w["pending"] == 2 and w["ack_pending"] == 2
    assert w["delivered_stream_seq"] == 4 and w["ack_floor_stream_seq"] == 2
    assert w["waiting"] == 0
    assert t0 - pd.Timedelta(seconds=1) <= w["last_active"] <= pd.Timestamp.now(tz="UTC")
    # the NAK'd message comes back and counts as redelivered
    again = _pull(conn, stream, "worker", 1)[0]
    assert again.json()["i"] == 3
    assert conn.consumers(stream).set_index("name").loc["worker", "redelivered"] == 1
    b = frame.set_index("name").loc["both"]
    assert b["filter_subjects"] == [f"{subject}.a", f"{subject}.b"]
    assert (b["deliver_policy"], b["ack_policy"], b["pending"]) == ("new", "none", 0)
    assert pd.isna(b["last_active"])
    assert str(frame["last_active"].dtype) == "datetime64[ns, UTC]"


def test_waiting_pulls_and_paused(conn: Connection, stream: str, subject: str) -> None:
    conn.add_consumer(stream, "idle", filter_subject=f"{subject}.nothing")
    inbox = conn.new_inbox()
    sub = conn.subscribe(inbox, capture=False)
    conn.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.idle",
                 {"batch": 1, "expires": 5_000_000_000}, reply=inbox)
    wait_for(lambda: conn.consumers(stream)["waiting"].iloc[0] == 1, what="the waiting pull")
    until = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)).isoformat()
    js.api_request(conn, f"CONSUMER.PAUSE.{stream}.idle", {"pause_until": until})
    assert bool(conn.consumers(stream)["paused"].iloc[0])
    conn.unsubscribe(sub)


def test_consumer_info_and_not_found(conn: Connection, stream: str) -> None:
    conn.add_consumer(stream, "reader", ack_policy="explicit", max_ack_pending=7)
    info = conn.consumer_info(stream, "reader")
    assert info["stream_name"] == stream and info["config"]["max_ack_pending"] == 7
    assert info["num_pending"] == 10
    with pytest.raises(NotFoundError, match="did you mean 'reader'"):
        conn.consumer_info(stream, "raeder")
    with pytest.raises(NotFoundError, match="stream"):
        conn.consumer_info(stream + "X", "reader")
    with pytest.raises(NotFoundError):
        conn.consumers(stream + "X")
    with pytest.raises(BadInputError):
        conn.consumer_info(stream, "a.b")
    conn.delete_consumer(stream, "reader")
    assert conn.consumers(stream).empty
    assert list(conn.consumers(stream).columns)[:3] == ["name", "durable", "filter_subjects"]


def test_consumer_lag_samples_the_backlog(conn: Connection, stream: str, subject: str) -> None:
    conn.add_consumer(stream, "slow")
    conn.add_consumer(stream, "fast")
    _pull(conn, stream, "fast", 10)
    t0 = time.monotonic()
    lag = conn.consumer_lag(stream, every=0.1, duration=0.3)
    assert time.monotonic() - t0 >= 0.3
    assert list(lag.columns) == ["time", "consumer", "pending", "ack_pending", "redelivered",
                                 "waiting", "delivered_stream_seq", "ack_floor_stream_seq"]
    assert len(lag) == 8  # 4 samples (0, 0.1, 0.2, 0.3 s) x 2 consumers
    wide = lag.pivot(index="time", columns="consumer", values="pending")
    assert (wide["slow"] == 10).all() and (wide["fast"] == 0).all()
    assert (lag[lag["consumer"] == "fast"]["ack_pending"] == 10).all()
    assert lag["time"].is_monotonic_increasing
    one = conn.consumer_lag(stream, "slow", every=0.05, duration=0)
    assert list(one["consumer"]) == ["slow"]
    with pytest.raises(BadInputError):
        conn.consumer_lag(stream, every=0)


def test_consumer_made_by_nats_py_is_listed(conn: Connection, server: LocalServer,
                                            stream: str, subject: str) -> None:
    """A consumer created and used by another client (nats-py's JetStream API)."""
    async def main() -> None:
        nc = await nats.connect(server.url)
        jsc = nc.jetstream()
        psub = await jsc.pull_subscribe(f"{subject}.b", durable="pyworker", stream=stream)
        for m in await psub.fetch(3, timeout=2):
            await m.ack()
        await nc.flush()
        await nc.close()

    asyncio.run(main())
    row = conn.consumers(stream).set_index("name").loc["pyworker"]
    assert row["filter_subjects"] == [f"{subject}.b"]
    assert (row["pending"], row["ack_pending"]) == (1, 0)
    assert row["ack_floor_stream_seq"] == row["delivered_stream_seq"] == 9
