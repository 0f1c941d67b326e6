"""nats-server 2.11/2.12 JetStream features against the embedded server (2.15): per-message
TTL, subject delete markers read by KV the way nats.go reads them, consumer pause/resume,
distributed counters, atomic batch publish."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pandas as pd
import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.errors import BadInputError, JetStreamError, NotFoundError
from tests.faults.helpers import wait_for


def _name(prefix: str = "F") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}".upper()


def test_ttl_header_spelling() -> None:
    assert js.ttl_header(5) == "5s" and js.ttl_header(1.5) == "1500ms"
    assert js.ttl_header(dt.timedelta(minutes=2)) == "120s" and js.ttl_header("never") == "never"
    assert js.ttl_header("1h30m") == "5400s"
    for bad in (0.5, 0, -1, "soon", float("nan"), True, None):
        with pytest.raises(BadInputError):
            js.ttl_header(bad)



def test_ttl_texts_the_way_nats_server_reads_them() -> None:
    """nats-server takes whole seconds as bare digits and "never" in any case; "90" used to
    be refused as "under one second" (pandas: 90 ns), "Never" as not a duration, and "1d"
    raised pandas' deprecation warning (an error under -W error)."""
    assert js.ttl_header("90") == "90s" and js.ttl_header(" 3600 ") == "3600s"
    assert js.ttl_header("Never") == js.ttl_header("NEVER") == "never"
    assert js.ttl_header("1d") == "86400s" and js.ttl_header("1w") == "604800s"
    for bad in ("0", "-5", "1.5.5", "100000000000h"):
        with pytest.raises(BadInputError):
            js.ttl_header(bad)


def test_per_message_ttl(conn: natsbook.Connection, subject: str) -> None:
    stream = _name()
    js.add_stream(conn, stream, [f"{subject}.>"], allow_msg_ttl=True)
    conn.js_publish(f"{subject}.short", b"gone soon", ttl=1)
    conn.js_publish(f"{subject}.long", b"stays", ttl="1h")
    kept = conn.stream_history(stream)
    assert kept["headers"].map(lambda h: h["Nats-TTL"]).tolist() == [["1s"], ["3600s"]]
    wait_for(lambda: conn.stream_info(stream)["state"]["messages"] == 1, timeout=10,
             interval=0.2)
    assert conn.stream_history(stream)["subject"].tolist() == [f"{subject}.long"]

    plain = _name()
    js.add_stream(conn, plain, [f"{subject}p.>"])  # no allow_msg_ttl: the server refuses
    with pytest.raises(JetStreamError, match=r"(?i)ttl"):
        conn.js_publish(f"{subject}p.x", b"", ttl=5)


def test_stream_options_for_ttl_and_delete_markers(conn: natsbook.Connection,
                                                   subject: str) -> None:
    """add_stream states the 2.11 options: a delete marker (in seconds) turns message TTLs on,
    and max_age then leaves a MaxAge marker where it removed a subject's last message."""
    stream = _name()
    cfg = js.add_stream(conn, stream, [f"{subject}.>"], max_age=1_000_000_000,
                        subject_delete_marker_ttl=5)["config"]
    assert cfg["allow_msg_ttl"] is True and cfg["subject_delete_marker_ttl"] == 5_000_000_000
    conn.js_publish(f"{subject}.a", b"x")
    marker: list[Any] = []

    def has_marker() -> bool:
        marker[:] = conn.stream_history(stream)["headers"].tolist()
        return bool(marker and marker[0])

    wait_for(has_marker, timeout=10, interval=0.2)
    assert marker[0]["Nats-Marker-Reason"] == ["MaxAge"]
    with pytest.raises(BadInputError, match="positive"):
        js.add_stream(conn, _name(), [f"{subject}x.>"], subject_delete_marker_ttl=0)
    assert js.add_stream(conn, _name(), [f"{subject}y.>"],
                         allow_msg_ttl=True)["config"]["allow_msg_ttl"] is True


