"""Server kill -9 and restart mid-capture: reconnect, subscriptions restored, gap recorded
(over TCP and over WebSocket)."""

from __future__ import annotations

import threading
import time

import pandas as pd

import natsbook
from natsbook import LocalServer
from tests.support.waiting import wait_for

#: Tests taking `fresh_url` run over TCP and WebSocket (conftest.pytest_generate_tests).
TRANSPORTS = ("tcp", "ws")


def test_kill_and_restart_mid_capture(fresh_server: LocalServer, fresh_url: str,
                                      subject: str) -> None:
    conn = natsbook.connect(fresh_url)
    try:
        sub = conn.subscribe(f"{subject}.>")
        limited = conn.subscribe(f"{subject}.lim", max_msgs=5)
        for i in range(3):
            conn.publish(f"{subject}.lim", str(i))
        for i in range(100):
            conn.publish(f"{subject}.before", str(i))
        conn.flush()
        before = sub.to_pandas("text")
        assert len(before) == 103

        fresh_server.kill()
        assert wait_for(lambda: conn.status == "reconnecting", 5)
        # Published while disconnected: kept in the reconnect buffer, sent on reconnect.
        conn.publish(f"{subject}.during", "buffered")
        fresh_server.start()
        assert wait_for(lambda: conn.status == "connected", 10)
        conn.flush()
        for i in range(5):
            conn.publish(f"{subject}.lim", f"after{i}")
        conn.publish(f"{subject}.after", "x")
        conn.flush()
        df = sub.to_pandas("text")
        assert df.iloc[:103].equals(before)  # rows captured before the kill are intact
        assert list(df["data"][103:]) == ["buffered", "after0", "after1", "after2",
                                          "after3", "after4", "x"]
        # max_msgs carried over: 3 before + 2 after
        assert wait_for(lambda: not limited.active, 5)
        assert list(limited.to_pandas("text")["data"]) == ["0", "1", "2", "after0", "after1"]
        gaps = conn.gaps()
        assert len(gaps) == 1
        assert gaps["end"].notna().all() and (gaps["duration"] > pd.Timedelta(0)).all()
        assert len(sub.gaps()) == 1
        assert conn.stats["reconnects"] == 1
    finally:
        conn.close()


def test_steady_publisher_across_restart_loses_nothing_after_reconnect(
        fresh_server: LocalServer, fresh_url: str, subject: str) -> None:
    """A steady stream from a second connection: every message after both reconnect arrives;
    anything missing falls inside the recorded gap."""
    cap = natsbook.connect(fresh_url)
    pub = natsbook.connect(fresh_url)
    stop = threading.Event()
    sent: list[int] = []

    def publisher() -> None:
        i = 0
        while not stop.is_set() and i < 5000:
            try:
                pub.publish(subject, {"i": i})
                sent.append(i)
            except natsbook.NatsbookError:
                pass
            i += 1
            time.sleep(0.001)

    try:
        sub = cap.subscribe(subject)
        t = threading.Thread(target=publisher)
        t.start()
        time.sleep(0.3)
        fresh_server.kill()
        time.sleep(0.3)
        fresh_server.start()
        assert wait_for(lambda: cap.status == "connected" and pub.status == "connected", 10)
        time.sleep(0.3)
        stop.set()
        t.join(10)
        pub.flush()
        cap.flush()
        got = list(sub.to_pandas("json")["i"])
        assert got == sorted(got)  # in order, no duplicates
        assert len(set(got)) == len(got)
        assert got[-1] == sent[-1]
        assert len(cap.gaps()) == 1
    finally:
        cap.close()
        pub.close()


def test_error_callback_runs_off_the_io_thread_and_may_use_the_connection(
        fresh_server: LocalServer, subject: str) -> None:
    """The callback flushes on the same connection: on the I/O thread, or under its lock,
    that would deadlock."""
    seen: list[tuple[str, str]] = []
    conn: natsbook.Connection | None = None

    def on_error(text: str) -> None:
        assert conn is not None
        if "reconnected" in text:
            conn.flush(5)
        seen.append((threading.current_thread().name, text))

    conn = natsbook.connect(fresh_server.url, error_callback=on_error)
    try:
        fresh_server.kill()
        fresh_server.start()
        assert wait_for(lambda: any("reconnected" in t for _, t in seen), 10)
        assert all(name == "natsbook-error-callback" for name, _ in seen)
        assert any("disconnected" in t for _, t in seen)
        conn.publish(subject, b"x")
        conn.flush(5)
    finally:
        conn.close()
