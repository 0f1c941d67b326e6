"""Other clients on a real server sending what the server forwards but natsbook must survive:
subjects that are not UTF-8, header blocks that are not NATS/1.0, broken replies. Plus the
close() / reconnect race, bad seeds, and spill bounds (found in review)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import natsbook
from natsbook.capture._store import CaptureBudget, CaptureStore
from natsbook.errors import BadInputError, ConnectionClosedError, ProtocolError
from tests.support.waiting import wait_for


class RawPeer:
    """A bare NATS client over a socket: sends exactly the bytes a test gives it."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("nats://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.recv(65536)  # INFO
        self.send(b'CONNECT {"verbose":false,"headers":true}\r\n')

    def send(self, data: bytes) -> None:
        self.sock.sendall(data + b"PING\r\n")
        buf = b""
        while b"PONG" not in buf:
            buf += self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peer(server: natsbook.LocalServer) -> Iterator[RawPeer]:
    p = RawPeer(server.url)
    yield p
    p.close()


def test_subject_that_is_not_utf8_is_captured_not_fatal(conn: natsbook.Connection,
                                                        peer: RawPeer, subject: str) -> None:
    sub = conn.subscribe(f"{subject}.>")
    peer.send(b"PUB %b.\xff\xfe 3\r\nbad\r\n" % subject.encode())
    peer.send(b"PUB %b.ok 2\r\nok\r\n" % subject.encode() * 9000)  # past a seal
    wait_for(lambda: sub.received == 9001, what="all rows")
    df = sub.to_pandas("text")
    assert df["subject"].iloc[0] == f"{subject}.\ufffd\ufffd" and df["data"].iloc[0] == "bad"
    assert len(df) == 9001
    assert conn.status == "connected" and conn.flush(5) >= 0
    assert conn.gaps().empty


def test_malformed_header_block_is_a_callback_error(conn: natsbook.Connection, peer: RawPeer,
                                                    subject: str) -> None:
    seen: list[bytes] = []
    sub = conn.subscribe(subject, callback=lambda m: seen.append(m.data))
    hdr = b"XYZ\r\n\r\n"
    peer.send(b"HPUB %b %d %d\r\n%b\r\n" % (subject.encode(), len(hdr), len(hdr), hdr))
    peer.send(b"PUB %b 2\r\nok\r\n" % subject.encode())
    wait_for(lambda: seen == [b"ok"], what="the good message after the bad one")
    st = sub.stats
    assert st.callback_errors == 1 and st.received == st.delivered == 2
    assert any("NATS/1.0" in text for text in sub.errors)


def test_broken_reply_fails_the_request_not_the_connection(conn: natsbook.Connection,
                                                           server: natsbook.LocalServer,
                                                           subject: str) -> None:
    responder = RawPeer(server.url)
    try:
        responder.send(b"SUB %b 1\r\n" % subject.encode())

        def answer() -> None:
            data = b""
            while b"\r\n" not in data:
                data += responder.sock.recv(4096)
            reply = data.split(b"\r\n")[0].split()[3]
            hdr = b"HTTP/1.1 200\r\n\r\n"
            responder.sock.sendall(b"HPUB %b %d %d\r\n%b\r\n" % (reply, len(hdr), len(hdr), hdr))

        t = threading.Thread(target=answer)
        t.start()
        with pytest.raises(ProtocolError, match="malformed"):
            conn.request(subject, b"hi", timeout=5)
        t.join(5)
        assert conn.status == "connected" and conn.gaps().empty
        assert conn.stats["reconnects"] == 0
    finally:
        responder.close()


def test_close_during_a_reconnect_handshake_stays_closed() -> None:
    """close() returns while the I/O thread is still inside a (slow) reconnect handshake; that
    handshake must not bring the connection back to life, and the pipe is closed once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    info = b'INFO {"server_id":"fake","max_payload":1048576}\r\n'
    accepted: list[socket.socket] = []

    def serve(c: socket.socket, delay: float) -> None:
        time.sleep(delay)
        try:
            c.sendall(info)
            while data := c.recv(65536):
                c.sendall(b"PONG\r\n" * data.count(b"PING"))
        except OSError:
            pass

    def acceptor() -> None:
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            accepted.append(c)
            threading.Thread(target=serve, args=(c, 0 if len(accepted) == 1 else 1.5),
                             daemon=True).start()

    threading.Thread(target=acceptor, daemon=True).start()
    try:
        conn = natsbook.connect(f"nats://127.0.0.1:{port}", connect_timeout=10)
        accepted[0].shutdown(socket.SHUT_RDWR)
        wait_for(lambda: conn.status == "reconnecting", what="reconnecting")
        time.sleep(0.2)  # inside the slow handshake now
        conn.close(timeout=0.2)
        assert conn.status == "closed"
        wait_for(lambda: not conn._thread.is_alive(), what="I/O thread end")  # type: ignore[union-attr]
        assert conn.status == "closed" and conn._wake_r == -1
        with pytest.raises(ConnectionClosedError):
            conn.publish("a", b"x")
    finally:
        listener.close()
        for c in accepted:
            c.close()


def test_invalid_nkey_seed_fails_before_any_socket() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(BadInputError, match="not valid") as exc:
            natsbook.connect("nats://127.0.0.1:1", nkey_seed="SU" + "1" * 56)
        assert "1111" not in str(exc.value)
    assert len(os.listdir("/proc/self/fd")) <= before


def test_spill_keeps_memory_within_max_bytes_and_budget_spills(tmp_path: Path) -> None:
    budget = CaptureBudget(50 * 2**20)
    store = CaptureStore(spill=tmp_path, max_bytes=10 * 2**20, budget=budget, seal_rows=64)
    row = (b"a.b", None, None, b"x" * 100_000)
    for _ in range(20):
        store.append([row] * 64)
    st = store.stats
    assert st.evicted == 0 and st.stored == st.received == 1280
    assert st.bytes <= 10 * 2**20 + 64 * 100_200
    other = CaptureStore(spill=tmp_path / "b", max_bytes=None, budget=budget, seal_rows=64)
    for _ in range(20):
        other.append([row] * 64)
    assert other.stats.evicted == 0 and budget.used <= 50 * 2**20
    assert natsbook.read_capture(tmp_path / "b").shape[0] + other.stats.in_memory == 1280


def test_late_messages_are_counted(conn: natsbook.Connection, subject: str) -> None:
    """Rows the reader hands over after the subscription ended (over-delivery past max_msgs,
    or in flight during unsubscribe) are counted in `late`, not silently discarded."""
    sub = conn.subscribe(subject, max_msgs=3)
    rows = [(subject.encode(), None, None, b"%d" % i) for i in range(5)]
    now = time.time()
    assert sub._deliver(rows, now, int(now * 1e9)) is False  # as the reader would
    st = sub.stats
    assert (st.received, st.stored, st.late) == (3, 3, 2)
    assert sub._deliver(rows[:2], now, int(now * 1e9)) is False
    assert sub.stats.late == 4 and sub.stats.received == 3
