"""Auth and TLS failures: fail within the connect timeout with a clear error; secrets never
show up in exceptions, reprs, logs or conn.errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import natsbook
from natsbook import LocalServer
from natsbook.errors import AuthError, TLSError

from .helpers import wait_for

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
                          conn._pool, conn._creds, sub)
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
