"""Core pub/sub, queue groups, request/reply, serve, headers, flush, limits: real server,
over TCP and over WebSocket."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

import natsbook
from natsbook import Connection, Msg
from natsbook.errors import (
    BadHeaderError,
    BadInputError,
    BadSubjectError,
    ConnectionClosedError,
    MaxPayloadError,
    NoRespondersError,
    RequestTimeout,
    ServiceError,
)
from tests.support.transports import url_of
from tests.support.waiting import wait_for

#: Every test that connects runs over TCP and over WebSocket (see conftest.pytest_generate_tests).
TRANSPORTS = ("tcp", "ws")


def test_wildcards(conn: Connection, subject: str) -> None:
    star = conn.subscribe(f"{subject}.*.temp")
    full = conn.subscribe(f"{subject}.>")
    exact = conn.subscribe(f"{subject}.a.temp")
    for s in ("a.temp", "b.temp", "a.hum", "a.temp.x"):
        conn.publish(f"{subject}.{s}", s)
    conn.flush()
    assert wait_for(lambda: len(full) == 4)
    assert sorted(star.to_pandas("text")["data"]) == ["a.temp", "b.temp"]
    assert list(exact.to_pandas("text")["data"]) == ["a.temp"]
    assert sorted(full.to_pandas("text")["subject"]) == sorted(
        f"{subject}.{s}" for s in ("a.temp", "b.temp", "a.hum", "a.temp.x"))


def test_subscribe_then_publish_is_never_lost(url: str, subject: str) -> None:
    """subscribe() returns only once the server registered it: 0 lost in 200 tries, with the
    publish coming from an independent connection."""
    sub_conn = natsbook.connect(url)
    pub_conn = natsbook.connect(url)
    lost = 0
    try:
        for i in range(200):
            s = sub_conn.subscribe(f"{subject}.{i}")
            pub_conn.publish(f"{subject}.{i}", b"x")
            pub_conn.flush()
            sub_conn.flush()
            if len(s) != 1:
                lost += 1
            s.unsubscribe()
    finally:
        sub_conn.close()
        pub_conn.close()
    assert lost == 0


def test_flush_is_a_barrier(conn: Connection, url: str, subject: str) -> None:
    other = natsbook.connect(url)
    try:
        sub = other.subscribe(subject)
        for i in range(5000):
            conn.publish(subject, str(i))
        conn.flush()
        other.flush()  # everything conn sent reached the server, and other has drained it
        assert len(sub) == 5000
        assert list(sub.to_pandas("text")["data"][-3:]) == ["4997", "4998", "4999"]
    finally:
        other.close()


def test_queue_group_spreads_work(url: str, subject: str) -> None:
    workers = [natsbook.connect(url) for _ in range(3)]
    pub = natsbook.connect(url)
    try:
        subs = [w.subscribe(subject, queue="workers") for w in workers]
        for i in range(300):
            pub.publish(subject, str(i))
        pub.flush()
        assert wait_for(lambda: sum(len(s) for s in subs) == 300)
        counts = [len(s) for s in subs]
        assert all(c > 0 for c in counts), counts
        seen = Counter()
        for s in subs:
            seen.update(s.to_pandas("text")["data"])
        assert len(seen) == 300 and set(seen.values()) == {1}
    finally:
        for c in [*workers, pub]:
            c.close()


def test_max_msgs_and_auto_unsubscribe(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject, max_msgs=3)
    for i in range(10):
        conn.publish(subject, str(i))
    conn.flush()
    assert wait_for(lambda: not sub.active)
    assert list(sub.to_pandas("text")["data"]) == ["0", "1", "2"]
    assert sub not in conn.subscriptions
    later = conn.subscribe(subject)
    later.unsubscribe(max_msgs=2)
    for i in range(5):
        conn.publish(subject, str(i))
    conn.flush()
    assert wait_for(lambda: not later.active)
    assert len(later) == 2


def test_unsubscribe_stops_delivery(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    conn.publish(subject, "1")
    conn.flush()
    sub.unsubscribe()
    conn.publish(subject, "2")
    conn.flush()
    assert list(sub.to_pandas("text")["data"]) == ["1"]
    assert not sub.active


def test_callback_runs_off_the_reader_and_errors_are_reported(conn: Connection,
                                                              subject: str) -> None:
    seen: list[tuple[str, str]] = []

    def cb(msg: Msg) -> None:
        seen.append((threading.current_thread().name, msg.text()))
        if msg.text() == "boom":
            raise ValueError("bad payload")

    sub = conn.subscribe(subject, callback=cb)
    for s in ("a", "boom", "b"):
        conn.publish(subject, s)
    conn.flush()
    assert wait_for(lambda: len(seen) == 3)
    assert [t for _, t in seen] == ["a", "boom", "b"]
    assert all(name.startswith("natsbook-dispatch") for name, _ in seen)
    assert wait_for(lambda: sub.stats.callback_errors == 1)
    assert "ValueError: bad payload" in sub.errors[0]
    assert any("bad payload" in text for _, text in conn.errors)


def test_request_reply_and_serve(conn: Connection, subject: str) -> None:
    conn.serve(f"{subject}.echo", lambda m: {"got": m.json()})

    def fail(m: Msg) -> bytes:
        raise RuntimeError("handler broke")

    svc = conn.serve(f"{subject}.fail", fail)
    reply = conn.request(f"{subject}.echo", {"x": 1}, timeout=2)
    assert reply.json() == {"got": {"x": 1}}
    with pytest.raises(ServiceError, match="handler broke") as exc:
        conn.request(f"{subject}.fail", b"", timeout=2)
    assert exc.value.code == 500
    # the responder keeps serving after an exception
    with pytest.raises(ServiceError):
        conn.request(f"{subject}.fail", b"", timeout=2)
    assert wait_for(lambda: svc.stats.callback_errors == 2)
    with pytest.raises(NoRespondersError):
        conn.request(f"{subject}.nobody", b"", timeout=2)
    conn.subscribe(f"{subject}.silent")  # listens, never answers
    with pytest.raises(RequestTimeout, match=r"within 0\.2s"):
        conn.request(f"{subject}.silent", b"", timeout=0.2)
    # still usable
    assert conn.request(f"{subject}.echo", [1], timeout=2).json() == {"got": [1]}


def test_many_concurrent_requests(conn: Connection, url: str, subject: str) -> None:
    responder = natsbook.connect(url)
    try:
        responder.serve(subject, lambda m: m.data[::-1], queue="q")
        results: dict[int, bytes] = {}

        def ask(i: int) -> None:
            results[i] = conn.request(subject, str(i).encode(), timeout=5).data

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == {i: str(i).encode()[::-1] for i in range(50)}
    finally:
        responder.close()


def test_headers_round_trip_with_repeated_keys(conn: Connection, subject: str) -> None:
    got: list[Msg] = []
    conn.subscribe(subject, callback=got.append)
    conn.publish(subject, b"body", headers={"X-Id": ["1", "2", "3"], "Trace": "abc def"})
    conn.flush()
    assert wait_for(lambda: got)
    h = got[0].headers
    assert h is not None
    assert h.getall("X-Id") == ["1", "2", "3"]
    assert h["Trace"] == "abc def"
    assert got[0].data == b"body"


def test_headers_in_dataframe(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    conn.publish(subject, b"1", headers={"A": ["x", "y"]})
    conn.publish(subject, b"2")
    conn.flush()
    df = sub.to_pandas("text")
    assert df["headers"].iloc[0] == {"A": ["x", "y"]}
    assert df["headers"].iloc[1] is None


def test_payload_types(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    conn.publish(subject, b"raw")
    conn.publish(subject, bytearray(b"ba"))
    conn.publish(subject, memoryview(b"mv"))
    conn.publish(subject, "text ü")
    conn.publish(subject, {"a": [1, 2]})
    conn.publish(subject, [1, 2])
    conn.flush()
    assert [m.data for m in sub.messages(last=6)] == [
        b"raw", b"ba", b"mv", "text ü".encode(), b'{"a":[1,2]}', b"[1,2]"]
    with pytest.raises(BadInputError, match="cannot send"):
        conn.publish(subject, object())


def test_max_payload_enforced_client_side_including_headers(subject: str,
                                                           transport: str) -> None:
    with natsbook.local_server(jetstream=False, config="max_payload: 1KB",
                               websocket=True) as srv, \
            natsbook.connect(url_of(srv, transport)) as c:
        assert c.max_payload == 1024
        c.publish(subject, b"x" * 1024)
        with pytest.raises(MaxPayloadError) as exc:
            c.publish(subject, b"x" * 1025)
        assert exc.value.limit == 1024 and exc.value.size == 1025
        with pytest.raises(MaxPayloadError):
            c.publish(subject, b"x" * 1000, headers={"K": "v" * 30})
        sub = c.subscribe(subject)
        c.publish(subject, b"ok")
        c.flush()
        assert len(sub) == 1 and c.status == "connected"


@pytest.mark.parametrize("bad", ["a b", "a..b", "a.*", "a.>", "", ".a"])
def test_bad_publish_subjects(conn: Connection, bad: str) -> None:
    with pytest.raises(BadSubjectError) as exc:
        conn.publish(bad, b"x")
    assert repr(bad) in str(exc.value) or bad == ""
    conn.flush()
    assert conn.status == "connected"


@pytest.mark.parametrize("bad", ["a.>.b", "a*", "a b", ""])
def test_bad_subscribe_subjects(conn: Connection, bad: str) -> None:
    with pytest.raises(BadSubjectError):
        conn.subscribe(bad)
    with pytest.raises(BadSubjectError):
        conn.subscribe("ok", queue="bad queue")


def test_bad_headers_rejected(conn: Connection, subject: str) -> None:
    with pytest.raises(BadHeaderError):
        conn.publish(subject, b"", headers={"bad key": "v"})
    with pytest.raises(BadHeaderError):
        conn.publish(subject, b"", headers={"K": "v\r\nInjected: 1"})


def test_scalar_header_values_are_sent_as_text(conn: Connection, subject: str) -> None:
    """Numbers and bools become text (documented); other values raise BadHeaderError, never a
    bare TypeError, on every path that sends headers (publish, request, js_publish)."""
    got: list[Msg] = []
    conn.subscribe(subject, callback=got.append)
    conn.publish(subject, b"", headers={"X-Count": 5, "X-Ratio": 2.5, "X-On": True,
                                        "X-List": [1, False, "s"], "X-Raw": b"b"})
    conn.flush()
    assert wait_for(lambda: got)
    h = got[0].headers
    assert h is not None
    assert h.items_all() == [("X-Count", "5"), ("X-Ratio", "2.5"), ("X-On", "true"),
                             ("X-List", "1"), ("X-List", "false"), ("X-List", "s"),
                             ("X-Raw", "b")]
    # a received message's headers republish with every repeated value
    conn.publish(subject, b"", headers=h)
    conn.flush()
    assert wait_for(lambda: len(got) == 2)
    assert got[1].headers is not None and got[1].headers.items_all() == h.items_all()
    responder = conn.serve(f"{subject}.svc", lambda m: m.headers.items_all())
    try:
        reply = conn.request(f"{subject}.svc", b"", headers={"N": 7}, timeout=2)
        assert reply.json() == [["N", "7"]]
        for bad in ({"K": None}, {"K": {"a": 1}}, {"K": [1, None]}, {5: "v"}, "K: v"):
            with pytest.raises(BadHeaderError) as exc:
                conn.publish(subject, b"", headers=bad)
            assert not isinstance(exc.value, TypeError)
            with pytest.raises(BadHeaderError):
                conn.request(f"{subject}.svc", b"", headers=bad, timeout=1)
    finally:
        responder.unsubscribe()
    conn.flush()
    assert conn.status == "connected" and len(got) == 2


def test_closed_connection_errors(url: str, subject: str) -> None:
    c = natsbook.connect(url)
    c.close()
    assert c.status == "closed"
    with pytest.raises(ConnectionClosedError, match=r"natsbook\.connect"):
        c.publish(subject, b"")
    with pytest.raises(ConnectionClosedError):
        c.subscribe(subject)
    c.close()  # idempotent


def test_drain_delivers_pending_callbacks(url: str, subject: str) -> None:
    c = natsbook.connect(url)
    seen: list[bytes] = []

    def slow(m: Msg) -> None:
        time.sleep(0.002)
        seen.append(m.data)

    c.subscribe(subject, callback=slow)
    for i in range(100):
        c.publish(subject, str(i))
    c.flush()
    report = c.drain(timeout=10)
    assert report.clean, report
    assert len(seen) == 100
    assert c.status == "closed"


def test_connect_defaults_to_nats_url(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", url)
    with natsbook.connect() as c:
        assert c.connected_url == url


def test_nothing_listening_fails_fast() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(natsbook.errors.ConnectError, match="cannot reach"):
        natsbook.connect(f"nats://127.0.0.1:{port}", connect_timeout=2)


def test_repr_and_stats(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    conn.publish(subject, "x")
    conn.flush()
    assert "connected" in repr(conn)
    assert repr(sub).startswith(f"<Subscription '{subject}'")
    st = conn.stats
    assert st["out_msgs"] >= 1 and st["in_msgs"] >= 1
    assert sub.stats.received == 1 and sub.stats.stored == 1
    assert sub.last_msg is not None and sub.last_msg.data == b"x"


def test_batch_callback_gets_whole_batches(conn: Connection, subject: str) -> None:
    got: list[tuple[bytes, bytes]] = []
    times: list[float] = []

    def on_batch(rows: list, t: float) -> None:
        got.extend((r[0], r[3]) for r in rows)
        times.append(t)

    sub = conn.subscribe(f"{subject}.>", batch_callback=on_batch, capture=False)
    for i in range(5000):
        conn.publish(f"{subject}.{i % 3}", str(i))
    conn.flush()
    assert wait_for(lambda: len(got) == 5000)
    assert [int(p) for _, p in got] == list(range(5000))
    assert got[1][0] == f"{subject}.1".encode()
    assert len(times) < 5000  # delivered in batches, not one call per message
    st = sub.stats
    assert st.delivered == 5000 and st.dropped == 0 and st.pending == 0
    with pytest.raises(BadInputError, match="instead of callback"):
        conn.subscribe(subject, callback=print, batch_callback=on_batch)


def test_slow_callback_drops_are_counted_exactly(conn: Connection, subject: str) -> None:
    gate = threading.Event()

    def slow(m: Msg) -> None:
        gate.wait(5)

    sub = conn.subscribe(subject, callback=slow, pending_msgs=100)
    for i in range(1000):
        conn.publish(subject, str(i))
    conn.flush()
    assert wait_for(lambda: sub.received == 1000)
    st = sub.stats
    # At most pending_msgs=100 rows in flight (queued or held by the blocked callback): the
    # other 900 are dropped, and counted, exactly.
    assert st.dropped == 900
    assert st.delivered == 0
    assert st.received == st.delivered + st.pending + st.dropped
    assert st.stored == 1000  # the capture keeps everything regardless of the callback
    gate.set()
    assert sub.wait_pending(5)
    st = sub.stats
    assert (st.delivered, st.dropped, st.pending) == (100, 900, 0)
