"""Key-value buckets against the real embedded nats-server, over TCP and WebSocket."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.errors import BadInputError, JetStreamError, NotFoundError
from natsbook.jetstream import _kv as natskv
from tests.support.waiting import wait_for

#: Every test runs over TCP and over WebSocket (conftest.pytest_generate_tests).
TRANSPORTS = ("tcp", "ws")


@pytest.fixture
def bucket(conn: natsbook.Connection, subject: str) -> Iterator[natskv.KV]:
    b = natskv.create_kv(conn, subject, history=5, storage="memory")
    yield b
    try:
        js.delete_stream(conn, b.stream)
    except natsbook.NatsbookError:
        pass


def test_round_trip(bucket):
    r1 = bucket.put("color", "red")
    r2 = bucket.put("size.x", {"w": 3})
    r3 = bucket.put("color", b"blue")
    assert r1 < r2 < r3
    entry = bucket.get("color")
    assert (entry.value, entry.revision, entry.operation) == (b"blue", r3, "PUT")
    assert entry.text() == "blue" and isinstance(entry.created, pd.Timestamp)
    assert bucket.get("size.x").json() == {"w": 3}
    assert bucket.get("color", revision=r1).value == b"red"
    frame = bucket.to_pandas()
    assert list(frame.columns) == ["key", "value", "revision", "created", "operation"]
    assert frame[["key", "value", "revision"]].values.tolist() == [
        ["color", "blue", r3], ["size.x", '{"w":3}', r2]]
    assert str(frame["created"].dtype) == "datetime64[ns, UTC]"
    assert bucket.to_pandas("json")["value"].tolist() == [None, {"w": 3}]
    assert bucket.to_pandas("bytes")["value"].tolist() == [b"blue", b'{"w":3}']
    assert bucket.keys() == ["color", "size.x"]


def test_delete_purge_and_history(bucket):
    bucket.put("k", "1")
    bucket.put("k", "2")
    bucket.put("other", "x")
    rdel = bucket.delete("k")
    with pytest.raises(NotFoundError, match="deleted"):
        bucket.get("k")
    assert bucket.keys() == ["other"]
    with_deleted = bucket.to_pandas(include_deleted=True)
    assert with_deleted.set_index("key").loc["k", "operation"] == "DEL"
    assert with_deleted.set_index("key").loc["k", "revision"] == rdel
    hist = bucket.history("k")
    assert hist["value"].tolist() == ["1", "2", ""]
    assert hist["operation"].tolist() == ["PUT", "PUT", "DEL"]
    bucket.purge("k")
    assert bucket.history("k")["operation"].tolist() == ["PURGE"]


def test_create_and_compare_and_set(bucket):
    rev = bucket.create("once", "a")
    with pytest.raises(JetStreamError):
        bucket.create("once", "b")
    rev2 = bucket.update("once", "c", last=rev)
    with pytest.raises(JetStreamError):
        bucket.update("once", "d", last=rev)
    assert bucket.get("once").revision == rev2


def test_create_over_delete_and_purge_markers(bucket):
    """A key whose latest entry is a DEL or PURGE marker is absent: create() succeeds there
    (as in the official clients), and still refuses a key that holds a value."""
    bucket.put("d", "1")
    rdel = bucket.delete("d")
    rev = bucket.create("d", "2")
    assert rev > rdel and bucket.get("d").value == b"2"
    with pytest.raises(JetStreamError, match="already exists") as info:
        bucket.create("d", "3")
    assert info.value.err_code == 10071
    bucket.put("p", "1")
    bucket.purge("p")
    assert bucket.get("p", revision=bucket.create("p", "again")).text() == "again"
    assert bucket.history("p")["operation"].tolist() == ["PURGE", "PUT"]


def test_watch_feeds_a_capture(bucket):
    bucket.put("a", "1")
    with bucket.watch() as w:
        wait_for(lambda: len(w) == 1, what="initial value")
        bucket.put("b", "2")
        bucket.put("a", "3")
        bucket.delete("b")
        wait_for(lambda: len(w) == 4, what="updates")
        frame = w.to_pandas()
    assert frame[["key", "value", "operation"]].values.tolist() == [
        ["a", "1", "PUT"], ["b", "2", "PUT"], ["a", "3", "PUT"], ["b", "", "DEL"]]
    assert frame["revision"].is_monotonic_increasing
    with bucket.watch("a", updates_only=True) as only:
        bucket.put("b", "ignored")
        bucket.put("a", "4")
        wait_for(lambda: len(only) == 1, what="one update of a")
        assert only.to_pandas()["value"].tolist() == ["4"]


def test_empty_bucket(bucket):
    frame = bucket.to_pandas()
    assert frame.empty and list(frame.columns) == ["key", "value", "revision", "created",
                                                   "operation"]
    with pytest.raises(NotFoundError, match="not found in bucket"):
        bucket.get("nothing")


def test_many_keys(bucket):
    for i in range(300):
        bucket.conn.publish(f"$KV.{bucket.bucket}.k{i}", str(i))
    bucket.conn.flush()
    wait_for(lambda: js.stream_info(bucket.conn, bucket.stream)["state"]["messages"] == 300)
    frame = bucket.to_pandas()
    assert len(frame) == 300 and set(frame["value"]) == {str(i) for i in range(300)}


def test_bucket_errors(conn, bucket):
    with pytest.raises(NotFoundError, match="did you mean") as info:
        natskv.kv(conn, bucket.bucket[:-1] + "X" if bucket.bucket[-1] != "X" else "Y")
    assert info.value.kind == "bucket"
    with pytest.raises(BadInputError):
        bucket.put("bad key", "x")
    with pytest.raises(BadInputError):
        natskv.kv(conn, "no.dots")
    assert bucket.bucket in natskv.kv_buckets(conn)


def test_create_true_opens_an_existing_bucket_as_it_is(conn, bucket):
    """``conn.kv(name, create=True)`` run again (another cell, another notebook) must not
    reconfigure the bucket: with the defaults it used to shrink history 5 -> 1, deleting every
    older revision."""
    for i in range(5):
        bucket.put("k", str(i))
    again = conn.kv(bucket.bucket, create=True)
    assert len(again.history("k")) == 5
    assert js.stream_info(conn, bucket.stream)["config"]["max_msgs_per_subject"] == 5
    fresh = conn.kv(bucket.bucket + "_new", create=True, history=3)
    try:
        assert js.stream_info(conn, fresh.stream)["config"]["max_msgs_per_subject"] == 3
    finally:
        js.delete_stream(conn, fresh.stream)
