"""JetStream history, follow and publish against the real embedded nats-server, over TCP and
WebSocket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pandas as pd
import pyarrow.compute as pc
import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.errors import BadInputError, JetStreamError, NotFoundError
from natsbook.jetstream import _jsparse, _jsread, _streams
from tests.support.waiting import wait_for

METHODS = ["direct", "consumer"]

#: Tests that connect run over TCP and over WebSocket (conftest.pytest_generate_tests).
TRANSPORTS = ("tcp", "ws")


@pytest.fixture
def stream(conn: natsbook.Connection, subject: str) -> Iterator[str]:
    """A stream of the test's own, named like its subject root, storing ``<subject>.>``."""
    js.add_stream(conn, subject, [f"{subject}.>"], storage="memory")
    yield subject
    try:
        js.delete_stream(conn, subject)
    except natsbook.NatsbookError:
        pass


def fill(conn: natsbook.Connection, subject: str, n: int, *, start: int = 0,
         tokens: int = 3) -> None:
    for i in range(start, start + n):
        conn.publish(f"{subject}.{i % tokens}", {"i": i})
    conn.flush()


def seqs(frame: pd.DataFrame) -> list[int]:
    return frame["seq"].tolist()


def wait_stored(conn: natsbook.Connection, name: str, n: int) -> None:
    wait_for(lambda: js.stream_info(conn, name)["state"]["messages"] >= n, what=f"{n} stored")


# ---------------------------------------------------------------------------- streams/info
def test_streams_lists_the_stream_with_counts(conn, stream, subject):
    fill(conn, subject, 7)
    wait_stored(conn, stream, 7)
    frame = js.streams(conn)
    row = frame[frame["name"] == stream].iloc[0]
    assert row["subjects"] == [f"{subject}.>"]
    assert (row["messages"], row["first_seq"], row["last_seq"]) == (7, 1, 7)
    assert row["storage"] == "memory" and bool(row["allow_direct"])
    assert isinstance(row["last_time"], pd.Timestamp) and row["last_time"] >= row["first_time"]
    assert str(frame["created"].dtype) == "datetime64[ns, UTC]"


def test_stream_subjects_counts_per_subject(conn, stream, subject):
    fill(conn, subject, 10, tokens=3)
    wait_stored(conn, stream, 10)
    frame = js.stream_subjects(conn, stream)
    assert frame.to_dict("list") == {"subject": [f"{subject}.0", f"{subject}.1",
                                                 f"{subject}.2"], "messages": [4, 3, 3]}
    only = js.stream_subjects(conn, stream, f"{subject}.1")
    assert only["messages"].tolist() == [3]


def test_stream_info_and_purge(conn, stream, subject):
    fill(conn, subject, 5)
    wait_stored(conn, stream, 5)
    assert js.stream_info(conn, stream)["config"]["name"] == stream
    assert js.purge_stream(conn, stream, subject=f"{subject}.0") == 2
    assert js.stream_info(conn, stream)["state"]["messages"] == 3


# ---------------------------------------------------------------------------- history
@pytest.mark.parametrize("method", METHODS)
def test_history_reads_everything_in_order(conn, stream, subject, method):
    for i in range(50):
        conn.publish(f"{subject}.{i % 2}", {"i": i, "v": i / 2},
                     headers={"X-Tag": f"t{i}"} if i % 10 == 0 else None)
    conn.flush()
    wait_stored(conn, stream, 50)
    before = pd.Timestamp.now(tz="UTC")
    frame = js.stream_history(conn, stream, method=method)
    assert seqs(frame) == list(range(1, 51))
    assert frame["i"].tolist() == list(range(50))
    assert frame["subject"].tolist() == [f"{subject}.{i % 2}" for i in range(50)]
    assert frame["time"].is_monotonic_increasing and frame["time"].iloc[-1] <= before
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]"
    # The publisher's headers survive; the JetStream bookkeeping headers do not leak in.
    assert frame["headers"][0] == {"X-Tag": ["t0"]}
    assert frame["headers"][1] is None
    assert frame["reply"].isna().all()


@pytest.mark.parametrize("method", METHODS)
def test_history_frame_has_the_live_capture_columns(conn, stream, subject, method):
    sub = conn.subscribe(f"{subject}.>")
    fill(conn, subject, 5)
    wait_stored(conn, stream, 5)
    live = sub.to_pandas()
    hist = js.stream_history(conn, stream, method=method)
    assert list(hist.columns) == ["time", "seq", *[c for c in live.columns if c != "time"]]
    pd.testing.assert_frame_equal(hist.drop(columns=["time", "seq"]),
                                  live.drop(columns=["time"]))


