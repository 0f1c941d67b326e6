"""Auth and TLS failures: fail within the connect timeout with a clear error; secrets never
show up in exceptions, reprs, logs or conn.errors."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import natsbook
from natsbook import LocalServer
from natsbook.errors import AuthError, ConnectError, TLSError
from tests.support.fake_roles import info_line, plain_role, server_tls_context, tls_role
from tests.support.fake_server import FakeServer

from .helpers import Cluster, monitor, route_port, wait_for

TOKEN = "tok-S3CRET-4a1f9c"
WRONG_TOKEN = "tok-WRONG-77e0b2"
USER = "alice"
PASSWORD = "pw-S3CRET-9b2d11"
WRONG_PASSWORD = "pw-WRONG-c0ffee"
SECRETS = (TOKEN, WRONG_TOKEN, PASSWORD, WRONG_PASSWORD)
TIMEOUT = 2.0


def _assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"secret leaked in {text!r}"


def _connect_fails(caplog: pytest.LogCaptureFixture, error: type[Exception],
                   *args: object, **kwargs: object) -> Exception:
    caplog.set_level(logging.DEBUG, logger="natsbook")
    start = time.monotonic()
    with pytest.raises(error) as info:
        natsbook.connect(*args, connect_timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + 1.0, f"took {elapsed:.2f}s with connect_timeout={TIMEOUT}"
    exc = info.value
    _assert_no_secret(str(exc), repr(exc), exc.args, caplog.text)
    chained = exc.__cause__ or exc.__context__
    if chained is not None and not exc.__suppress_context__:
        _assert_no_secret(str(chained), repr(chained))
    return exc


@pytest.fixture
def token_server(server_factory: Callable[..., LocalServer]) -> LocalServer:
    return server_factory(f'authorization {{ token: "{TOKEN}" }}\n')


@pytest.fixture
def user_server(server_factory: Callable[..., LocalServer]) -> LocalServer:
    return server_factory(
        f'authorization {{ users = [ {{user: "{USER}", password: "{PASSWORD}"}} ] }}\n')


def test_wrong_token(token_server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    exc = _connect_fails(caplog, AuthError, token_server.url, token=WRONG_TOKEN)
    assert "authorization violation" in str(exc)
    assert "check token/user/password" in str(exc)


def test_missing_token(token_server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    exc = _connect_fails(caplog, AuthError, token_server.url)
    assert f"authorization violation from {token_server.url}" in str(exc)


def test_wrong_token_in_url(token_server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    url = token_server.url.replace("nats://", f"nats://{WRONG_TOKEN}@")
    _connect_fails(caplog, AuthError, url)


def test_wrong_password(user_server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    exc = _connect_fails(caplog, AuthError, user_server.url, user=USER, password=WRONG_PASSWORD)
    assert "authorization violation" in str(exc)


def test_wrong_user(user_server: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    exc = _connect_fails(caplog, AuthError, user_server.url, user="mallory", password=PASSWORD)
    assert f"authorization violation from {user_server.url}" in str(exc)


def test_wrong_password_in_url(user_server: LocalServer,
                               caplog: pytest.LogCaptureFixture) -> None:
    url = user_server.url.replace("nats://", f"nats://{USER}:{WRONG_PASSWORD}@")
    exc = _connect_fails(caplog, AuthError, url)
    assert "authorization violation from nats://" in str(exc)


def test_secrets_stay_hidden_while_connected_and_on_refused_reconnects(
        user_server: LocalServer, caplog: pytest.LogCaptureFixture, subject: str) -> None:
    caplog.set_level(logging.DEBUG, logger="natsbook")
    url = user_server.url.replace("nats://", f"nats://{USER}:{PASSWORD}@")
    conn = natsbook.connect(url, connect_timeout=TIMEOUT, reconnect_wait=0.02)
    try:
        sub = conn.subscribe(subject)
        conn.publish(subject, b"x")
        conn.flush()
        assert len(sub) == 1 or wait_for(lambda: len(sub) == 1)
        _assert_no_secret(repr(conn), conn.servers, conn.connected_url, conn.stats,
                          conn._engine._pool, conn._engine._creds, sub)
        # The server comes back with another password: reconnects are refused.
        user_server.config = (f'authorization {{ users = [ {{user: "{USER}", '
                              f'password: "{WRONG_PASSWORD}"}} ] }}\n')
        user_server.kill()
        user_server.start()
        # The refusal is reported (once), not only logged at debug level.
        wait_for(lambda: any("reconnect refused" in t for _, t in conn.errors), timeout=5)
        time.sleep(0.3)
        assert conn.status == "reconnecting"
        refusals = [t for _, t in conn.errors if "reconnect refused" in t]
        assert len(refusals) == 1 and "authorization violation" in refusals[0]
        _assert_no_secret(repr(conn), list(conn.errors), caplog.text, conn.gaps().to_string())
    finally:
        conn.close()


# -- TLS ---------------------------------------------------------------------------------------
@pytest.fixture
def tls_server(server_factory: Callable[..., LocalServer], pki: dict[str, str]) -> LocalServer:
    return server_factory(
        f'tls {{ cert_file: "{pki["cert"]}", key_file: "{pki["key"]}", timeout: 2 }}\n')


def test_tls_right_ca_works(tls_server: LocalServer, pki: dict[str, str],
                            subject: str) -> None:
    conn = natsbook.connect(tls_server.url, tls_ca=str(pki["ca"]), connect_timeout=TIMEOUT)
    try:
        sub = conn.subscribe(subject)
        conn.publish(subject, b"over tls")
        conn.flush()
        wait_for(lambda: len(sub) == 1)
    finally:
        conn.close()


def test_tls_wrong_ca(tls_server: LocalServer, pki: dict[str, str],
                      caplog: pytest.LogCaptureFixture) -> None:
    exc = _connect_fails(caplog, TLSError, tls_server.url, tls_ca=str(pki["other_ca"]))
    assert "not trusted" in str(exc) and "tls_ca" in str(exc)


def test_tls_server_but_no_ca_given(tls_server: LocalServer,
                                    caplog: pytest.LogCaptureFixture) -> None:
    exc = _connect_fails(caplog, TLSError, tls_server.url, token=WRONG_TOKEN)
    assert "requires TLS" in str(exc) and "tls_ca" in str(exc)


def test_tls_asked_but_server_plaintext(server_factory: Callable[..., LocalServer],
                                        pki: dict[str, str],
                                        caplog: pytest.LogCaptureFixture) -> None:
    srv = server_factory(None)
    exc = _connect_fails(caplog, TLSError, srv.url, tls_ca=str(pki["ca"]), token=WRONG_TOKEN)
    assert "offers no TLS" in str(exc)
    tls_url = srv.url.replace("nats://", f"tls://{USER}:{WRONG_PASSWORD}@")
    exc = _connect_fails(caplog, TLSError, tls_url)
    assert "offers no TLS" in str(exc)


def test_tls_first_against_plaintext(server_factory: Callable[..., LocalServer],
                                     pki: dict[str, str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    srv = server_factory(None)
    exc = _connect_fails(caplog, TLSError, srv.url, tls_ca=str(pki["ca"]),
                         tls_handshake_first=True, password=WRONG_PASSWORD, user=USER)
    assert f"TLS handshake with {srv.url} failed (WRONG_VERSION_NUMBER)" in str(exc)
    assert "tls_handshake_first matches" in str(exc)


def test_bad_tls_files(tmp_path: Path, tls_server: LocalServer,
                       caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "nope.pem"
    exc = _connect_fails(caplog, TLSError, tls_server.url, tls_ca=str(missing))
    assert "cannot load TLS files" in str(exc) and "tls_ca" in str(exc)


# -- TLS on every server of the pool ------------------------------------------------------------
# A connection that is secure (a tls:// URL, a TLS option, or a server that required TLS) never
# sends credentials to a server that offers no TLS, the servers the cluster announces included:
# that server is an error for the attempt and the client moves on (nats.go: the Secure option
# holds for the whole pool; "secure connection not available").
@pytest.mark.parametrize("announce", ["explicit", "bare"])
@pytest.mark.parametrize("origin", ["tls-url", "server-required", "tls-option"])
def test_secure_connection_never_sends_credentials_to_an_announced_plain_server(
        fake: Callable[..., FakeServer], pki: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, origin: str, announce: str) -> None:
    """A TLS server announces a plaintext one (connect_urls, as "nats://host:port" or
    "host:port") and then drops the client. The client tries the announced server and refuses
    it at its INFO: no CONNECT, no password, ever reaches the plaintext socket; it comes back
    to the TLS server."""
    caplog.set_level(logging.DEBUG, logger="natsbook")
    # The client trusts the test CA without a TLS option (so that a tls:// URL, or the
    # server's tls_required, is all that asks for TLS).
    monkeypatch.setenv("SSL_CERT_FILE", pki["ca"])
    plain_got: list[bytes] = []
    plain = fake(plain_role(plain_got))
    where = f"127.0.0.1:{plain.port}"
    info = info_line(tls_required=True,
                     connect_urls=[f"nats://{where}" if announce == "explicit" else where])
    tls_got: list[bytes] = []
    ctx = server_tls_context(pki)
    secure = fake(tls_role(ctx, info, tls_got, serve_for=0.3),
                  tls_role(ctx, info, tls_got, serve_for=10))
    scheme = "tls" if origin == "tls-url" else "nats"
    url = f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{secure.port}"
    extra = {"tls_ca": pki["ca"]} if origin == "tls-option" else {}
    conn = natsbook.connect(url, connect_timeout=TIMEOUT, reconnect_wait=0.02, **extra)
    try:
        assert len(conn.servers) == 2
        wait_for(lambda: plain.accepted >= 1 and conn.is_connected and
                 (secure.accepted >= 2 or plain_got), timeout=10)
        sent_plain = b"".join(plain_got)
        assert b"CONNECT" not in sent_plain and PASSWORD.encode() not in sent_plain, sent_plain
        # The announced server joins the pool as a TLS one (nats.go: the secure scheme).
        assert conn.servers[1] == f"tls://{where}"
        assert conn.connected_url == f"{scheme}://127.0.0.1:{secure.port}"
        # Credentials went over TLS only: twice to the TLS server.
        assert len(tls_got) == 2 and all(PASSWORD.encode() in g for g in tls_got)
        refused = [t for _, t in conn.errors if "reconnect refused" in t]
        assert refused and f"tls://{where} (announced by the cluster) offers no TLS" in \
            refused[0], refused
        assert "refusing to send credentials in plaintext" in refused[0]
        _assert_no_secret(list(conn.errors), caplog.text, conn.servers)
    finally:
        conn.close()


def test_pool_with_a_tls_url_requires_tls_of_its_plain_urls(
        fake: Callable[..., FakeServer], pki: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One tls:// URL in the pool: a nats:// URL given beside it must do TLS too (nats.go).
    The TLS server drops the client; the plaintext one is refused before CONNECT."""
    monkeypatch.setenv("SSL_CERT_FILE", pki["ca"])
    plain_got: list[bytes] = []
    plain = fake(plain_role(plain_got))
    ctx = server_tls_context(pki)
    secure = fake(tls_role(ctx, info_line(tls_required=True), [], serve_for=0.3),
                  tls_role(ctx, info_line(tls_required=True), [], serve_for=10))
    conn = natsbook.connect([f"tls://{USER}:{PASSWORD}@127.0.0.1:{secure.port}",
                             f"nats://{USER}:{PASSWORD}@127.0.0.1:{plain.port}"],
                            connect_timeout=TIMEOUT, reconnect_wait=0.02)
    try:
        wait_for(lambda: plain.accepted >= 1 and secure.accepted >= 2 and conn.is_connected,
                 timeout=10)
        assert b"CONNECT" not in b"".join(plain_got)
        assert conn.connected_url == f"tls://127.0.0.1:{secure.port}"
        refused = [t for _, t in conn.errors if "reconnect refused" in t]
        assert refused == [
            "reconnect refused: TLS is required on every server of this connection (a tls:// "
            "URL, TLS options or a server that required TLS), but "
            f"nats://127.0.0.1:{plain.port} offers no TLS - refusing to send credentials in "
            "plaintext; enable TLS on that server"]
    finally:
        conn.close()


