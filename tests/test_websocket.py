"""NATS over WebSocket: what only this transport has. The shared pub/sub, request/reply, auth,
TLS, reconnect, JetStream and KV tests also run over ws:// / wss:// (their modules set
TRANSPORTS); here: URLs, an Upgrade-forwarding proxy, the transport's own errors, mixed pools,
discovery, the front ends, and the framing layer under awkward splits."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    Request,
)

import natsbook
from natsbook import LocalServer
from natsbook.core._transport import parse_url
from natsbook.core._websocket import WebSocketStream
from natsbook.errors import (
    ConnectError,
    NotWebSocketError,
    WebSocketClosedError,
    WebSocketFrameError,
    WebSocketUpgradeError,
)
from tests.support.transports import with_userinfo
from tests.support.waiting import wait_for
from tests.support.ws_peers import FaultyWebSocketServer, UpgradeProxy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def roundtrip(c: natsbook.Connection, subject: str) -> None:
    sub = c.subscribe(subject)
    c.publish(subject, b"ok")
    c.flush()
    assert len(sub) == 1


# ------------------------------------------------------------------------------- URLs
def test_parse_websocket_urls() -> None:
    u = parse_url("ws://alice:pw@example.com/nats?x=1")
    assert (u.scheme, u.host, u.port, u.path) == ("ws", "example.com", 80, "/nats?x=1")
    assert u.websocket and u.url == "ws://example.com:80/nats?x=1"
    assert "pw" not in repr(u) and "pw" not in str(u)
    assert parse_url("wss://example.com").port == 443
    assert parse_url("wss://example.com:8443/").path == ""
    assert parse_url("WS://[::1]:9222").url == "ws://[::1]:9222"
    assert not parse_url("nats://h:4222").websocket
    with pytest.raises(natsbook.errors.BadInputError, match="ws:// or wss://"):
        parse_url("http://h:80")


# ---------------------------------------------------------------------- through a proxy
@pytest.fixture
def proxy(server: LocalServer) -> Iterator[UpgradeProxy]:
    assert server.websocket_port
    with UpgradeProxy(server.websocket_port, path="/nats") as p:
        yield p


def test_through_an_upgrade_forwarding_proxy(server: LocalServer, proxy: UpgradeProxy,
                                             subject: str) -> None:
    """Pub/sub with headers and request/reply through a proxy that only speaks HTTP, with a
    TCP client as the independent peer on the other side."""
    url = f"ws://127.0.0.1:{proxy.port}/nats"
    with natsbook.connect(url, discovery=False) as c, natsbook.connect(server.url) as peer:
        assert c.connected_url == url and proxy.upgrades == 1
        sub = c.subscribe(f"{subject}.>")
        peer.publish(f"{subject}.a", b"from tcp", headers={"K": ["1", "2"]})
        peer.flush()
        c.flush()
        assert wait_for(lambda: len(sub) == 1)
        msg = sub.to_pandas("text").iloc[0]
        assert msg["data"] == "from tcp"
        peer.serve(f"{subject}.svc", lambda m: m.data.upper())
        peer.flush()
        assert c.request(f"{subject}.svc", b"hello", timeout=5).data == b"HELLO"
        # And the other way round: the TCP peer asks a responder on the WebSocket side.
        c.serve(f"{subject}.ws", lambda m: b"ws:" + m.data)
        c.flush()
        assert peer.request(f"{subject}.ws", b"x", timeout=5).data == b"ws:x"


def test_proxy_and_server_answers_that_are_not_websocket(server: LocalServer,
                                                         proxy: UpgradeProxy) -> None:
    start = time.monotonic()
    # A proxy route that does not exist: 404.
    with pytest.raises(NotWebSocketError, match="not a WebSocket endpoint") as exc:
        natsbook.connect(f"ws://127.0.0.1:{proxy.port}/elsewhere", connect_timeout=3)
    assert exc.value.status == 404 and "no route for /elsewhere" in str(exc.value)
    # The NATS client port: it sends INFO, not HTTP.
    with pytest.raises(NotWebSocketError, match="use nats://") as exc:
        natsbook.connect(server.url.replace("nats://", "ws://"), connect_timeout=3)
    assert exc.value.status is None
    # The HTTP monitoring port: an HTTP server without WebSocket.
    assert server.monitor_url
    with pytest.raises(NotWebSocketError) as exc:
        natsbook.connect(server.monitor_url.replace("http://", "ws://") + "/nope",
                         connect_timeout=3)
    assert exc.value.status == 404
    assert time.monotonic() - start < 3  # each fails at once, no retry loop


def test_upgrade_refused_by_the_proxy(server: LocalServer) -> None:
    assert server.websocket_port
    with UpgradeProxy(server.websocket_port, refuse="403 Forbidden") as p, \
            pytest.raises(WebSocketUpgradeError, match="refused") as exc:
        natsbook.connect(f"ws://127.0.0.1:{p.port}/nats", connect_timeout=3)
    assert not isinstance(exc.value, NotWebSocketError)
    assert exc.value.status == 403 and "access denied by proxy policy" in str(exc.value)
    with FaultyWebSocketServer(status="502 Bad Gateway", body=b"upstream down") as bad, \
            pytest.raises(WebSocketUpgradeError, match="HTTP 502: upstream down"):
        natsbook.connect(f"ws://127.0.0.1:{bad.port}", connect_timeout=3)


# ---------------------------------------------------------------- frames a server may send
def test_text_frame_is_a_protocol_error(subject: str) -> None:
    with FaultyWebSocketServer() as fake:
        seen: list[str] = []
        c = natsbook.connect(f"ws://127.0.0.1:{fake.port}", reconnect=False,
                             error_callback=seen.append)
        try:
            c.publish("poke.text", b"")
            assert wait_for(lambda: c.status == "closed", 5)
            assert any("text WebSocket frame" in t and "binary frames only" in t for t in seen)
            assert "text WebSocket frame" in c.gaps()["reason"].iloc[0]
        finally:
            c.close()
    assert issubclass(WebSocketFrameError, natsbook.errors.ProtocolError)


def test_close_frame_reason_is_reported(subject: str) -> None:
    with FaultyWebSocketServer(close_code=1008, close_reason="policy says no") as fake:
        c = natsbook.connect(f"ws://127.0.0.1:{fake.port}", reconnect=False)
        try:
            c.publish("poke.close", b"")
            assert wait_for(lambda: c.status == "closed", 5)
            reason = c.gaps()["reason"].iloc[0]
            assert "closed the WebSocket (1008: policy says no)" in reason
        finally:
            c.close()
    assert issubclass(WebSocketClosedError, ConnectionResetError)


def test_close_frame_before_info_fails_connect_with_its_reason() -> None:
    with FaultyWebSocketServer(close_at_once=True, close_code=1013,
                               close_reason="try again later") as fake:
        start = time.monotonic()
        with pytest.raises(ConnectError, match=r"closed the WebSocket \(1013: try again later\)"):
            natsbook.connect(f"ws://127.0.0.1:{fake.port}", connect_timeout=3)
        assert time.monotonic() - start < 3


def test_server_shutdown_close_frame_and_restart(fresh_server: LocalServer, subject: str) -> None:
    """A graceful stop sends a close frame (1001 Server Shutdown): the gap says so, and the
    connection comes back over WebSocket when the server does."""
    assert fresh_server.ws_url
    with natsbook.connect(fresh_server.ws_url) as c:
        sub = c.subscribe(subject)
        fresh_server.stop()
        assert wait_for(lambda: c.status == "reconnecting", 5)
        fresh_server.start()
        assert wait_for(lambda: c.status == "connected", 10)
        c.publish(subject, b"after")
        c.flush()
        assert len(sub) == 1
        gaps = c.gaps()
        assert len(gaps) == 1 and gaps["end"].notna().all()
        assert "closed the WebSocket (1001: Server Shutdown)" in gaps["reason"].iloc[0]


# ----------------------------------------------------------------- pools and discovery
def test_pool_mixing_websocket_and_tcp_reconnects_across_both(subject: str) -> None:
    with natsbook.local_server(jetstream=False, websocket=True) as a, \
            natsbook.local_server(jetstream=False) as b:
        assert a.ws_url
        with natsbook.connect([a.ws_url, b.url], discovery=False, reconnect_wait=0.02) as c:
            assert c.connected_url == a.ws_url
            sub = c.subscribe(subject)
            c.publish(subject, b"on ws")
            c.flush()
            a.kill()  # over to the TCP server
            assert wait_for(lambda: c.status == "connected" and c.connected_url == b.url, 10)
            with natsbook.connect(b.url) as peer:
                peer.publish(subject, b"on tcp")
                peer.flush()
            assert wait_for(lambda: len(sub) == 2)
            a.start()
            b.kill()  # and back to WebSocket
            assert wait_for(lambda: c.status == "connected" and c.connected_url == a.ws_url, 10)
            with natsbook.connect(a.url) as peer:
                peer.publish(subject, b"on ws again")
                peer.flush()
            assert wait_for(lambda: len(sub) == 3)
            assert list(sub.to_pandas("text")["data"]) == ["on ws", "on tcp", "on ws again"]
            gaps = c.gaps()
            assert list(gaps["server"]) == [a.ws_url, b.url]
            assert gaps["end"].notna().all()


def test_discovery_adds_websocket_urls_to_a_websocket_client() -> None:
    """The cluster announces servers; a ws:// client must get their WebSocket ports (what
    nats-server puts in connect_urls for WebSocket clients, as nats.go expects), a TCP client
    their client ports, never the other's."""
    ports = [free_port(), free_port()]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in ports)
    nodes = [natsbook.local_server(
        jetstream=False, websocket=True,
        config=f"server_name: n{i}\ncluster {{ name: c1\n listen: 127.0.0.1:{p}\n "
               f"routes: [{routes}] }}\n") for i, p in enumerate(ports)]
    try:
        n0, n1 = nodes
        with natsbook.connect(n0.ws_url) as ws_client, natsbook.connect(n0.url) as tcp_client:
            assert wait_for(lambda: len(ws_client.servers) == 2 and len(tcp_client.servers) == 2,
                            10)
            assert ws_client.servers == [n0.ws_url, n1.ws_url]
            assert tcp_client.servers == [n0.url, n1.url]
            # And the discovered WebSocket server is usable: move over when n0 goes away.
            n0.kill()
            assert wait_for(lambda: ws_client.connected_url == n1.ws_url, 10)
    finally:
        for n in nodes:
            n.close()