def test_kv_reads_expiry_markers_like_nats_go(conn: natsbook.Connection) -> None:
    bucket = _name("B")
    kv = conn.kv(bucket, create=True, marker_ttl=5)
    assert kv.info["config"]["subject_delete_marker_ttl"] == 5_000_000_000
    watch = kv.watch(updates_only=True)
    kv.put("stay", "x")
    kv.create("short", "s", ttl=1)  # a per-key TTL: the server expires it, leaves a marker
    wait_for(lambda: "PURGE" in set(kv.to_pandas(include_deleted=True)["operation"]),
             timeout=10, interval=0.2)
    latest = kv.to_pandas(include_deleted=True).set_index("key")
    assert latest.loc["short", "operation"] == "PURGE" and latest.loc["short", "value"] == ""
    assert latest.loc["stay", "operation"] == "PUT"
    assert kv.keys() == ["stay"]  # an expired key is no empty PUT
    with pytest.raises(NotFoundError, match="deleted"):
        kv.get("short")
    assert kv.history("short")["operation"].tolist()[-1] == "PURGE"
    wait_for(lambda: "PURGE" in set(watch.to_pandas()["operation"]), timeout=5)
    changes = watch.to_pandas()
    watch.stop()
    assert changes.loc[changes["operation"] == "PURGE", "key"].tolist() == ["short"]
    # a key whose latest entry is a marker can be created again
    assert kv.create("short", "again") > 0 and kv.get("short").value == b"again"

    # the bucket's max_age expires every entry: a watch sees each expiry as a PURGE
    aging = conn.kv(_name("B"), create=True, ttl=1, marker_ttl=5)
    seen = aging.watch(updates_only=True)
    aging.put("k", "v")
    wait_for(lambda: seen.to_pandas()["operation"].tolist() == ["PUT", "PURGE"], timeout=10,
             interval=0.2)
    seen.stop()


def test_kv_operation_reading_rules() -> None:
    assert js.kv_operation({"KV-Operation": "DEL", "Nats-Marker-Reason": "MaxAge"}) == "DEL"
    assert js.kv_operation({"Nats-Marker-Reason": "MaxAge"}) == "PURGE"
    assert js.kv_operation([("Nats-Marker-Reason", "Purge")]) == "PURGE"
    assert js.kv_operation({"Nats-Marker-Reason": ["Remove"]}) == "DEL"
    assert js.kv_operation({"Nats-Marker-Reason": "Other"}) == "PUT"
    assert js.kv_operation(None) == "PUT" and js.kv_operation({"X": "1"}) == "PUT"


def test_pause_and_resume_a_consumer(conn: natsbook.Connection, subject: str) -> None:
    stream = _name()
    js.add_stream(conn, stream, [f"{subject}.>"])
    conn.add_consumer(stream, "w")
    until = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5)
    got = conn.pause_consumer(stream, "w", until)
    assert got["paused"] and abs(got["pause_until"] - until) < pd.Timedelta(seconds=1)
    assert 200 < got["pause_remaining"] <= 300
    assert bool(conn.consumers(stream).set_index("name").loc["w", "paused"])
    again = conn.pause_consumer(stream, "w", 60)
    assert again["paused"] and 50 < again["pause_remaining"] <= 60
    resumed = conn.resume_consumer(stream, "w")
    assert resumed == {"stream": stream, "consumer": "w", "paused": False,
                       "pause_until": None, "pause_remaining": None}
    assert not bool(conn.consumers(stream).set_index("name").loc["w", "paused"])
    with pytest.raises(NotFoundError):
        conn.pause_consumer(stream, "nobody", 10)
    with pytest.raises(BadInputError, match="until"):
        conn.pause_consumer(stream, "w", "whenever")


def test_pause_until_a_past_time_a_duration_or_beyond_9999(conn: natsbook.Connection,
                                                           subject: str) -> None:
    """A past time (a naive one is UTC), a negative or zero timedelta used to return
    paused=False silently; "10m" was sent as the year 1; 1e12 seconds raised
    NotImplementedError out of strftime."""
    stream = _name()
    js.add_stream(conn, stream, [f"{subject}.>"])
    conn.add_consumer(stream, "w")
    past = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=5)).tz_localize(None)
    for until in (past, past.to_pydatetime(), dt.timedelta(seconds=-10), dt.timedelta(0),
                  "2020-01-01T00:00:00+02:00"):
        with pytest.raises(BadInputError, match="not in the future"):
            conn.pause_consumer(stream, "w", until)
    with pytest.raises(BadInputError, match="9999"):
        conn.pause_consumer(stream, "w", 1e12)
    with pytest.raises(BadInputError, match="until"):
        conn.pause_consumer(stream, "w", "30")  # a bare number in text: not 30 ns
    got = conn.pause_consumer(stream, "w", "10m")
    assert got["paused"] and 500 < got["pause_remaining"] <= 600
    naive = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5)).tz_localize(None)
    got = conn.pause_consumer(stream, "w", naive)  # naive: UTC
    assert got["paused"] and 200 < got["pause_remaining"] <= 300


