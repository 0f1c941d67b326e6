"""Server kill -9 / restart and SIGSTOP / SIGCONT during a capture: nothing is lost silently."""

from __future__ import annotations

import signal
import time

import pytest

import natsbook
from natsbook import LocalServer
from natsbook.errors import NotConnectedError

from .helpers import Publisher, wait_for


def _numbers(sub: natsbook.Subscription) -> list[int]:
    frame = sub.to_pandas(decode="json")
    return [int(n) for n in frame["n"]] if len(frame) else []


def _gap_windows(*conns: natsbook.Connection) -> list[tuple[float, float]]:
    out = []
    for c in conns:
        g = c.gaps()
        for start, end in zip(g["start"], g["end"], strict=True):
            out.append((start.timestamp(), end.timestamp() if end == end else time.time()))
    return out


@pytest.mark.slow
def test_kill9_restart_mid_capture(own_server: LocalServer, subject: str) -> None:
    conn = natsbook.connect(own_server.url, name="capture", reconnect_wait=0.02)
    pub: Publisher | None = None
    try:
        sub = conn.subscribe(subject)
        pub = Publisher(own_server.url, subject, rate=200)
        pub.start()
        wait_for(lambda: len(sub) >= 100, timeout=10)
        pub.conn.flush(5)
        conn.flush(5)
        before = _numbers(sub)
        assert before == list(range(len(before))), "rows before the kill are in order, no hole"

        own_server.kill()
        wait_for(lambda: conn.status == "reconnecting", timeout=5)
        time.sleep(0.3)  # the publisher keeps publishing into its reconnect buffer
        own_server.start()
        back = time.monotonic()
        wait_for(lambda: conn.status == "connected" and pub.conn.status == "connected",
                 timeout=3)
        reconnect_after = time.monotonic() - back
        assert reconnect_after < 2.0, f"reconnect took {reconnect_after:.2f}s after restart"

        # Subscriptions restored: new messages keep arriving after the reconnect.
        seen = len(sub)
        wait_for(lambda: len(sub) >= seen + 100, timeout=10)
        pub.finish()
        conn.flush(5)
        time.sleep(0.05)

        after = _numbers(sub)
        assert after[: len(before)] == before, "rows captured before the kill are intact"
        assert sub.stats.received == len(after) == sub.stats.stored
        assert not pub.other, pub.other

        # The gap is recorded on the connection and on the subscription.
        gaps = conn.gaps()
        assert len(gaps) == 1
        assert gaps["end"].notna().all()
        assert own_server.url in gaps["server"].iloc[0]
        assert len(sub.gaps()) == 1
        assert conn.stats["reconnects"] == 1

        # Whatever is missing was published inside a recorded gap (of either connection),
        # never while both were connected.
        missing = sorted(set(pub.accepted) - set(after))
        assert len(after) == len(set(after)), "no duplicates"
        windows = _gap_windows(conn, pub.conn)
        lo = min(w[0] for w in windows) - 0.5  # in flight when the server died
        hi = max(w[1] for w in windows) + 0.5  # the other side's resubscribe not yet in
        outside = [i for i in missing if not lo <= pub.sent_at[i] <= hi]
        assert not outside, f"lost while both sides were connected: {outside[:20]}"
        assert len(missing) < 0.5 * len(pub.accepted)
    finally:
        if pub is not None and pub.is_alive():
            pub.abort()
        conn.close()


def test_publishes_while_disconnected_buffered_or_refused(own_server: LocalServer,
                                                          subject: str) -> None:
    # A small buffer: part of what is published while the server is down is refused.
    conn = natsbook.connect(own_server.url, reconnect_wait=0.02, reconnect_buffer_size=4096)
    try:
        sub = conn.subscribe(subject)
        conn.publish(subject, {"n": -1})
        conn.flush()
        own_server.kill()
        wait_for(lambda: conn.status == "reconnecting", timeout=5)
        accepted, refused = [], []
        for i in range(200):
            try:
                conn.publish(subject, {"n": i, "pad": "x" * 20})
                accepted.append(i)
            except NotConnectedError as exc:
                assert "reconnect buffer is full" in str(exc)
                refused.append(i)
        assert accepted and refused, "the 4 KiB buffer takes some and refuses the rest"
        assert accepted == list(range(len(accepted))), "the buffer keeps the oldest publishes"
        assert conn.stats["pending_bytes"] <= 4096

        own_server.start()
        conn.flush(5)
        wait_for(lambda: len(sub) >= 1 + len(accepted), timeout=5)
        assert _numbers(sub) == [-1, *accepted], "every accepted publish is delivered, in order"
        assert len(conn.gaps()) == 1
    finally:
        conn.close()


def test_sigstop_detected_and_recovered(own_server: LocalServer, subject: str) -> None:
    conn = natsbook.connect(own_server.url, ping_interval=0.5, max_outstanding_pings=2,
                            connect_timeout=1.0, reconnect_wait=0.02)
    try:
        sub = conn.subscribe(subject)
        conn.publish(subject, b"before")
        conn.flush()
        own_server.signal(signal.SIGSTOP)
        try:
            # 2 unanswered PINGs 0.5 s apart: detected within ~1.5 s; allow noise.
            wait_for(lambda: conn.status == "reconnecting", timeout=6)
            gaps = conn.gaps()
            assert len(gaps) == 1 and gaps["end"].isna().all()
            assert "stale" in gaps["reason"].iloc[0]
            assert any("stale" in text for _, text in conn.errors)
            # Still frozen: the connection stays down and says so.
            time.sleep(0.3)
            assert conn.status == "reconnecting"
        finally:
            own_server.signal(signal.SIGCONT)
        wait_for(lambda: conn.status == "connected", timeout=6)
        conn.publish(subject, b"after")
        conn.flush(5)
        wait_for(lambda: len(sub) >= 2, timeout=5)
        assert [m.data for m in sub.messages()] == [b"before", b"after"]
        gaps = conn.gaps()
        assert len(gaps) == 1 and gaps["end"].notna().all()
        assert len(sub.gaps()) == 1
    finally:
        conn.close()
