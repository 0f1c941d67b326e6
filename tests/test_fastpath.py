"""The request/publish fast paths keep the guarantees: subject checks agree with the full
check, and frames sent from the caller's thread never overtake or split queued ones."""

from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import natsbook
from natsbook import LocalServer
from natsbook.errors import BadSubjectError
from natsbook.wire._subjects import _check_publish_full, check_publish

_ALPHABET = st.sampled_from([*"ab.Z09_-$:*> \t\r\n\x00é.", "\u2028"])


def _outcome(check: object, subject: object) -> object:
    try:
        return ("ok", check(subject))  # type: ignore[operator]
    except BadSubjectError as exc:
        return ("error", str(exc))


@given(st.one_of(st.text(_ALPHABET, max_size=12), st.text(max_size=12),
                 st.text(_ALPHABET, min_size=4090, max_size=4100)))
def test_check_publish_fast_path_agrees_with_full_check(subject: str) -> None:
    assert _outcome(check_publish, subject) == _outcome(_check_publish_full, subject)


def test_check_publish_refuses_non_str() -> None:
    assert _outcome(check_publish, b"a.b")[0] == "error"
    assert _outcome(check_publish, None)[0] == "error"


def test_direct_sends_keep_order_with_queued_publishes(server: LocalServer,
                                                       subject: str) -> None:
    """One thread publishes numbered messages (through the I/O thread's queue) while another
    makes requests with payloads big enough to be sent in parts (the caller's direct send
    leaves the rest half-sent): every publish arrives once, in order, and every reply
    matches its request."""
    conn = natsbook.connect(server.url)
    echo = natsbook.connect(server.url)
    # A small send buffer: a big request is taken in parts, so the caller's direct send
    # leaves the rest to the I/O thread (the path under test).
    assert conn._engine._sock is not None
    conn._engine._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    try:
        echo.serve(f"{subject}.echo", lambda m: str(len(m.data)) + m.data[:8].decode())
        seen = echo.subscribe(f"{subject}.seq")
        errors: list[str] = []

        def publisher() -> None:
            for i in range(20_000):
                conn.publish(f"{subject}.seq", str(i).encode())
                if i % 5000 == 0:
                    conn.flush()

        t = threading.Thread(target=publisher)
        t.start()
        for k in range(12):
            size = 900_000 if k % 2 else 10
            body = f"{k:08d}".encode() + b"x" * (size - 8)
            reply = conn.request(f"{subject}.echo", body, timeout=20.0)
            if reply.data != f"{len(body)}{k:08d}".encode():
                errors.append(f"request {k}: {reply.data[:20]!r}")
        t.join(60)
        conn.flush()
        echo.flush()
        got = [int(row) for row in seen.to_pandas(decode="text")["data"]]
        assert not errors
        assert got == list(range(20_000))
    finally:
        conn.close()
        echo.close()


def test_publish_head_cache_checks_every_new_subject_and_stays_bounded(
        server: LocalServer) -> None:
    """A publish loop keeps each valid subject's "PUB <subject> " after checking it once; bad
    subjects are refused every time (never cached), the payload limit is still checked on a
    cached subject, the frames arrive intact, and the cache never passes its bound."""
    from natsbook.core import _publishing
    from natsbook.errors import MaxPayloadError

    with natsbook.connect(server.url) as conn:
        sub = conn.subscribe("fp.>")
        for i in range(3):
            conn.publish("fp.a", b"%d" % i)
            with pytest.raises(BadSubjectError):
                conn.publish("fp.*", b"x")
            with pytest.raises(BadSubjectError):  # not a str: refused, not looked up
                conn.publish(["fp.a"], b"x")  # type: ignore[arg-type]
        assert _publishing._PUB_HEADS["fp.a"] == b"PUB fp.a "
        assert "fp.*" not in _publishing._PUB_HEADS
        with pytest.raises(MaxPayloadError):
            conn.publish("fp.a", b"x" * (conn.max_payload + 1))
        for i in range(_publishing._PUB_HEADS_MAX + 10):
            conn.publish(f"fp.n{i}", b"")
            assert len(_publishing._PUB_HEADS) <= _publishing._PUB_HEADS_MAX
        conn.flush()
        assert sub.received == _publishing._PUB_HEADS_MAX + 13  # flush is a barrier
        df = sub.to_pandas(decode="bytes")
        assert df["data"].iloc[:3].tolist() == [b"0", b"1", b"2"]
        assert df["subject"].iloc[-1] == f"fp.n{_publishing._PUB_HEADS_MAX + 9}"
