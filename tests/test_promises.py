"""Promises the README makes, each pinned at its boundary (issue 18).

Every test here was checked against the bug it is for: plant it, watch the test fail, revert.
The planted bug is named in each docstring, so the next person can repeat the check.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import trustme

import natsbook
from natsbook import Connection, LocalServer
from natsbook.errors import MaxPayloadError, ProtocolError, RequestTimeout, TLSError
from natsbook.wire._protocol import Parser
from tests.conftest import TestingShell
from tests.support.waiting import wait_for

# Generous upper bound for a 0.2 s timeout: the promise is "about 0.2 s", not "fast".
TIMEOUT = 0.2
TIMEOUT_BOUND = 1.5


# ------------------------------------------------------------------ 1. request timeout
def test_request_timeout_is_measured_by_the_clock(conn: Connection, subject: str) -> None:
    """Bug: request() waits far longer than `timeout` (e.g. ``left = timeout * 50``)."""
    conn.subscribe(f"{subject}.silent")  # listens, never answers: not "no responders"
    conn.flush()
    start = time.monotonic()
    with pytest.raises(RequestTimeout):
        conn.request(f"{subject}.silent", b"hi", timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT_BOUND


def test_nats_req_timeout_is_measured_by_the_clock(nats: TestingShell, conn: Connection,
                                                   subject: str) -> None:
    """Bug: %nats_req ignores --timeout (uses the 5 s default) or stretches it."""
    conn.subscribe(f"{subject}.silent")
    conn.flush()
    start = time.monotonic()
    with pytest.raises(natsbook.errors.RequestTimeout, match=r"within 0\.2s"):
        nats.run_cell(f"%nats_req {subject}.silent hi --timeout {TIMEOUT}")
    elapsed = time.monotonic() - start
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT_BOUND
    nats.run_cell(f"%config NatsMagics.timeout = {TIMEOUT}")
    start = time.monotonic()
    with pytest.raises(natsbook.errors.RequestTimeout, match=r"within 0\.2s"):
        nats.run_cell(f"%nats_req {subject}.silent hi")
    assert TIMEOUT * 0.9 <= time.monotonic() - start < TIMEOUT_BOUND


# ------------------------------------------------------------------ 2. UNSUB sid max
def test_max_msgs_unsub_tells_the_server_the_exact_limit(conn: Connection,
                                                         subject: str) -> None:
    """Bug: subscribe(max_msgs=3) sends ``UNSUB sid 4``: the server sends a 4th message the
    client must throw away (counted as late or as an unknown sid)."""
    sub = conn.subscribe(subject, max_msgs=3)
    for i in range(10):
        conn.publish(subject, str(i))
    conn.flush()
    assert wait_for(lambda: not sub.active, 5)
    assert sub.to_pandas("text")["data"].tolist() == ["0", "1", "2"]
    st = sub.stats
    assert st.received == 3 and st.late == 0
    assert conn.stats["unknown_sid_msgs"] == 0
    # The same through unsubscribe(max_msgs=) on a running subscription.
    sub2 = conn.subscribe(subject)
    conn.publish(subject, "a")
    conn.flush()
    sub2.unsubscribe(max_msgs=2)  # one more, then done
    for i in range(5):
        conn.publish(subject, f"b{i}")
    conn.flush()
    assert wait_for(lambda: not sub2.active, 5)
    assert sub2.to_pandas("text")["data"].tolist() == ["a", "b0"]
    assert sub2.stats.late == 0 and conn.stats["unknown_sid_msgs"] == 0


# ------------------------------------------------------------------ 3. remainder after reconnect
def test_max_msgs_remainder_is_resent_after_reconnect(fresh_server: LocalServer,
                                                     subject: str) -> None:
    """Bug: on reconnect the original ``max_msgs`` is sent again instead of the remainder:
    the new server then delivers more than the subscription wants."""
    conn = natsbook.connect(fresh_server.url, reconnect_wait=0.02)
    try:
        sub = conn.subscribe(subject, max_msgs=5)
        for i in range(3):
            conn.publish(subject, f"before{i}")
        conn.flush()
        assert sub.received == 3
        fresh_server.kill()
        assert wait_for(lambda: conn.status == "reconnecting", 5)
        fresh_server.start()
        assert wait_for(lambda: conn.status == "connected", 10)
        conn.flush()
        for i in range(6):
            conn.publish(subject, f"after{i}")
        conn.flush()
        assert wait_for(lambda: not sub.active, 5)
        assert sub.to_pandas("text")["data"].tolist() == [
            "before0", "before1", "before2", "after0", "after1"]
        assert sub.stats.late == 0
        assert conn.stats["unknown_sid_msgs"] == 0
        assert conn.stats["reconnects"] == 1
    finally:
        conn.close()


# ------------------------------------------------------------------ 4. keepalive
def test_healthy_connection_on_short_ping_interval_records_no_gap(server: LocalServer,
                                                                  subject: str) -> None:
    """Bug: a PONG does not reset the outstanding-ping count: after max_outstanding_pings
    intervals a healthy connection is declared stale and a gap is recorded."""
    interval = 0.05
    with natsbook.connect(server.url, ping_interval=interval, max_outstanding_pings=2) as c:
        sub = c.subscribe(subject)
        start = time.monotonic()
        # Ten intervals: five times what it takes the bug to declare the connection stale.
        while time.monotonic() - start < 10 * interval:
            c.publish(subject, b"x")
            time.sleep(interval / 2)
        c.flush()
        assert c.status == "connected"
        assert c.gaps().empty, c.gaps()
        assert c.stats["reconnects"] == 0
        assert not [e for _, e in c.errors if "stale" in e or "disconnected" in e]
        assert sub.stats.received == c.stats["out_msgs"]


# ------------------------------------------------------------------ 5. TLS hostname
@pytest.fixture(scope="module")
def other_host_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA and a server certificate it signed for another host name only."""
    d = tmp_path_factory.mktemp("pki-other-host")
    ca = trustme.CA()
    cert = ca.issue_cert("nats.other.example")
    files = {"ca": d / "ca.pem", "cert": d / "cert.pem", "key": d / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def other_host_server(other_host_pki: dict[str, str]) -> Iterator[LocalServer]:
    cfg = (f'tls {{\n cert_file: "{other_host_pki["cert"]}"\n'
           f' key_file: "{other_host_pki["key"]}"\n timeout: 2\n}}\n')
    with natsbook.local_server(jetstream=False, config=cfg) as srv:
        yield srv


def test_tls_certificate_for_another_host_is_refused(other_host_server: LocalServer,
                                                     other_host_pki: dict[str, str]) -> None:
    """Bug: hostname verification off (``check_hostname = False``): a certificate from the
    trusted CA, issued for another host, would be accepted."""
    with pytest.raises(TLSError, match=r"not trusted \((IP address|Hostname) mismatch") as exc:
        natsbook.connect(other_host_server.url, tls_ca=other_host_pki["ca"], connect_timeout=3)
    assert exc.value.url == other_host_server.url
    assert "127.0.0.1" in str(exc.value)
    # The CA is right; only the name is: naming the host the certificate is for works.
    with natsbook.connect(other_host_server.url, tls_ca=other_host_pki["ca"],
                          tls_hostname="nats.other.example", connect_timeout=3) as c:
        c.flush()
        assert c.server_info.get("tls_required")


# ------------------------------------------------------------------ 6. max_payload boundary
LIMIT = 4096


@pytest.fixture(scope="module")
def small_payload_server() -> Iterator[LocalServer]:
    with natsbook.local_server(jetstream=False, config=f"max_payload: {LIMIT}\n") as srv:
        yield srv


def test_message_of_exactly_max_payload_is_accepted(small_payload_server: LocalServer,
                                                    subject: str) -> None:
    """Bug: ``size >= max_payload`` refused: a message of exactly the limit is legal."""
    with natsbook.connect(small_payload_server.url) as c:
        assert c.max_payload == LIMIT
        sub = c.subscribe(subject)
        c.publish(subject, b"x" * LIMIT)
        hdr_len = len(natsbook.wire._protocol.encode_headers({"K": "v"}))
        c.publish(subject, b"y" * (LIMIT - hdr_len), headers={"K": "v"})
        with pytest.raises(MaxPayloadError) as exc:
            c.publish(subject, b"x" * (LIMIT + 1))
        assert (exc.value.size, exc.value.limit) == (LIMIT + 1, LIMIT)
        with pytest.raises(MaxPayloadError) as exc:
            c.publish(subject, b"y" * (LIMIT - hdr_len + 1), headers={"K": "v"})
        assert (exc.value.size, exc.value.limit) == (LIMIT + 1, LIMIT)
        c.flush()
        assert wait_for(lambda: len(sub) == 2, 5)
        assert sub.to_pandas("bytes")["size"].tolist() == [LIMIT, LIMIT - hdr_len]
        assert c.status == "connected" and c.gaps().empty


@pytest.mark.parametrize("head", [b"MSG a 1 %d\r\n", b"MSG a 1 r %d\r\n", b"HMSG a 1 12 %d\r\n"])
def test_parser_frame_of_exactly_max_payload_is_accepted(head: bytes) -> None:
    """Bug: the parser's size check uses ``>=``: a frame of exactly the limit is legal."""
    limit = 100
    hdr = b"NATS/1.0\r\n\r\n" if head.startswith(b"HMSG") else b""
    assert len(hdr) in (0, 12)
    body = hdr + b"p" * (limit - len(hdr))
    p = Parser(max_payload=limit)
    groups, ctrl = p.feed(head % limit + body + b"\r\n" + b"PING\r\n")
    assert ctrl == [("PING", None)]
    [(subj, _reply, block, payload)] = groups[b"1"]
    assert subj == b"a" and (block or b"") + payload == body
    with pytest.raises(ProtocolError, match=f"message size {limit + 1} outside 0..{limit}"):
        Parser(max_payload=limit).feed(head % (limit + 1) + body + b"p\r\n")


# ------------------------------------------------------------------ 7. since boundary
def test_to_pandas_since_includes_the_row_received_exactly_then(conn: Connection,
                                                                subject: str) -> None:
    """Bug: ``since`` compared with ``>``: the row received at exactly ``since`` is dropped."""
    sub = conn.subscribe(subject)
    for word in ("a", "b", "c"):
        conn.publish(subject, word)
        conn.flush()
        time.sleep(0.002)  # distinct receive times
    df = sub.to_pandas("text")
    assert df["time"].is_unique
    t = df["time"].iloc[1]
    assert sub.to_pandas("text", since=t)["data"].tolist() == ["b", "c"]
    assert conn.to_pandas("text", since=t)["data"].tolist() == ["b", "c"]
    # One nanosecond later excludes it: the comparison is exact, not rounded.
    assert sub.to_pandas("text", since=t + pd.Timedelta(1, "ns"))["data"].tolist() == ["c"]
    assert sub.to_pandas("text", since=t.tz_convert(None))["data"].tolist() == ["b", "c"]


# ------------------------------------------------------------------ 8. queued publishes
def test_publishes_queued_when_the_connection_drops_are_resent(fresh_server: LocalServer,
                                                               subject: str) -> None:
    """Bug: publishes still queued (not yet written to the socket) when the connection drops
    are discarded instead of being kept for the next server.

    The server is frozen (SIGSTOP) so it reads nothing: the socket buffers fill and later
    publishes stay queued in the client. Then it is killed and restarted on the same port.
    Bytes already written to the dead socket are lost (core NATS); everything still queued
    must reach the new server, in order, after the subscription is restored.
    """
    size = 64 * 1024
    count = 320
    first = 240  # 15 MiB in one write: far more than loopback socket buffers hold
    conn = natsbook.connect(fresh_server.url, reconnect_wait=0.02, ping_interval=60)
    try:
        sub = conn.subscribe(subject)
        conn.flush()
        fresh_server.signal(signal.SIGSTOP)
        # SIGSTOP takes effect asynchronously: wait until the server is really stopped, or it
        # may still read (and deliver) the first publishes.
        stat = Path(f"/proc/{fresh_server._server_pid}/stat")
        assert wait_for(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "T", 5)
        pad = b"." * (size - 32)
        for i in range(count):
            conn.publish(subject, b"%08d|" % i + pad)
            if i == first - 1:
                # The I/O thread takes these as one write and blocks on it; the rest then
                # waits in the send queue.
                time.sleep(0.2)
        time.sleep(0.1)
        pending = conn.stats["pending_bytes"]
        assert pending >= (count - first) * size, pending
        fresh_server.kill()
        fresh_server.start()
        assert wait_for(lambda: conn.stats["reconnects"] == 1 and conn.status == "connected",
                        10)
        conn.flush(10)
        got = [int(d[:8]) for d in sub.to_pandas("bytes")["data"]]
        # Every message still queued at the drop arrives, in order, with nothing after it
        # missing: a contiguous run ending with the last one published.
        assert got, "nothing queued was re-sent"
        assert got == list(range(got[0], count)), got[:5]
        assert len(got) * size >= pending
        # Frames of the blocked write that had not fully gone out are re-sent too (socket
        # buffers towards a peer that reads nothing hold a few MiB, far less than `first`).
        assert got[0] < first
        assert len(conn.gaps()) == 1
    finally:
        fresh_server.signal(signal.SIGCONT)
        conn.close()

