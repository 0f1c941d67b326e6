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
from typing import Any

import pandas as pd
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
    assert st.bad_headers == 1
    assert any("NATS/1.0" in text for text in sub.errors)


#: The issue's bad publish: a 7-byte header block that is not NATS/1.0, and no payload.
BAD_HPUB = b"HPUB %b 7 7\r\nXYZ\r\n\r\n\r\n"


def test_malformed_header_block_is_one_flagged_row_in_every_reader(
        conn: natsbook.Connection, peer: RawPeer, subject: str, tmp_path: Path) -> None:
    """One client publishing a header block that is not NATS/1.0 through a real server: the
    capture keeps it as a row (headers None, the reason in header_error, the raw block in
    the capture), counts it, and every reader of the capture still works."""
    sub = conn.subscribe(f"{subject}.>", spill=tmp_path / "spill")
    cb_seen: list[bytes] = []
    cb = conn.subscribe(f"{subject}.>", callback=lambda m: cb_seen.append(m.data),
                        capture=False)
    good = b'NATS/1.0\r\nK: v\r\n\r\n'
    peer.send(b"PUB %b.ok 8\r\n{\"i\": 0}\r\n" % subject.encode())
    peer.send(BAD_HPUB % f"{subject}.bad".encode())
    peer.send(b"HPUB %b.ok %d %d\r\n%b{\"i\": 2}\r\n"
              % (subject.encode(), len(good), len(good) + 8, good))
    peer.send(BAD_HPUB % f"{subject}.bad".encode())  # the newest row is a bad one
    wait_for(lambda: sub.received == 4 and cb.stats.delivered == 4, what="all four")
    assert sub.stats.bad_headers == 2 and cb.stats.bad_headers == 2
    assert cb_seen == [b'{"i": 0}', b'{"i": 2}'] and cb.stats.callback_errors == 2

    reason = "header block does not start with NATS/1.0: 'XYZ'"
    for decode in ("auto", "json", "text", "bytes"):
        df = sub.to_pandas(decode)
        assert len(df) == 4, decode
        assert list(df.columns[:6]) == ["time", "subject", "reply", "headers", "header_error",
                                        "size"]
        assert df["header_error"].isna().tolist() == [True, False, True, False]
        assert df["header_error"].iloc[1] == reason
        assert df["headers"].tolist() == [None, None, {"K": ["v"]}, None]
        assert df["size"].tolist() == [8, 0, 8, 0]
    js = sub.to_pandas("json")
    assert js["i"].iloc[0] == 0 and js["i"].iloc[2] == 2
    assert js["json_error"].tolist() == [False] * 4  # empty payloads are not JSON errors
    assert sub.to_pandas("json", last=1)["header_error"].tolist() == [reason]
    assert "header_error" not in sub.to_pandas("json", last=2).iloc[:1].dropna(axis=1).columns

    every = conn.to_pandas("text")
    assert len(every) == 4 and every["header_error"].notna().sum() == 2

    msgs = sub.messages()
    assert [m.header_error for m in msgs] == [None, reason, None, reason]
    assert msgs[1].headers is None and msgs[1].data == b"" and msgs[2].headers["K"] == "v"
    last = sub.last_msg
    assert last is not None and last.header_error == reason and last.headers is None

    # The raw block is kept: Arrow, SQL and the spilled parts hold it as it came.
    assert sub.to_arrow()["headers"].to_pylist()[1] == b"XYZ\r\n\r\n"
    raw = sub.sql("SELECT headers FROM messages WHERE subject LIKE '%.bad'")
    assert raw["headers"].tolist() == ["XYZ\r\n\r\n"] * 2

    # A live view's frame is built by the same code.
    from natsbook.capture._live import Refresher

    results: list[Any] = []
    errors: list[str] = []
    ref = Refresher(lambda: [sub], lambda: not sub.active, sub.sql,
                    lambda df: df["header_error"].notna().sum(), every=0.1,
                    on_result=results.append, on_error=errors.append).start()
    wait_for(lambda: results or errors, what="a render")
    ref.stop()
    assert errors == [] and results[0] == 2

    # Replay refuses to send a bad row back as if its headers were fine; without them it goes.
    with pytest.raises(BadInputError, match="row 1 has a header_error"):
        conn.publish_frame(sub.to_pandas("bytes"), subject=f"{subject}_replay")
    back = conn.subscribe(f"{subject}_replay")
    ok = sub.to_pandas("bytes")
    assert conn.publish_frame(ok[ok["header_error"].isna()], subject=f"{subject}_replay") == 2
    wait_for(lambda: back.received == 2, what="the replayed rows")
    assert back.to_pandas("json")["i"].tolist() == [0, 2]

    # Spilled and read back: the same frame.
    sub.unsubscribe()
    frame = sub.to_pandas("json")
    pd.testing.assert_frame_equal(natsbook.read_capture(tmp_path / "spill", "json"), frame)
    assert natsbook.sql("SELECT count(*) AS n FROM messages", tmp_path / "spill")["n"][0] == 4

    # Reported once (a row, not a connection problem), and the connection never dropped.
    assert any(reason in text for _, text in conn.errors)
    assert any(reason in text for text in sub.errors)
    assert conn.status == "connected" and conn.gaps().empty
    assert conn.stats["reconnects"] == 0


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
        wait_for(lambda: not conn._engine._thread.is_alive(), what="I/O thread end")  # type: ignore[union-attr]
        assert conn.status == "closed" and conn._engine._wake_r == -1
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