def test_discovery_never_adds_a_tcp_url_to_a_websocket_client() -> None:
    """Even a server that announced a nats:// URL to a WebSocket client: not in its pool."""
    with FaultyWebSocketServer(connect_urls=["nats://127.0.0.1:4222", "127.0.0.1:9999"]) as fake:
        url = f"ws://127.0.0.1:{fake.port}"
        with natsbook.connect(url, reconnect=False) as c:
            assert c.servers == [url, "ws://127.0.0.1:9999"]


# ------------------------------------------------------------------ capture at speed
@pytest.fixture(params=["ws", "wss"])
def ws_endpoint(request: pytest.FixtureRequest, server: LocalServer,
                pki: dict[str, str]) -> Iterator[tuple[str, dict[str, str], str]]:
    """(WebSocket URL, connect() TLS options, the same server's nats:// URL): the session
    server's ws://, or a server of its own with a TLS WebSocket listener (wss://)."""
    if request.param == "ws":
        assert server.ws_url
        yield server.ws_url, {}, server.url
        return
    tls = f'tls {{ cert_file: "{pki["cert"]}", key_file: "{pki["key"]}" }}'
    with natsbook.local_server(jetstream=False, websocket=tls) as srv:
        assert srv.ws_url and srv.ws_url.startswith("wss://")
        yield srv.ws_url, {"tls_ca": pki["ca"]}, srv.url