@pytest.mark.parametrize("method", METHODS)
def test_history_many_batches(conn, stream, subject, method, monkeypatch):
    monkeypatch.setattr(_streams, "BATCH", 97)  # force many round trips
    fill(conn, subject, 1000)
    wait_stored(conn, stream, 1000)
    assert seqs(js.stream_history(conn, stream, method=method)) == list(range(1, 1001))


@pytest.mark.parametrize("method", METHODS)
def test_history_from_start_seq(conn, stream, subject, method):
    fill(conn, subject, 20)
    wait_stored(conn, stream, 20)
    assert seqs(js.stream_history(conn, stream, start_seq=15, method=method)) == list(
        range(15, 21))
    assert js.stream_history(conn, stream, start_seq=99, method=method).empty


@pytest.mark.parametrize("method", METHODS)
def test_history_by_time(conn, stream, subject, method):
    fill(conn, subject, 10)
    wait_stored(conn, stream, 10)
    time.sleep(0.05)
    cut = pd.Timestamp.now(tz="UTC")
    time.sleep(0.05)
    fill(conn, subject, 5, start=10)
    wait_stored(conn, stream, 15)
    assert seqs(js.stream_history(conn, stream, since=cut, method=method)) == list(range(11, 16))
    assert seqs(js.stream_history(conn, stream, until=cut, method=method)) == list(range(1, 11))
    # Naive datetimes are UTC, and a duration means "that long ago".
    assert len(js.stream_history(conn, stream, since=cut.tz_localize(None), method=method)) == 5
    assert len(js.stream_history(conn, stream, since="1h", method=method)) == 15


@pytest.mark.parametrize("method", METHODS)
def test_history_subject_filter(conn, stream, subject, method):
    for i in range(30):
        conn.publish(f"{subject}.dev{i % 3}.temp", {"i": i})
        conn.publish(f"{subject}.dev{i % 3}.hum", {"i": i})
    conn.flush()
    wait_stored(conn, stream, 60)
    one = js.stream_history(conn, stream, subject=f"{subject}.dev1.temp", method=method)
    assert one["i"].tolist() == list(range(1, 30, 3))
    assert set(one["subject"]) == {f"{subject}.dev1.temp"}
    wild = js.stream_history(conn, stream, subject=f"{subject}.*.hum", method=method)
    assert len(wild) == 30 and wild["seq"].is_monotonic_increasing
    assert js.stream_history(conn, stream, subject=f"{subject}.nope", method=method).empty


@pytest.mark.parametrize("method", METHODS)
def test_history_last_n(conn, stream, subject, method):
    fill(conn, subject, 100, tokens=4)
    wait_stored(conn, stream, 100)
    assert seqs(js.stream_history(conn, stream, last=5, method=method)) == [96, 97, 98, 99, 100]
    # A rare subject: the read has to widen its window backwards to find enough.
    last = js.stream_history(conn, stream, last=3, subject=f"{subject}.1", method=method)
    assert seqs(last) == [90, 94, 98]
    assert seqs(js.stream_history(conn, stream, last=1000, method=method)) == list(
        range(1, 101))


def test_history_last_n_across_deleted_messages(conn, stream, subject):
    fill(conn, subject, 20)
    wait_stored(conn, stream, 20)
    for seq in range(15, 20):
        js.api_request(conn, f"STREAM.MSG.DELETE.{stream}", {"seq": seq, "no_erase": True})
    assert seqs(js.stream_history(conn, stream, last=4)) == [12, 13, 14, 20]


def test_history_max_rows(conn, stream, subject):
    fill(conn, subject, 50)
    wait_stored(conn, stream, 50)
    assert seqs(js.stream_history(conn, stream, max_rows=7)) == list(range(1, 8))
    assert js.stream_history(conn, stream, max_rows=0).empty


