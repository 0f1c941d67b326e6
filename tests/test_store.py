"""The capture store: bounds, eviction counters, spill, decode modes, concurrency, replay."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import natsbook
from natsbook import Connection, LocalServer
from natsbook.capture._frames import to_frame
from natsbook.capture._store import CaptureStore


def rows(n: int, start: int = 0, subject: bytes = b"s") -> list:
    return [(subject, None, None, b'{"i":%d}' % i) for i in range(start, start + n)]


def test_max_rows_evicts_oldest_and_counts() -> None:
    store = CaptureStore(max_rows=1000, max_bytes=None, seal_rows=100)
    for k in range(25):
        store.append(rows(100, k * 100))
    st = store.stats
    assert st.received == 2500
    assert st.stored == 1000 and st.evicted == 1500
    assert st.received == st.stored + st.evicted
    df = to_frame(store.table(), "json")
    assert list(df["i"]) == list(range(1500, 2500))


def test_max_bytes_bound() -> None:
    store = CaptureStore(max_bytes=200_000, seal_rows=500)
    payload = b"x" * 100
    for _ in range(100):
        store.append([(b"s", None, None, payload)] * 500)
    st = store.stats
    assert st.received == 50_000
    assert st.bytes <= 200_000 + 500 * 200  # at most one open batch over
    assert st.received == st.stored + st.evicted
    assert st.evicted > 0


def test_default_bound_is_documented_and_finite() -> None:
    assert CaptureStore().max_bytes == natsbook.capture.DEFAULT_MAX_BYTES == 256 * 1024 * 1024


def test_spill_round_trip(conn: Connection, subject: str, tmp_path: Path) -> None:
    sub = conn.subscribe(f"{subject}.>", spill=tmp_path / "spill")
    for i in range(300_000):
        conn.publish(f"{subject}.{i % 7}", b'{"i":%d,"v":%d.5}' % (i, i))
    conn.flush(30)
    st = sub.stats
    assert st.received == 300_000 and st.spilled >= 262_144 and st.evicted == 0
    live = sub.to_pandas("json")
    assert list(live["i"][:3]) == [0, 1, 2] and len(live) == 300_000
    sub.store.flush_spill()
    back = natsbook.read_capture(tmp_path / "spill", "json")
    pd.testing.assert_frame_equal(back, live)
    one = tmp_path / "one.parquet"
    sub.to_parquet(one)
    pd.testing.assert_frame_equal(natsbook.read_capture(one, "json"), live)
    pd.testing.assert_frame_equal(
        natsbook.read_capture(one, "text", last=10, subject=f"{subject}.3"),
        sub.to_pandas("text", last=10, subject=f"{subject}.3"))


def test_decode_modes_on_mixed_payloads(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    payloads = [b'{"temp": 21.5, "meta": {"site": "a", "ok": true}, "subject": "clash"}',
                b'{"temp": 22.0, "extra": [1, 2]}', b"[1, 2, 3]", b"{broken", b"\xff\xfe\x00",
                b"", b"plain text"]
    for p in payloads:
        conn.publish(subject, p)
    conn.flush()
    js = sub.to_pandas("json")
    assert list(js.columns[:6]) == ["time", "subject", "reply", "headers", "size", "temp"]
    assert js["temp"].iloc[:2].tolist() == [21.5, 22.0] and js["temp"].iloc[2:].isna().all()
    assert js["meta.site"].iloc[0] == "a" and bool(js["meta.ok"].iloc[0]) is True
    assert js["data.subject"].iloc[0] == "clash"  # clashing key prefixed
    assert (js["subject"] == subject).all()
    assert js["json_error"].tolist() == [False, False, False, True, True, False, True]
    assert js["data"].iloc[2] == [1, 2, 3]
    assert js["size"].tolist() == [len(p) for p in payloads]
    with pytest.raises(natsbook.errors.BadInputError, match="decode"):
        sub.to_pandas("yaml")
    txt = sub.to_pandas("text")
    assert txt["data"].iloc[6] == "plain text" and "\ufffd" in txt["data"].iloc[4]
    raw = sub.to_pandas("bytes")
    assert raw["data"].tolist() == payloads
    # auto: at least half JSON objects -> json; else UTF-8 -> text; else bytes
    assert sub.to_pandas()["data"].tolist() == payloads  # 2 of 6 objects, one non-UTF-8
    j2 = conn.subscribe(f"{subject}.j")
    for p in (b'{"x":1}', b'{"x":2}', b'{"x":3', b"oops"):
        conn.publish(f"{subject}.j", p)
    t2 = conn.subscribe(f"{subject}.t")
    for p in (b"a", b"b", b'{"x":1}'):
        conn.publish(f"{subject}.t", p)
    b2 = conn.subscribe(f"{subject}.b")
    for p in (b"\xff\x00", b"ok"):
        conn.publish(f"{subject}.b", p)
    conn.flush()
    auto = j2.to_pandas()
    assert auto["x"].tolist()[:2] == [1, 2] and auto["json_error"].tolist() == [0, 0, 1, 1]
    assert t2.to_pandas()["data"].tolist() == ["a", "b", '{"x":1}']
    assert b2.to_pandas()["data"].tolist() == [b"\xff\x00", b"ok"]


def test_json_with_conflicting_types_falls_back(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    conn.publish(subject, {"v": 1})
    conn.publish(subject, {"v": "one"})
    conn.publish(subject, {"v": {"nested": 2}})
    conn.flush()
    df = sub.to_pandas("json")
    assert len(df) == 3 and df["v"].iloc[0] == 1 and df["v"].iloc[1] == "one"
    assert df["v.nested"].iloc[2] == 2


def test_filters(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(f"{subject}.>")
    for i in range(10):
        conn.publish(f"{subject}.a.{i % 2}", str(i))
    conn.flush()
    mid = pd.Timestamp.now(tz="UTC")
    time.sleep(0.01)
    conn.publish(f"{subject}.b", "late")
    conn.flush()
    assert sub.to_pandas("text", subject=f"{subject}.a.1")["data"].tolist() == \
        ["1", "3", "5", "7", "9"]
    assert sub.to_pandas("text", last=2)["data"].tolist() == ["9", "late"]
    assert sub.to_pandas("text", since=mid)["data"].tolist() == ["late"]
    assert sub.to_pandas("text", since=mid.tz_convert(None))["data"].tolist() == ["late"]
    assert len(sub.to_pandas(subject="nothing.here")) == 0


def test_empty_capture_frame(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    df = sub.to_pandas()
    assert df.empty and list(df.columns[:5]) == ["time", "subject", "reply", "headers", "size"]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"


def test_time_column_is_receive_time_utc(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(subject)
    before = pd.Timestamp.now(tz="UTC")
    conn.publish(subject, b"x")
    conn.flush()
    after = pd.Timestamp.now(tz="UTC")
    t = sub.to_pandas()["time"].iloc[0]
    assert before <= t <= after


def test_concurrent_to_pandas_while_capturing(server: LocalServer, subject: str) -> None:
    cap = natsbook.connect(server.url)
    pub = natsbook.connect(server.url)
    try:
        sub = cap.subscribe(subject, max_rows=50_000)
        stop = threading.Event()
        errors: list[BaseException] = []

        def publisher() -> None:
            i = 0
            while not stop.is_set() and i < 400_000:
                pub.publish(subject, b'{"i":%d,"pad":"%s"}' % (i, b"y" * (i % 13)))
                i += 1

        t = threading.Thread(target=publisher)
        t.start()
        frames = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                df = sub.to_pandas("json")
            except BaseException as exc:
                errors.append(exc)
                break
            if len(df):
                i = df["i"].to_numpy()
                # no torn rows: consecutive, every row decodes, sizes match payloads
                assert np.all(np.diff(i) == 1)
                assert not df["json_error"].any()
                assert len(df) <= 50_000 + 8192
                frames += 1
        stop.set()
        t.join(10)
        assert not errors and frames > 0
        pub.flush()
        cap.flush()
        st = sub.stats
        assert st.received == st.stored + st.evicted
    finally:
        cap.close()
        pub.close()


def test_connection_to_pandas_over_all_captures(conn: Connection, subject: str) -> None:
    a = conn.subscribe(f"{subject}.a")
    conn.subscribe(f"{subject}.b")
    conn.publish(f"{subject}.a", {"x": 1})
    conn.publish(f"{subject}.b", {"x": 2})
    conn.flush()
    a.unsubscribe()  # finished captures still count
    df = conn.to_pandas("json", subject=f"{subject}.*")
    assert df["x"].tolist() == [1, 2]
    assert df["sub"].tolist() == [f"{subject}.a", f"{subject}.b"]


def test_replay_round_trip(conn: Connection, subject: str) -> None:
    src = conn.subscribe(f"{subject}.src.>")
    for i in range(200):
        conn.publish(f"{subject}.src.{i % 3}", {"i": i, "m": {"t": i / 2}, "s": f"v{i}"},
                     headers={"K": ["a", str(i)]} if i % 50 == 0 else None)
    conn.flush()
    original = src.to_pandas("json")
    dst = conn.subscribe(f"{subject}.dst")
    n = conn.publish_frame(original, subject=f"{subject}.dst")
    assert n == 200
    conn.flush()
    replayed = dst.to_pandas("json")
    cols = [c for c in original.columns if c not in ("time", "subject")]
    pd.testing.assert_frame_equal(replayed[cols], original[cols])
    # raw bytes replay by column keeps payloads byte-identical
    raw = src.to_pandas("bytes")
    dst2 = conn.subscribe(f"{subject}.raw.>")
    raw["subject"] = raw["subject"].str.replace(".src.", ".raw.")
    conn.publish_frame(raw)
    conn.flush()
    again = dst2.to_pandas("bytes")
    assert again["data"].tolist() == raw["data"].tolist()
    assert again["subject"].tolist() == raw["subject"].tolist()


def test_replay_rate_and_errors(conn: Connection, subject: str) -> None:
    df = pd.DataFrame({"v": [1, 2, 3]})
    with pytest.raises(natsbook.errors.BadInputError, match="subject"):
        conn.publish_frame(df)
    sub = conn.subscribe(subject)
    assert conn.publish_frame(df, subject=subject, rate=200) == 3
    conn.flush()
    assert sub.to_pandas("json")["v"].tolist() == [1, 2, 3]
    times = sub.to_pandas()["time"]
    assert times.iloc[-1] - times.iloc[0] >= pd.Timedelta(milliseconds=5)


def test_connection_budget_bounds_all_captures_together(server: LocalServer,
                                                        subject: str) -> None:
    """Two captures and a finished one share a 3 MB budget: the oldest rows go first, counted,
    and the newest rows of the active capture are kept."""
    with natsbook.connect(server.url, capture_budget=3_000_000) as c:
        old = c.subscribe(f"{subject}.old")
        for _ in range(20_000):
            c.publish(f"{subject}.old", b"o" * 100)
        c.flush()
        old.unsubscribe()  # finished, but still holding data
        a = c.subscribe(f"{subject}.a")
        b = c.subscribe(f"{subject}.b")
        for i in range(60_000):
            c.publish(f"{subject}.a", b'{"i":%d,"pad":"%s"}' % (i, b"a" * 80))
            c.publish(f"{subject}.b", b"b" * 100)
        c.flush()
        for s in (a, b):
            s.to_pandas()  # seal what is open
        used = c.capture_budget.used
        assert used <= 3_000_000 + 3 * 8192 * 200  # bound + at most one open batch each
        assert old.stats.stored == 0 and old.stats.evicted == 20_000  # oldest went first
        for s in (a, b, old):
            st = s.stats
            assert st.received == st.stored + st.evicted
        assert a.stats.evicted > 0 and b.stats.evicted > 0
        newest = a.to_pandas("json")["i"]
        assert newest.iloc[-1] == 59_999 and (newest.diff().dropna() == 1).all()