def test_flood_and_large_messages_over_websocket(ws_endpoint: tuple[str, dict[str, str], str],
                                                 subject: str) -> None:
    """Many small messages (many frames per read) and 900 KB ones (a frame over many reads,
    and on the sending side a frame the socket takes in several writes), in both directions,
    over ws:// and wss:// (TLS records under the frames: want-read/want-write, pending data)."""
    ws_url, tls, tcp_url = ws_endpoint
    big = os.urandom(900 * 1024)
    with natsbook.connect(ws_url, **tls) as ws, natsbook.connect(tcp_url) as tcp:
        into_ws = ws.subscribe(f"{subject}.in.>", max_bytes=None)
        into_tcp = tcp.subscribe(f"{subject}.out.>", max_bytes=None)
        ws.flush()
        tcp.flush()
        for i in range(50_000):
            tcp.publish(f"{subject}.in.small", b"%d" % i)
        for _ in range(3):
            tcp.publish(f"{subject}.in.big", big)
            ws.publish(f"{subject}.out.big", big)
        for i in range(50_000):
            ws.publish(f"{subject}.out.small", b"%d" % i)
        tcp.flush()
        ws.flush()
        assert wait_for(lambda: len(into_ws) == 50_003 and len(into_tcp) == 50_003, 30)
        for sub in (into_ws, into_tcp):
            df = sub.to_pandas("bytes")
            assert [bytes(d) for d in df["data"][df["subject"].str.endswith(".big")]] == [big] * 3
            small = [int(d) for d in df["data"][df["subject"].str.endswith(".small")]]
            assert small == list(range(50_000))
        assert not ws.gaps().shape[0] and ws.status == "connected"


