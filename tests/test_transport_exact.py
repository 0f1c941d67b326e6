"""The transport's exact promises (mutation testing of natsbook/core/_transport.py, issue 18).

URL parsing, credentials and seeds, TLS options, discovered servers, the CONNECT a client
sends and every handshake failure's message (what happened and what to do), against the
scripted fake server of the hostile-server tests: no real server needed to misbehave.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nkeys
import pytest

import natsbook
from natsbook.core._transport import (
    Credentials,
    ServerURL,
    TLSOptions,
    add_discovered,
    parse_url,
)
from natsbook.errors import (
    AuthError,
    BadInputError,
    ConnectError,
    TLSError,
)
from tests.support.fake_scripts import answers_then_reads
from tests.support.fake_server import INFO, FakeServer, keep_open, read_until
from tests.support.nats_jwt import make_nkey_user, make_operator_setup
from tests.support.ws_peers import FaultyWebSocketServer

T = 0.5  # connect_timeout against the fake server


# ------------------------------------------------------------------ URLs
@pytest.mark.parametrize(("text", "want"), [
    ("h", ServerURL("nats", "h", 4222)),
    (" NATS://h:5 ", ServerURL("nats", "h", 5)),
    ("tls://h", ServerURL("tls", "h", 4222)),
    ("ws://h", ServerURL("ws", "h", 80)),
    ("wss://h", ServerURL("wss", "h", 443)),
    ("ws://h:1/", ServerURL("ws", "h", 1)),
    ("ws://h:1/nats?a=1", ServerURL("ws", "h", 1, path="/nats?a=1")),
    ("ws://h:1?a=1", ServerURL("ws", "h", 1, path="?a=1")),
    ("nats://h:1/ignored?x=1", ServerURL("nats", "h", 1)),
    ("nats://:7", ServerURL("nats", "127.0.0.1", 7)),
    ("nats://u%40x:p%3Aw@h:1", ServerURL("nats", "h", 1, user="u@x", password="p:w")),
    ("nats://t%2Fk@h:1", ServerURL("nats", "h", 1, token="t/k")),
    # Credentials are split off at the last "@" before the URL parser sees them: #, /, ?, @
    # and (in a password) : are the secret's own characters, never a host, path or fragment.
    ("nats://Sup3rS3cretTok#1@h:1", ServerURL("nats", "h", 1, token="Sup3rS3cretTok#1")),
    ("nats://u:p@ss:w#rd/?x@h:1", ServerURL("nats", "h", 1, user="u", password="p@ss:w#rd/?x")),
    ("tls://t/k?#@[::1]:5", ServerURL("tls", "::1", 5, token="t/k?#")),
    ("ws://t#k@h:1/nats?a=1", ServerURL("ws", "h", 1, token="t#k", path="/nats?a=1")),
    ("u:pa://ss@h", ServerURL("nats", "h", 4222, user="u", password="pa://ss")),
    ("t@h", ServerURL("nats", "h", 4222, token="t")),
    # %XX is decoded; any other % is the secret's own
    ("nats://50%off@h", ServerURL("nats", "h", 4222, token="50%off")),
    ("nats://a%2541@h", ServerURL("nats", "h", 4222, token="a%41")),
    ("nats://@h:1", ServerURL("nats", "h", 1)),
    ("nats://:pw@h:1", ServerURL("nats", "h", 1, user="", password="pw")),
])
def test_parse_url(text: str, want: ServerURL) -> None:
    assert parse_url(text) == want
    assert parse_url(text, discovered=True) == ServerURL(
        want.scheme, want.host, want.port, want.user, want.password, want.token, True,
        want.path)


@pytest.mark.parametrize(("text", "message"), [
    ("  ", "natsbook: empty server URL - e.g. nats://127.0.0.1:4222"),
    ("http://h", "natsbook: unsupported URL scheme 'http' in a server URL - use nats://, "
                 "tls://, ws:// or wss://"),
    ("nats://h:99999", "natsbook: bad port in server URL h:... - use nats://host:4222"),
    # Neither quotes the user-info, nor the text before :// when the URL has user-info.
    ("nats://S3cr#t:1@h:99999", "natsbook: bad port in server URL h:... - use "
                                "nats://host:4222"),
    ("tok://en@h", "natsbook: unsupported URL scheme in a server URL - use nats://, tls://, "
                   "ws:// or wss://"),
    # urlsplit's own ValueError (an unbalanced IPv6 bracket) is a natsbook error too.
    ("nats://S3cr#t@[::1", "natsbook: bad host in server URL '[::1' - use nats://host:4222 "
                           "or nats://[::1]:4222"),
])
def test_parse_url_refuses(text: str, message: str) -> None:
    with pytest.raises(BadInputError) as info:
        parse_url(text)
    assert str(info.value) == message


def test_server_url_text() -> None:
    s = ServerURL("ws", "::1", 9, user="u", password="secret", path="/p")
    assert s.url == str(s) == "ws://[::1]:9/p"
    assert repr(s) == "ServerURL('ws://[::1]:9/p')"
    assert s.websocket and ServerURL("wss", "h", 1).websocket
    assert not ServerURL("nats", "h", 1).websocket and not ServerURL("tls", "h", 1).websocket


def test_add_discovered() -> None:
    pool = [parse_url("nats://u:pw@a:1"), parse_url("nats://b:2")]
    add_discovered(pool, pool[1], ["b:2", "bad://f:6", "c:3", "c:3", "ws://d:4", "nats://t@e:5",
                                   "nats://g:99999", "h:8"])
    assert [s.url for s in pool] == ["nats://a:1", "nats://b:2", "nats://c:3", "nats://e:5",
                                     "nats://h:8"]
    c, e = pool[2], pool[3]
    assert (c.user, c.password, c.token, c.discovered) == ("u", "pw", None, True)
    assert (e.user, e.password, e.token) == (None, None, "t")
    ws = [parse_url("ws://a:1")]
    add_discovered(ws, ws[0], ["a:1", "d:4", "nats://e:5"])
    assert [s.url for s in ws] == ["ws://a:1", "ws://d:4"]
    assert ws[1].discovered and ws[1].user is None
    bare: list[ServerURL] = [parse_url("tls://a:1")]
    add_discovered(bare, bare[0], ["c:3"])
    assert bare[1] == ServerURL("tls", "c", 3, discovered=True)
    tok = [parse_url("nats://tk@a:1")]
    add_discovered(tok, tok[0], ["c:3"])
    assert (tok[1].user, tok[1].password, tok[1].token) == (None, None, "tk")
    # A connection that requires TLS: announced plaintext URLs join as TLS ones.
    secure = [parse_url("tls://u:pw@a:1")]
    add_discovered(secure, secure[0], ["nats://b:2", "c:3", "tls://d:4", "ws://e:5"],
                   TLSOptions(required=True))
    assert [s.url for s in secure] == ["tls://a:1", "tls://b:2", "tls://c:3", "tls://d:4"]
    assert (secure[1].user, secure[1].password, secure[1].discovered) == ("u", "pw", True)
    secure_ws = [parse_url("ws://a:1")]
    add_discovered(secure_ws, secure_ws[0], ["ws://b:2", "c:3", "wss://d:4"],
                   TLSOptions(required=True))
    assert [s.url for s in secure_ws] == ["ws://a:1", "wss://b:2", "wss://c:3", "wss://d:4"]
    insecure = [parse_url("nats://a:1")]
    add_discovered(insecure, insecure[0], ["nats://b:2", "c:3", "tls://d:4"], TLSOptions())
    assert [s.url for s in insecure] == ["nats://a:1", "nats://b:2", "nats://c:3", "tls://d:4"]



def test_add_discovered_prunes_caps_and_skips_bad_urls() -> None:
    """As nats.go: a discovered server missing from a non-empty announcement leaves the pool,
    configured servers and the current one never do; an empty announcement (or one of bad
    URLs only) prunes nothing. At most `cap` discovered servers; bad URLs are returned."""
    pool = [parse_url("nats://a:1")]
    assert add_discovered(pool, pool[0], ["b:2", "c:3", "d:4"]) == []
    current = pool[2]  # connected to a discovered server
    assert add_discovered(pool, current, ["d:4", "e:5", "a:1"]) == []
    assert [s.url for s in pool] == ["nats://a:1", "nats://c:3", "nats://d:4", "nats://e:5"]
    assert add_discovered(pool, current, []) == []
    assert add_discovered(pool, current, ["[::1", "x:99999"]) == [
        "ignored an announced server URL '[::1': bad host in server URL '[::1' - use "
        "nats://host:4222 or nats://[::1]:4222",
        "ignored an announced server URL 'x:99999': bad port in server URL x:... - use "
        "nats://host:4222"]
    assert len(pool) == 4
    assert add_discovered(pool, pool[0], ["f:6", "g:7", "h:8", "i:9"], cap=2) == [
        "the cluster announced more than 2 servers: the rest are ignored (at most 2 "
        "discovered servers join the pool)"]
    assert [s.url for s in pool] == ["nats://a:1", "nats://f:6", "nats://g:7"]
    # A secret in a bad URL is not reported.
    notes = add_discovered(pool, pool[0], ["nats://u:secret@[::1"])
    assert notes == ["ignored an announced server URL 'nats://***@[::1': bad host in server "
                     "URL '[::1' - use nats://host:4222 or nats://[::1]:4222"]


# ------------------------------------------------------------------ credentials and seeds
def test_credentials_repr_names_kinds_only() -> None:
    assert repr(Credentials()) == "Credentials(none)"
    assert repr(Credentials(user="u", password="p", jwt="j")) == \
        "Credentials(user, password, jwt)"
    assert repr(Credentials(token="t", nkey_seed=b"s")) == "Credentials(token, nkey_seed)"


def test_load_creds(tmp_path: Path) -> None:
    setup = make_operator_setup()
    path = setup.write_creds(tmp_path / "u.creds")
    assert Credentials.load_creds(path) == (setup.user_jwt, setup.user_seed)
    missing = tmp_path / "none.creds"
    with pytest.raises(BadInputError) as info:
        Credentials.load_creds(missing)
    assert str(info.value) == (f"natsbook: cannot read creds file {str(missing)!r}: No such "
                               "file or directory - check the path")
    bad = tmp_path / "bad.creds"
    bad.write_text("hello\n")
    with pytest.raises(BadInputError) as info:
        Credentials.load_creds(bad)
    assert str(info.value) == (f"natsbook: {str(bad)!r} is not a NATS .creds file (expected a "
                               "user JWT block and a USER NKEY SEED block) - create it with nsc")


def test_load_seed(tmp_path: Path) -> None:
    seed, _ = make_nkey_user()
    text = seed.decode()
    assert Credentials.load_seed(b"  " + seed + b"\n") == seed
    assert Credentials.load_seed(f"  {text}\n") == seed
    f = tmp_path / "seed.txt"
    f.write_text(f"# my seed\n{text}\n")
    assert Credentials.load_seed(str(f)) == seed
    assert Credentials.load_seed(f) == seed

    def refused(arg: Any) -> str:
        with pytest.raises(BadInputError) as info:
            Credentials.load_seed(arg)
        return str(info.value)

    assert refused(str(tmp_path / "none")) == (
        "natsbook: cannot read nkey seed file: No such file or directory - pass the seed "
        "(SU...) or a path to a file holding it")
    f.write_text("nothing here\n")
    assert refused(f) == "natsbook: nkey seed file holds no user seed (SU...)"
    assert refused(b"SA" + seed[2:]) == "natsbook: nkey seed must be a user seed starting with 'SU'"
    assert refused(b"SU" + b"A" * 20) == (
        "natsbook: the NKey seed is not valid (a user seed is 58 characters starting with "
        "'SU') - check the seed or .creds file")


def test_tls_options(tmp_path: Path) -> None:
    # Any tls_* option asks for TLS (never a plaintext fallback): tls_key or tls_hostname alone
    # too.
    assert not TLSOptions().wanted
    assert TLSOptions(key="k").wanted and TLSOptions(hostname="h").wanted
    assert TLSOptions(ca="c").wanted and TLSOptions(cert="c").wanted
    assert TLSOptions(handshake_first=True).wanted
    ctx = ssl.create_default_context()
    assert TLSOptions(context=ctx).wanted and TLSOptions(context=ctx).make_context() is ctx
    with pytest.raises(TLSError) as info:
        TLSOptions(ca=str(tmp_path / "none.pem")).make_context()
    text = str(info.value)
    assert text.startswith("natsbook: cannot load TLS files (")
    assert text.endswith(") - check tls_ca / tls_cert / tls_key paths and formats (PEM)")


# ------------------------------------------------------------------ the handshake
def _serving(info: bytes = INFO, after: bytes = b"PONG\r\n",
             seen: list[bytes] | None = None) -> Callable[[socket.socket], None]:
    """A fake server: `info`, then read CONNECT + PING, answer `after`, then idle."""
    def script(peer: socket.socket) -> None:
        peer.sendall(info)
        got = read_until(peer, b"PING\r\n")
        if seen is not None:
            seen.append(got)
        peer.sendall(after)
        keep_open(peer, 3)
    return script


def _connect_json(data: bytes) -> dict[str, Any]:
    line = data.split(b"\r\n")[0]
    assert line.startswith(b"CONNECT ")
    return dict(json.loads(line[8:]))


def test_connect_options_are_exact(fake: Callable[..., FakeServer]) -> None:
    seen: list[bytes] = []
    srv = fake(_serving(seen=seen))
    c = natsbook.connect(srv.url, connect_timeout=T, reconnect=False, name=None)
    c.close()
    assert seen[0].endswith(b"}\r\nPING\r\n")
    assert _connect_json(seen[0]) == {
        "verbose": False, "pedantic": False, "tls_required": False, "lang": "python-natsbook",
        "version": natsbook.__version__, "protocol": 1, "echo": True, "headers": True,
        "no_responders": True}
    c = natsbook.connect(srv.url, connect_timeout=T, reconnect=False, echo=False, name="me",
                         user="u")
    c.close()
    opts = _connect_json(seen[1])
    assert (opts["echo"], opts["name"], opts["user"], opts["pass"]) == (False, "me", "u", "")
    assert "auth_token" not in opts
    c = natsbook.connect(f"nats://url-u:url-p@127.0.0.1:{srv.port}", connect_timeout=T,
                         reconnect=False, token="tk")
    c.close()
    opts = _connect_json(seen[2])
    assert (opts["user"], opts["pass"]) == ("url-u", "url-p") and "auth_token" not in opts
    c = natsbook.connect(f"nats://url-t@127.0.0.1:{srv.port}", connect_timeout=T,
                         reconnect=False, password="ignored")
    c.close()
    opts = _connect_json(seen[3])
    assert opts["auth_token"] == "url-t" and "user" not in opts and "pass" not in opts
    c = natsbook.connect(f"nats://url-t@127.0.0.1:{srv.port}", connect_timeout=T,
                         reconnect=False, token="kw")
    c.close()
    assert _connect_json(seen[4])["auth_token"] == "kw"


def _expected_sig(seed: bytes, nonce: str) -> str:
    kp = nkeys.from_seed(seed)
    return base64.urlsafe_b64encode(kp.sign(nonce.encode())).rstrip(b"=").decode()


def test_nkey_and_jwt_sign_the_nonce(fake: Callable[..., FakeServer], tmp_path: Path) -> None:
    nonce = "bm9uY2U-xyz"
    info = INFO.replace(b'"proto":1', b'"proto":1,"nonce":"%s"' % nonce.encode())
    seen: list[bytes] = []
    srv = fake(_serving(info, seen=seen))
    seed, public = make_nkey_user()
    natsbook.connect(srv.url, connect_timeout=T, reconnect=False, nkey_seed=seed).close()
    opts = _connect_json(seen[0])
    assert opts["sig"] == _expected_sig(seed, nonce) and "=" not in opts["sig"]
    assert opts["nkey"] == public and "jwt" not in opts
    setup = make_operator_setup()
    creds = setup.write_creds(tmp_path / "u.creds")
    natsbook.connect(srv.url, connect_timeout=T, reconnect=False, creds=str(creds)).close()
    opts = _connect_json(seen[1])
    assert opts["sig"] == _expected_sig(setup.user_seed, nonce)
    assert opts["jwt"] == setup.user_jwt and "nkey" not in opts


def _refused(srv_url: str, error: type[Exception] = ConnectError, **kw: Any) -> str:
    start = time.monotonic()
    with pytest.raises(error) as info:
        natsbook.connect(srv_url, connect_timeout=T, reconnect=False, **kw)
    assert time.monotonic() - start < T + 2
    exc = info.value
    if isinstance(exc, ConnectError):
        assert exc.url == srv_url
    return str(exc)


def test_nkey_without_nonce(fake: Callable[..., FakeServer]) -> None:
    srv = fake(_serving())
    seed, _ = make_nkey_user()
    assert _refused(srv.url, AuthError, nkey_seed=seed) == (
        f"natsbook: {srv.url} sent no nonce to sign; it is not set up for NKey/JWT auth - drop "
        "nkey_seed/creds or check the server config")


def test_handshake_errors_after_connect(fake: Callable[..., FakeServer]) -> None:
    srv = fake(_serving(after=b"+OK\r\nINFO {}\r\n-ERR 'Authorization Violation'\r\n"),
               _serving(after=b"-ERR 'Maximum Connections Exceeded'\r\n"),
               lambda p: (p.sendall(INFO), read_until(p, b"PING\r\n"), p.close()),
               _serving(after=b""))
    assert _refused(srv.url, AuthError) == (
        f"natsbook: authorization violation from {srv.url} - check token/user/password/creds")
    # connect() reports a server's other refusals as a ConnectError with the same text.
    assert _refused(srv.url) == (f"natsbook: {srv.url} refused the connection: "
                                 "'Maximum Connections Exceeded'")
    assert _refused(srv.url, AuthError) == (
        f"natsbook: {srv.url} closed the connection after CONNECT - usually refused "
        "credentials: check token/user/password/creds")
    assert _refused(srv.url) == f"natsbook: {srv.url} did not answer CONNECT within {T:g}s"


def test_bytes_after_the_pong_are_kept(fake: Callable[..., FakeServer]) -> None:
    """What follows the handshake's PONG in the same packet is the session's first bytes."""
    got: list[bytes] = []
    srv = fake(answers_then_reads(b"PONG\r\nPING\r\n", got))
    c = natsbook.connect(srv.url, connect_timeout=T, reconnect=False, ping_interval=60)
    try:
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [b"PONG\r\n"]
        assert c._engine._sock is not None
        assert c._engine._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        c.close()


def test_handshake_errors_before_connect(fake: Callable[..., FakeServer]) -> None:
    srv = fake(lambda p: (p.sendall(b"HTTP/1.1 400 Bad Request " + b"x" * 40 + b"\r\n\r\n"),
                          keep_open(p, 2)),
               lambda p: keep_open(p, 2),
               lambda p: (p.sendall(b"INFO {nope\r\n"), keep_open(p, 2)),
               lambda p: (p.sendall(INFO), keep_open(p, 2)),
               lambda p: (p.sendall(INFO.replace(b'"proto":1', b'"proto":1,"tls_required":true')
                                    + b"PING\r\n"), keep_open(p, 2)))
    assert _refused(srv.url) == (
        f"natsbook: {srv.url} is not a NATS server (first line b'HTTP/1.1 400 Bad Request "
        "xxxxxxxxxxxxxxx')")
    assert _refused(srv.url) == (f"natsbook: {srv.url} sent no INFO within {T:g}s - the "
                                 "server may expect TLS first: pass tls_handshake_first=True")
    bad = _refused(srv.url)
    assert bad.startswith(f"natsbook: {srv.url} sent a bad INFO: ")
    assert bad.endswith("malformed INFO: b'INFO {nope'")
    assert _refused(srv.url, TLSError, tls_ca="unused.pem") == (
        f"natsbook: TLS was requested but {srv.url} offers no TLS - refusing to send "
        "credentials in plaintext; use nats:// without TLS options, or enable TLS on the "
        "server")
    assert _refused(srv.url) == (
        f"natsbook: {srv.url} sent data before the TLS upgrade")


def test_unreachable_and_silent_websocket(fake: Callable[..., FakeServer]) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    url = f"nats://127.0.0.1:{port}"
    assert _refused(url) == (f"natsbook: cannot reach {url}: Connection refused - start a "
                             "server (e.g. natsbook.local_server()) or check the URL")
    srv = fake(lambda p: keep_open(p, 2))
    ws = f"ws://127.0.0.1:{srv.port}/nats"
    assert _refused(ws) == (f"natsbook: {ws} did not answer the WebSocket upgrade within "
                            f"{T:g}s - check the port and path (and wss:// if it speaks TLS)")


def test_handshake_line_limit_is_exact(fake: Callable[..., FakeServer]) -> None:
    """A first line of exactly 64 KiB is read (and refused as not NATS); one byte more is a
    line too long; an empty line is a line."""
    def sends(*parts: bytes) -> Callable[[socket.socket], None]:
        def script(peer: socket.socket) -> None:
            for part in parts:
                peer.sendall(part)
                time.sleep(0.1)
            keep_open(peer, 2)
        return script

    srv = fake(sends(b"A" * 65536, b"\r\n"), sends(b"A" * 65537), sends(b"\r\nINFO {}\r\n"),
               lambda p: p.close())
    assert _refused(srv.url) == (f"natsbook: {srv.url} is not a NATS server (first line "
                                 f"{b'A' * 40!r})")
    assert _refused(srv.url) == (f"natsbook: {srv.url}: server sent a line longer than 64 KiB "
                                 "during the handshake")
    assert _refused(srv.url) == f"natsbook: {srv.url} is not a NATS server (first line b'')"
    assert _refused(srv.url) == (f"natsbook: {srv.url}: server closed the connection during "
                                 "the handshake")


def test_tls_offered_in_info_is_taken(fake: Callable[..., FakeServer]) -> None:
    """tls_available in INFO counts as TLS offered: the client starts TLS (the fake does not
    answer it, so the TLS handshake times out within connect_timeout)."""
    info = INFO.replace(b'"proto":1', b'"proto":1,"tls_available":true')
    srv = fake(lambda p: (p.sendall(info), keep_open(p, 2)))
    assert _refused(srv.url, TLSError, tls_ca=_ca()) == (
        f"natsbook: TLS handshake with {srv.url} timed out - check that the server speaks TLS "
        "on this port and tls_handshake_first matches")


def _ca() -> str:
    return ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"


def _timed_refusal(url: str, error: type[Exception], **kw: Any) -> str:
    """As _refused, and a handshake timeout must fire at connect_timeout, not later."""
    start = time.monotonic()
    text = _refused(url, error, **kw)
    assert time.monotonic() - start < T + 0.4
    return text


def test_tls_failures_say_why(fake: Callable[..., FakeServer]) -> None:
    """TLS errors name the URL (also as .url) and the likely fix."""
    plain = fake(lambda p: (p.sendall(INFO), keep_open(p, 2)))
    silent = fake(lambda p: keep_open(p, 2))
    text = _refused(plain.url, TLSError, tls_handshake_first=True, tls_ca=_ca())
    # The reason is OpenSSL's short name (e.g. WRONG_VERSION_NUMBER), not the whole error.
    assert re.fullmatch(rf"natsbook: TLS handshake with {re.escape(plain.url)} failed "
                        r"\([A-Z_]+\) - check that the server speaks TLS on this port and "
                        "tls_handshake_first matches", text), text
    assert _timed_refusal(silent.url, TLSError, tls_handshake_first=True, tls_ca=_ca()) == (
        f"natsbook: TLS handshake with {silent.url} timed out - check that the server speaks "
        "TLS on this port and tls_handshake_first matches")
    required = INFO.replace(b'"proto":1', b'"proto":1,"tls_required":true')
    req = fake(lambda p: (p.sendall(required), keep_open(p, 2)))
    assert _timed_refusal(req.url, TLSError) == (
        f"natsbook: {req.url} requires TLS (tls_required in its INFO): TLS handshake with "
        f"{req.url} timed out - check that the server speaks TLS on this port and "
        "tls_handshake_first matches")
    hint = ("TLS was requested (wss:// or TLS options) but {} does not offer TLS on its "
            "WebSocket port - refusing to send credentials in plaintext; use ws:// without TLS "
            "options, or add tls to the server's websocket block")
    wss = f"wss://127.0.0.1:{plain.port}"
    text = _refused(wss, TLSError)
    assert re.fullmatch(re.escape("natsbook: " + hint.format(wss)) + r" \(TLS handshake: "
                        r"[A-Z_]+\)", text), text
    wss = f"wss://127.0.0.1:{silent.port}"
    assert _timed_refusal(wss, TLSError) == ("natsbook: " + hint.format(wss) +
                                             " (TLS handshake timed out)")


def test_websocket_upgrade_request_and_silence(fake: Callable[..., FakeServer]) -> None:
    """The upgrade asks for the URL's host, port and path; a WebSocket server that never
    sends INFO is reported without the TLS-first hint (that is for nats:// only)."""
    heads: list[bytes] = []

    def record(peer: socket.socket) -> None:
        heads.append(read_until(peer, b"\r\n\r\n"))
        peer.close()

    srv = fake(record)
    ws = f"ws://127.0.0.1:{srv.port}/some/path"
    _refused(ws)
    assert heads[0].startswith(b"GET /some/path HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:%d\r\n" % srv.port in heads[0]
    with FaultyWebSocketServer() as quiet:
        quiet.INFO = b""  # type: ignore[misc]  # upgrades, then never says INFO
        url = f"ws://127.0.0.1:{quiet.port}"
        assert _refused(url) == f"natsbook: {url} sent no INFO within {T:g}s"


def test_connect_says_tls_when_it_is(fake: Callable[..., FakeServer],
                                     pki: dict[str, str]) -> None:
    """CONNECT carries tls_required: true once the socket is TLS: upgraded after an INFO
    that requires it, or TLS before anything (tls_handshake_first)."""
    seen: list[bytes] = []
    required = INFO.replace(b'"proto":1', b'"proto":1,"tls_required":true')

    def tls_server(first: bool) -> Callable[[socket.socket], None]:
        def script(peer: socket.socket) -> None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki["cert"], pki["key"])
            if not first:
                peer.sendall(required)
            with ctx.wrap_socket(peer, server_side=True) as tls:
                if first:
                    tls.sendall(required)
                seen.append(read_until(tls, b"PING\r\n"))
                tls.sendall(b"PONG\r\n")
                keep_open(tls, 0.5)
        return script

    srv = fake(tls_server(False), tls_server(True))
    natsbook.connect(srv.url, connect_timeout=2, reconnect=False, tls_ca=pki["ca"]).close()
    natsbook.connect(srv.url, connect_timeout=2, reconnect=False, tls_ca=pki["ca"],
                     tls_handshake_first=True).close()
    assert [_connect_json(s)["tls_required"] for s in seen] == [True, True]


def _tls_peer(pki: dict[str, str], then: Callable[[ssl.SSLSocket], None]) -> Callable[
        [socket.socket], None]:
    """A fake server that speaks TLS from the first byte (server certificate from `pki`)."""
    def script(peer: socket.socket) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki["cert"], pki["key"])
        try:
            with ctx.wrap_socket(peer, server_side=True) as tls:
                then(tls)
        except (OSError, ssl.SSLError):
            pass
    return script