def test_counters(conn: natsbook.Connection, subject: str) -> None:
    stream = _name("C")
    info = conn.add_counter(stream, [f"{subject}.>"])
    assert info["config"]["allow_msg_counter"] is True
    assert conn.counter_add(f"{subject}.hits").value == 1
    assert conn.counter_add(f"{subject}.hits", 41).value == 42
    ack = conn.counter_add(f"{subject}.hits", -2)
    assert (ack.stream, ack.value) == (stream, 40)
    big = 2**70  # counters are arbitrary-precision on the server
    assert conn.counter_add(f"{subject}.big", big).value == big
    assert conn.counter_value(stream, f"{subject}.hits") == 40
    assert conn.counter_value(stream, f"{subject}.big") == big
    with pytest.raises(NotFoundError):
        conn.counter_value(stream, f"{subject}.never")
    with pytest.raises(JetStreamError, match=r"(?i)counter"):
        conn.js_publish(f"{subject}.hits", b"not an increment")
    with pytest.raises(BadInputError):
        conn.counter_add(f"{subject}.hits", 1.5)  # type: ignore[arg-type]
    plain = _name()
    js.add_stream(conn, plain, [f"{subject}p.>"])
    with pytest.raises(JetStreamError):
        conn.counter_add(f"{subject}p.x")


def test_atomic_batch(conn: natsbook.Connection, subject: str) -> None:
    stream = _name("A")
    js.add_stream(conn, stream, [f"{subject}.>"], allow_atomic=True)
    ack = conn.batch_publish([(f"{subject}.a", b"1"), (f"{subject}.b", {"n": 2}),
                              (f"{subject}.c", "3", {"X-Note": "last"})])
    assert (ack.seq, ack.count) == (3, 3) and ack.batch
    stored = conn.stream_history(stream, decode="bytes")
    assert stored["subject"].tolist() == [f"{subject}.a", f"{subject}.b", f"{subject}.c"]
    assert stored["headers"].iloc[2]["X-Note"] == ["last"]
    # an expected-sequence check that fails inside the batch: nothing of it is stored
    with pytest.raises(JetStreamError, match="not stored"):
        conn.batch_publish([(f"{subject}.d", b"4"),
                            (f"{subject}.e", b"5", {"Nats-Expected-Last-Sequence": "1"})])
    time.sleep(0.2)
    assert conn.stream_info(stream)["state"]["messages"] == 3
    plain = _name()
    js.add_stream(conn, plain, [f"{subject}p.>"])
    with pytest.raises(JetStreamError, match="allow_atomic"):
        conn.batch_publish([(f"{subject}p.x", b"")])
    with pytest.raises(BadInputError):
        conn.batch_publish([])
    with pytest.raises(BadInputError):
        conn.batch_publish([("only-subject",)])


def test_batches_need_a_2_12_server() -> None:
    from natsbook.jetstream._jsapi import server_at_least
    assert server_at_least("2.12.0", (2, 12)) and server_at_least("v2.15.1-beta", (2, 12))
    assert not server_at_least("2.11.9", (2, 12)) and not server_at_least("2.9", (2, 12))
    assert not server_at_least(None, (2, 12)) and not server_at_least("garbage", (2, 12))


def test_a_bad_batch_item_sends_nothing(conn: natsbook.Connection, subject: str) -> None:
    """A wildcard subject or headers that are not a mapping, anywhere in the batch, is
    refused before the first message goes out (the earlier items used to be sent, leaving
    the server an open batch to abandon)."""
    stream = _name("A")
    js.add_stream(conn, stream, [f"{subject}.>"], allow_atomic=True)
    conn.flush()
    sent = conn.stats["out_msgs"]
    with pytest.raises(natsbook.errors.BadSubjectError):
        conn.batch_publish([(f"{subject}.a", b"1"), (f"{subject}.*", b"2")])
    with pytest.raises(BadInputError, match="batch item"):
        conn.batch_publish([(f"{subject}.a", b"1"), (f"{subject}.b", b"2", "X: y")])
    conn.flush()
    assert conn.stats["out_msgs"] == sent