# ------------------------------------------------------------------ front ends
def test_magic_and_context_connect_over_websocket(ip, server: LocalServer, tmp_path: Path) -> None:
    assert server.ws_url
    ip.run_cell(f"%nats_connect {server.ws_url}")
    magics = ip.magics_manager.registry["NatsMagics"]
    assert magics.conn.connected_url == server.ws_url
    ip.run_cell("%nats_close")
    ctx_dir = Path(os.environ["XDG_CONFIG_HOME"]) / "nats" / "context"
    ctx_dir.mkdir(parents=True)
    (ctx_dir / "over-ws.json").write_text(json.dumps({"url": server.ws_url}))
    ip.run_cell("%nats_connect --context over-ws")
    assert magics.conn.connected_url == server.ws_url


def test_cli_simulate_and_lab_take_a_websocket_url(server: LocalServer, subject: str,
                                                   tmp_path: Path) -> None:
    """`natsbook simulate --url` and `natsbook lab --url` hand the URL to connect() (lab
    through NATS_URL for its kernels); the simulator run proves the CLI path works."""
    assert server.ws_url
    cli = [sys.executable, "-m", "natsbook.lab.cli"]
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    with natsbook.connect(server.url) as conn:
        sub = conn.subscribe(f"{subject}.>")
        out = subprocess.run(
            [*cli, "simulate", "--url", server.ws_url, "--devices", "2", "--rate", "10",
             "--duration", "1", "--prefix", subject, "--no-services", "--workers", "0"],
            capture_output=True, text=True, timeout=60, env=env)
        conn.flush()
    assert out.returncode == 0, out.stderr
    assert sub.received == int(out.stdout.split("published ")[1].split()[0]) > 0
    out = subprocess.run([*cli, "lab", "--dry-run", "--port", "0", "--url", server.ws_url,
                          "--notebook-dir", str(tmp_path / "nb")],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert f"no, use {server.ws_url}" in out.stdout


def test_credentials_in_a_websocket_url_never_show(subject: str) -> None:
    cfg = 'authorization { users = [ {user: "alice", password: "pw-Secret-9"} ] }'
    with natsbook.local_server(jetstream=False, config=cfg, websocket=True) as srv:
        assert srv.ws_url
        with natsbook.connect(with_userinfo(srv.ws_url, "alice:pw-Secret-9")) as c:
            roundtrip(c, subject)
            assert "pw-Secret-9" not in repr(c) + str(c.servers) + str(c.connected_url)


# ------------------------------------------------------------- the framing layer itself
def _stream_pair() -> tuple[WebSocketStream, WSConnection, socket.socket]:
    """A client WebSocketStream on one end of a socketpair, its wsproto server on the other
    (the upgrade done in memory)."""
    client, srv = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    srv.receive_data(client.send(Request(host="test", target="/")))
    assert [type(e) for e in srv.events()] == [Request]
    client.receive_data(srv.send(AcceptConnection()))
    assert [type(e) for e in client.events()] == [AcceptConnection]
    a, b = socket.socketpair()
    stream = WebSocketStream(a, client, "ws://test")
    stream.setblocking(False)  # as the engine runs it
    return stream, srv, b


@settings(max_examples=60, deadline=None)
@given(payloads=st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=20),
       ping_at=st.integers(min_value=0, max_value=12),
       ending=st.sampled_from([None, "close", "text"]),
       bufsize=st.sampled_from([1, 100, 65536]))