#: Status codes that pass str.isdigit() but that int() refuses (a superscript two; more digits
#: than int() converts), and a 4-digit one: each is a description, never an exception.
ODD_STATUSES = ["²".encode(), b"9" * 5000, b"1234"]


@pytest.mark.parametrize("status", ODD_STATUSES, ids=["superscript", "5000-digits", "4-digits"])
def test_odd_header_status_is_a_description_in_every_reader(
        conn: natsbook.Connection, peer: RawPeer, subject: str, status: bytes,
        tmp_path: Path) -> None:
    sub = conn.subscribe(f"{subject}.>", spill=tmp_path / "spill")
    seen: list[natsbook.Msg] = []
    cb = conn.subscribe(f"{subject}.>", callback=seen.append)
    hdr = b"NATS/1.0 " + status + b"\r\nK: v\r\n\r\n"
    peer.send(b"HPUB %b.odd %d %d\r\n%bhi\r\n" % (subject.encode(), len(hdr), len(hdr) + 2,
                                                 hdr))
    peer.send(b"PUB %b.ok 2\r\nok\r\n" % subject.encode())
    conn.flush()
    assert wait_for(lambda: sub.received == 2 and len(seen) == 2)
    for decode in ("auto", "json", "text", "bytes"):
        assert len(sub.to_pandas(decode=decode)) == 2  # type: ignore[arg-type]
    assert len(conn.to_pandas()) >= 2
    odd = sub.messages(2)[0]
    assert odd.data == b"hi" and odd.headers is not None and odd.headers["K"] == "v"
    assert odd.status is None and seen[0].status is None
    assert cb.stats.callback_errors == 0
    sub.unsubscribe()
    assert len(natsbook.read_capture(tmp_path / "spill")) == 2
    assert conn.stats["reconnects"] == 0


@pytest.mark.parametrize("status", ODD_STATUSES, ids=["superscript", "5000-digits", "4-digits"])
def test_odd_reply_status_and_service_code_never_kill_the_io_thread(
        conn: natsbook.Connection, server: natsbook.LocalServer, subject: str,
        status: bytes) -> None:
    """A responder (anyone who can publish to our inbox) answers with an odd status line and
    an odd Nats-Service-Error-Code: request() and request_batch() get an answer or a natsbook
    error; the connection never drops."""
    responder = RawPeer(server.url)
    try:
        responder.send(b"SUB %b 1\r\n" % subject.encode())
        stop = threading.Event()

        def answer() -> None:
            data = b""
            responder.sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    data += responder.sock.recv(65536)
                except TimeoutError:
                    continue
                while b"\r\n" in data:
                    line, _, data = data.partition(b"\r\n")
                    if not line.startswith(b"MSG "):
                        continue
                    reply = line.split()[3]
                    size = int(line.split()[-1])
                    while len(data) < size + 2:
                        data += responder.sock.recv(65536)
                    data = data[size + 2:]
                    hdr = (b"NATS/1.0 " + status + b"\r\nNats-Service-Error: boom\r\n"
                           b"Nats-Service-Error-Code: " + "²".encode() + b"\r\n\r\n")
                    responder.sock.sendall(b"HPUB %b %d %d\r\n%b\r\n"
                                           % (reply, len(hdr), len(hdr), hdr))

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        with pytest.raises(natsbook.NatsbookError) as raised:
            conn.request(subject, b"hi", timeout=5)
        assert getattr(raised.value, "code", None) == 500
        df = conn.request_batch(subject, [b"a", b"b"], timeout=5)
        assert list(df["error"]) == ["ServiceError"] * 2
        assert df["error_code"].tolist() == [500, 500]
        stop.set()
        t.join(5)
        assert conn.status == "connected" and conn.gaps().empty
        assert conn.stats["reconnects"] == 0
    finally:
        responder.close()