def test_history_ends_at_the_stream_end_while_publishing(conn, stream, subject):
    fill(conn, subject, 300)
    wait_stored(conn, stream, 300)
    stop = threading.Event()
    pub = natsbook.connect(conn.servers[0])

    def publish() -> None:
        i = 0
        while not stop.is_set():
            pub.publish(f"{subject}.x", {"late": i})
            i += 1
            if i % 100 == 0:
                time.sleep(0.001)

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    try:
        frame = js.stream_history(conn, stream, timeout=5)
    finally:
        stop.set()
        t.join(5)
        pub.close()
    got = seqs(frame)
    assert got[:300] == list(range(1, 301))
    assert got == list(range(1, len(got) + 1))  # a contiguous prefix, no duplicates


def test_empty_stream_gives_an_empty_frame_at_once(conn, stream):
    start = time.monotonic()
    frame = js.stream_history(conn, stream)
    assert frame.empty and list(frame.columns[:2]) == ["time", "seq"]
    assert time.monotonic() - start < 5  # generous: it must not wait for a read timeout


def test_progress_line_on_request(conn, stream, subject, capsys):
    fill(conn, subject, 10)
    wait_stored(conn, stream, 10)
    js.stream_history(conn, stream, progress=True)
    assert f"stream {stream}" in capsys.readouterr().err


# ---------------------------------------------------------------------------- follow
def test_follow_seam_under_concurrent_publishing(conn, stream, subject):
    fill(conn, subject, 500)
    stop = threading.Event()
    published = [0]
    pub = natsbook.connect(conn.servers[0])

    def publish() -> None:
        while not stop.is_set() or published[0] < 1500:
            pub.publish(f"{subject}.{published[0] % 3}", {"n": published[0]})
            published[0] += 1
            if published[0] % 50 == 0:
                time.sleep(0.001)
            if published[0] >= 4000:
                break
        pub.flush()

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    time.sleep(0.01)
    try:
        f = js.follow(conn, stream)  # history and live while the publisher runs
        stop.set()
        t.join(10)
        total = 500 + published[0]
        wait_stored(conn, stream, total)
        wait_for(lambda: len(f) >= total, what=f"{total} followed messages")
        time.sleep(0.1)  # anything extra (a duplicate) would have arrived by now
        frame = f.to_pandas()
        f.stop()
    finally:
        pub.close()
    assert 0 < f.seam < total  # the seam really fell inside the publishing
    assert seqs(frame) == list(range(1, total + 1))  # no gap, no duplicate, in order
    assert f.missed() == 0


def test_follow_with_subject_filter_and_no_history(conn, stream, subject):
    fill(conn, subject, 9)
    wait_stored(conn, stream, 9)
    with js.follow(conn, stream, subject=f"{subject}.1") as f:
        assert seqs(f.to_pandas()) == [2, 5, 8]
        fill(conn, subject, 6, start=9)
        wait_for(lambda: len(f) == 5, what="live rows")
        assert seqs(f.to_pandas()) == [2, 5, 8, 11, 14]
    assert not f.active
    with js.follow(conn, stream, history=False) as g:
        assert len(g) == 0
        conn.publish(f"{subject}.z", b"live")
        wait_for(lambda: len(g) == 1, what="one live row")
        row = g.to_pandas().iloc[0]
        assert (row["seq"], row["data"], row["subject"]) == (16, "live", f"{subject}.z")


# ---------------------------------------------------------------------------- publish
def test_js_publish_acks_and_deduplicates(conn, stream, subject):
    ack = js.js_publish(conn, f"{subject}.a", {"x": 1}, msg_id="m-1")
    assert (ack.stream, ack.seq, ack.duplicate) == (stream, 1, False)
    again = js.js_publish(conn, f"{subject}.a", {"x": 1}, msg_id="m-1")
    assert (again.seq, again.duplicate) == (1, True)
    assert js.js_publish(conn, f"{subject}.b", b"y", expected_last_seq=1).seq == 2
    with pytest.raises(JetStreamError, match="wrong last sequence"):
        js.js_publish(conn, f"{subject}.b", b"z", expected_last_seq=1)


def test_js_publish_without_a_stream(conn, subject):
    with pytest.raises(JetStreamError, match="no stream stores"):
        js.js_publish(conn, f"{subject}.nowhere", b"x", timeout=2)


# ---------------------------------------------------------------------------- errors
def test_stream_not_found_suggests_a_name(conn, stream):
    with pytest.raises(NotFoundError, match="did you mean") as info:
        js.stream_history(conn, stream.upper())
    assert info.value.suggestion == stream and info.value.kind == "stream"
    with pytest.raises(NotFoundError):
        js.stream_info(conn, stream + "-missing")