def test_tls_cluster_node_then_plain_node_gets_no_credentials(
        server_factory: Callable[..., LocalServer], pki: dict[str, str],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Real nats-servers: a cluster of a TLS node and a plaintext node. The client connects to
    the TLS node with nats:// (TLS because the node requires it), learns the plaintext node
    from its INFO, and the TLS node dies: the client refuses the plaintext node (its INFO
    offers no TLS) and never authenticates there; it comes back when the TLS node does."""
    caplog.set_level(logging.DEBUG, logger="natsbook")
    monkeypatch.setenv("SSL_CERT_FILE", pki["ca"])
    users = f'authorization {{ users = [ {{user: "{USER}", password: "{PASSWORD}"}} ] }}\n'
    tls_node = server_factory(
        f'server_name: secure\n{users}'
        f'tls {{ cert_file: "{pki["cert"]}", key_file: "{pki["key"]}", timeout: 2 }}\n'
        "cluster { name: mixed\n listen: 127.0.0.1:-1 }\n")
    plain_node = server_factory(
        f"server_name: plain\n{users}cluster {{ name: mixed\n listen: 127.0.0.1:-1\n"
        f" routes: [ nats-route://127.0.0.1:{route_port(tls_node)} ] }}\n")
    wait_for(lambda: Cluster.peers(tls_node) and Cluster.peers(plain_node), timeout=15)
    url = tls_node.url.replace("nats://", f"nats://{USER}:{PASSWORD}@")
    conn = natsbook.connect(url, connect_timeout=TIMEOUT, reconnect_wait=0.02)
    try:
        plain_port = plain_node.url.rsplit(":", 1)[1]
        wait_for(lambda: any(s.endswith(f":{plain_port}") for s in conn.servers), timeout=10)
        tls_node.kill()
        wait_for(lambda: any("offers no TLS" in t for _, t in conn.errors) or
                 conn.connected_url == plain_node.url, timeout=10)
        time.sleep(0.3)
        users_seen = [c.get("authorized_user") for c in
                      monitor(plain_node, "/connz?state=all&auth=true").get("connections")
                      or []]
        assert USER not in users_seen, users_seen
        assert conn.status == "reconnecting"
        assert f"tls://127.0.0.1:{plain_port}" in conn.servers
        tls_node.start()
        wait_for(lambda: conn.is_connected, timeout=10)
        assert conn.connected_url == tls_node.url
        _assert_no_secret(list(conn.errors), caplog.text)
    finally:
        conn.close()


# -- secrets holding URL characters -----------------------------------------------------------
URL_TOKEN = "Sup3rS3cretTok#1/x?y@z,w"
URL_PASSWORD = "pw#S3cr/et?:@9,v"
#: Pieces of the secrets above that a URL parser (or a split at every comma) would take for a
#: host, path or fragment.
URL_SECRET_PIECES = ("Sup3rS3cretTok", "1/x", "y@z", "S3cretTok#1", "pw#S3cr", "et?:@9",
                     "S3cr/et", "z,w", "9,v", "My,S3cretTok", "S3cretTok@")


def _assert_no_url_secret(*texts: object) -> None:
    for text in texts:
        for piece in URL_SECRET_PIECES:
            assert piece.lower() not in str(text).lower(), f"{piece!r} leaked in {text!r}"


def test_url_secrets_may_hold_url_characters(server_factory: Callable[..., LocalServer],
                                             subject: str) -> None:
    """A token or password with #, /, ?, @ (and : in a password) works as typed in the URL;
    a token with : is written %3A (as in every URL)."""
    token_srv = server_factory(f'authorization {{ token: "{URL_TOKEN}" }}\n')
    user_srv = server_factory(
        f'authorization {{ users = [ {{user: "{USER}", password: "{URL_PASSWORD}"}} ] }}\n')
    colon_srv = server_factory('authorization { token: "tok:en#1" }\n')
    for url in (token_srv.url.replace("nats://", f"nats://{URL_TOKEN}@"),
                token_srv.url.replace("nats://", f"{URL_TOKEN}@"),  # no scheme
                user_srv.url.replace("nats://", f"nats://{USER}:{URL_PASSWORD}@"),
                colon_srv.url.replace("nats://", "nats://tok%3Aen#1@"),
                # a list whose first URL's token holds "," (split only at a new scheme)
                token_srv.url.replace("nats://", f"nats://{URL_TOKEN}@") + ",nats://127.0.0.1:1"):
        conn = natsbook.connect(url, connect_timeout=TIMEOUT)
        try:
            sub = conn.subscribe(subject)
            conn.publish(subject, b"x")
            conn.flush()
            wait_for(lambda: len(sub) == 1)  # noqa: B023 (used at once)
            _assert_no_url_secret(conn.servers, conn.connected_url, repr(conn))
        finally:
            conn.close()


@pytest.mark.parametrize("url", [
    f"nats://{URL_TOKEN}@127.0.0.1:1",
    f"nats://{USER}:{URL_PASSWORD}@no-such-host.invalid:4222",
    f"tls://{URL_TOKEN}@no-such-host.invalid",
    f"ws://{URL_TOKEN}@no-such-host.invalid/nats",
    "nats://My,S3cretTok@no-such-host.invalid:4222",
], ids=["refused", "user-password", "tls-token", "ws-token", "comma-token"])
def test_url_secret_is_never_looked_up_nor_shown(url: str, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A URL whose secret holds #, / or ? and whose host is wrong: the error names the host,
    never the secret, and no DNS lookup is made of any piece of the secret."""
    caplog.set_level(logging.DEBUG, logger="natsbook")
    looked_up: list[object] = []
    real = socket.getaddrinfo

    def spy(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        if host != "127.0.0.1":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    with pytest.raises(ConnectError) as info:
        natsbook.connect(url, connect_timeout=TIMEOUT, reconnect=False)
    exc = info.value
    host = "127.0.0.1" if "127.0.0.1" in url else "no-such-host.invalid"
    assert looked_up == [host]
    assert f"cannot reach {exc.url}" in str(exc) and f"://{host}:" in str(exc)
    _assert_no_url_secret(str(exc), repr(exc), exc.args, exc.__cause__, exc.__context__,
                          caplog.text)