def test_any_split_of_the_frames_gives_the_same_bytes(payloads: list[bytes], cuts: list[int],
                                                      ping_at: int, ending: str | None,
                                                      bufsize: int) -> None:
    """Reference: the payloads concatenated. The frames (with a ping among them, maybe a close
    or a text frame at the end) reach the stream cut at arbitrary points; recv() hands out
    exactly those bytes, and only then raises WebSocketClosedError / WebSocketFrameError; the
    ping is answered with a pong."""
    stream, srv, peer = _stream_pair()
    try:
        wire = b""
        for i, p in enumerate(payloads):
            if i == ping_at:
                wire += srv.send(Ping(b"hi"))
            wire += srv.send(Message(data=p))
        if ending == "close":
            wire += srv.send(CloseConnection(1001, "bye"))
        elif ending == "text":
            wire += srv.send(Message(data="PING\r\n"))
        got = b""
        closed: Exception | None = None
        points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
        for lo, hi in itertools.pairwise(points):
            peer.sendall(wire[lo:hi])
            while closed is None:
                try:
                    got += stream.recv(bufsize)
                except BlockingIOError:
                    break
                except (WebSocketClosedError, WebSocketFrameError) as exc:
                    closed = exc
        assert got == b"".join(payloads)
        assert not stream.pending()
        if ending == "close":
            assert isinstance(closed, WebSocketClosedError)
            assert (closed.code, closed.reason) == (1001, "bye")
        elif ending == "text":
            assert isinstance(closed, WebSocketFrameError) and "text WebSocket frame" in str(closed)
        else:
            assert closed is None
        if ping_at < len(payloads) and ending != "text":
            peer.settimeout(2)
            srv.receive_data(peer.recv(65536))
            assert any(isinstance(e, Pong) and e.payload == b"hi" for e in srv.events())
    finally:
        stream.close()
        peer.close()


def test_partial_frame_writes_resume_with_the_same_bytes() -> None:
    """A full socket buffer mid-frame: send() raises BlockingIOError and, called again with
    the same bytes (the engine's rule, as for SSL), finishes that frame without framing the
    bytes twice. The server side (which rejects unmasked frames) decodes exactly the data."""
    stream, srv, peer = _stream_pair()
    try:
        data = os.urandom(3 * 1024 * 1024)
        view = memoryview(data)
        received = bytearray()
        blocked = 0

        def drain() -> None:
            peer.setblocking(False)
            try:
                while chunk := peer.recv(1 << 20):
                    srv.receive_data(chunk)
            except BlockingIOError:
                pass
            for e in srv.events():
                assert isinstance(e, BytesMessage), e
                received.extend(e.data)

        while view:
            try:
                n = stream.send(view[: 1 << 20])
            except BlockingIOError:
                blocked += 1
                drain()
                continue
            view = view[n:]
        drain()
        assert blocked > 0  # the case under test did happen
        assert bytes(received) == data
    finally:
        stream.close()
        peer.close()


def test_a_101_without_the_websocket_headers_is_refused_at_once() -> None:
    """A 101 lacking Upgrade/Connection/Sec-WebSocket-Accept (a proxy mangling the answer)."""
    with FaultyWebSocketServer(status="101 Switching Protocols") as fake:
        start = time.monotonic()
        with pytest.raises(WebSocketUpgradeError, match="forwards the Upgrade") as exc:
            natsbook.connect(f"ws://127.0.0.1:{fake.port}", connect_timeout=3)
        assert time.monotonic() - start < 3
    assert exc.value.status == 101 and isinstance(exc.value, ConnectError)