def test_untrusted_certificate_and_broken_upgrade(fake: Callable[..., FakeServer],
                                                  pki: dict[str, str]) -> None:
    srv = fake(_tls_peer(pki, lambda t: keep_open(t, 1)),
               # A TLS record that does not decrypt, as the answer to the upgrade request.
               _tls_peer(pki, lambda t: (read_until(t, b"\r\n\r\n"),
                                         os.write(t.fileno(), b"\x17\x03\x03\x00\x20" + b"x" * 32),
                                         keep_open(t, 1))))
    assert _refused(srv.url, TLSError, tls_ca=pki["other_ca"], tls_handshake_first=True) == (
        f"natsbook: TLS certificate of {srv.url} not trusted (unable to get local issuer "
        "certificate) - pass tls_ca= with the CA that signed the server certificate")
    wss = f"wss://127.0.0.1:{srv.port}"
    text = _refused(wss, TLSError, tls_ca=pki["ca"])
    assert re.fullmatch(rf"natsbook: TLS error from {re.escape(wss)} during the WebSocket "
                        r"upgrade \([A-Z_]+\)", text), text


def test_no_answer_within_the_connect_timeout() -> None:
    """A listener whose accept queue is full never completes the TCP handshake: connect()
    gives up at connect_timeout and says what to check."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        url = f"nats://127.0.0.1:{listener.getsockname()[1]}"
        with socket.create_connection(listener.getsockname(), timeout=1):  # fills the queue
            assert _timed_refusal(url, ConnectError) == (
                f"natsbook: no answer from {url} within {T:g}s - is the server up and the "
                "address right?")


def test_server_refusal_text_is_kept(fake: Callable[..., FakeServer]) -> None:
    """An -ERR answer to CONNECT is quoted as the server wrote it: quotes stripped, bytes that
    are not UTF-8 replaced, nothing else touched."""
    srv = fake(_serving(after=b"-ERR 'X\xffX'\r\n"))
    assert _refused(srv.url) == f"natsbook: {srv.url} refused the connection: 'X\ufffdX'"