def test_direct_get_refused_on_a_stream_without_direct_access(conn, subject):
    name = subject + "_nodirect"
    js.add_stream(conn, name, [f"{subject}.nd.>"], storage="memory", allow_direct=False)
    try:
        conn.publish(f"{subject}.nd.x", b"1")
        wait_stored(conn, name, 1)
        with pytest.raises(JetStreamError, match="does not allow direct get"):
            js.stream_history(conn, name, method="direct")
        assert seqs(js.stream_history(conn, name)) == [1]  # auto falls back to a consumer
    finally:
        js.delete_stream(conn, name)


def test_jetstream_not_enabled():
    with natsbook.local_server(jetstream=False) as srv, natsbook.connect(srv.url) as c:
        for call in (lambda: js.streams(c), lambda: js.stream_history(c, "ANY"),
                     lambda: js.follow(c, "ANY")):
            with pytest.raises(JetStreamError, match="JetStream is not enabled"):
                call()


def test_bad_arguments(conn, stream):
    with pytest.raises(BadInputError):
        js.stream_history(conn, stream, method="magic")
    with pytest.raises(BadInputError):
        js.stream_history(conn, stream, last=3, start_seq=2)
    with pytest.raises(BadInputError):
        js.stream_history(conn, stream, since="not a time at all")
    for small in (30, "30", 1.5, float("nan")):  # a duration without its unit, not 1970
        with pytest.raises(BadInputError, match="epoch seconds and must be at least"):
            js.stream_history(conn, stream, since=small)
    with pytest.raises(BadInputError):
        js.stream_info(conn, "bad.name")


def test_connection_methods(conn, stream, subject):
    # No skip: a removed Connection.stream_history must fail here, not turn into a skip.
    fill(conn, subject, 3)
    wait_stored(conn, stream, 3)
    assert seqs(conn.stream_history(stream)) == [1, 2, 3]
    assert stream in set(conn.streams()["name"])


def test_column_parse_agrees_with_the_per_row_parse(conn, stream, subject):
    for i in range(40):
        conn.publish(f"{subject}.{i % 4}", {"i": i}, headers={"A": str(i), "B": "x"}
                     if i % 3 == 0 else None)
    conn.flush()
    wait_stored(conn, stream, 40)
    reader = _jsread.Batches(conn, 5.0)
    try:
        reader.request(f"$JS.API.DIRECT.GET.{stream}", {"seq": 1, "batch": 100})
        raw = reader.table()
    finally:
        reader.close()
    fast = _jsparse.parse_direct(raw)
    hdr = raw["headers"].combine_chunks()
    keep = pc.invert(_jsparse._status_mask(hdr))
    payload = raw["payload"].combine_chunks().filter(keep)
    slow = _jsparse._parse_direct_slow(hdr.filter(keep), payload)
    assert fast.num_rows == 40
    assert fast.to_pylist() == slow.to_pylist()
    assert fast["headers"][3].as_py() == b"NATS/1.0\r\nA: 3\r\nB: x\r\n\r\n"


def test_follow_survives_a_server_restart(fresh_server, fresh_url, subject):
    """A restart wipes the in-memory consumer: after the reconnect natsbook creates it again
    from the next stream sequence, so the live capture has no gap and no duplicate."""
    c = natsbook.connect(fresh_url)
    try:
        name = f"R{subject}".upper()
        js.add_stream(c, name, [f"{subject}.>"])
        for i in range(5):
            c.js_publish(f"{subject}.x", {"i": i})
        f = c.follow(name)
        for i in range(5, 10):
            c.js_publish(f"{subject}.x", {"i": i})
        wait_for(lambda: len(f) == 10, what="live rows before the restart")
        fresh_server.kill()
        fresh_server.start()
        wait_for(lambda: c.status == "connected", what="reconnect")
        wait_for(lambda: f.live.recreated == 1, what="consumer re-created")
        for i in range(10, 15):
            c.js_publish(f"{subject}.x", {"i": i}, timeout=10)
        wait_for(lambda: len(f) == 15, what="live rows after the restart")
        frame = f.to_pandas("json")
        assert frame["i"].tolist() == list(range(15))
        assert frame["seq"].tolist() == list(range(1, 16))
        assert f.missed() == 0
        assert any("created it again" in text for _, text in c.errors)
        f.stop()
        assert f.live._repair not in c._engine._reconnect_hooks
    finally:
        c.close()
