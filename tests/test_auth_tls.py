"""Auth and TLS matrices against real servers, over TCP and over WebSocket (ws:// / wss://).
Wrong credentials fail fast and clearly."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import natsbook
from natsbook.errors import AuthError, ConnectError, TLSError
from tests.support.nats_jwt import make_bad_creds_text, make_nkey_user, make_operator_setup
from tests.support.transports import url_of, with_userinfo

SECRET = "s3cr3t-Token-Value"
#: Each test taking `transport` runs over TCP and WebSocket (conftest.pytest_generate_tests).
TRANSPORTS = ("tcp", "ws")


def roundtrip(c: natsbook.Connection, subject: str = "auth.check") -> None:
    sub = c.subscribe(subject)
    c.publish(subject, b"ok")
    c.flush()
    assert len(sub) == 1


def assert_fast_auth_error(fn, secret: str | None = None) -> AuthError:
    start = time.monotonic()
    with pytest.raises(AuthError) as exc:
        fn()
    # generous bound: the point is "no retry loop for minutes", not speed
    assert time.monotonic() - start < 5
    msg = str(exc.value)
    assert "authorization violation" in msg.lower()
    assert "check token/user/password" in msg
    if secret:
        assert secret not in msg and secret not in repr(exc.value)
    return exc.value


@pytest.fixture(scope="module")
def token_server() -> Iterator[natsbook.LocalServer]:
    with natsbook.local_server(jetstream=False, config=f'authorization {{ token: "{SECRET}" }}',
                               websocket=True) as srv:
        yield srv


def test_token(token_server: natsbook.LocalServer, transport: str,
               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="natsbook")
    url = url_of(token_server, transport)
    with natsbook.connect(url, token=SECRET) as c:
        roundtrip(c)
        assert SECRET not in repr(c)
    with natsbook.connect(with_userinfo(url, SECRET)) as c:
        roundtrip(c)
        assert SECRET not in repr(c) and SECRET not in str(c.servers)
    assert_fast_auth_error(lambda: natsbook.connect(url, token="wrong"), "wrong")
    assert_fast_auth_error(lambda: natsbook.connect(url))
    assert SECRET not in caplog.text


def test_user_password(transport: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="natsbook")
    cfg = 'authorization { users = [ {user: "alice", password: "pw-Secret-1"} ] }'
    with natsbook.local_server(jetstream=False, config=cfg, websocket=True) as srv:
        url = url_of(srv, transport)
        with natsbook.connect(url, user="alice", password="pw-Secret-1") as c:
            roundtrip(c)
        with natsbook.connect(with_userinfo(url, "alice:pw-Secret-1")) as c:
            roundtrip(c)
            assert "pw-Secret-1" not in repr(c)
        err = assert_fast_auth_error(
            lambda: natsbook.connect(url, user="alice", password="nope-Secret-2"),
            "nope-Secret-2")
        assert err.url == url
    assert "pw-Secret-1" not in caplog.text


def test_nkey(tmp_path: Path, transport: str) -> None:
    seed, pub = make_nkey_user()
    cfg = f"authorization {{ users = [ {{ nkey: {pub} }} ] }}"
    with natsbook.local_server(jetstream=False, config=cfg, websocket=True) as srv:
        url = url_of(srv, transport)
        with natsbook.connect(url, nkey_seed=seed) as c:
            roundtrip(c)
        seed_file = tmp_path / "user.nk"
        seed_file.write_bytes(seed)
        with natsbook.connect(url, nkey_seed=str(seed_file)) as c:
            roundtrip(c)
        other_seed, _ = make_nkey_user()
        assert_fast_auth_error(lambda: natsbook.connect(url, nkey_seed=other_seed))


def test_creds(tmp_path: Path, transport: str) -> None:
    setup = make_operator_setup()
    with natsbook.local_server(jetstream=False, config=setup.server_config,
                               websocket=True) as srv:
        url = url_of(srv, transport)
        path = setup.write_creds(tmp_path / "alice.creds")
        with natsbook.connect(url, creds=path) as c:
            roundtrip(c)
            assert setup.user_jwt not in repr(c)
        bad = tmp_path / "bad.creds"
        bad.write_text(make_bad_creds_text())
        assert_fast_auth_error(lambda: natsbook.connect(url, creds=bad))
    not_creds = tmp_path / "x.creds"
    not_creds.write_text("hello")
    with pytest.raises(natsbook.errors.BadInputError, match=r"not a NATS \.creds"):
        natsbook.connect("nats://127.0.0.1:1", creds=not_creds)


# ---------------------------------------------------------------------------------- TLS
def tls_config(pki: dict[str, str], extra: str = "") -> str:
    return (f'tls {{\n cert_file: "{pki["cert"]}"\n key_file: "{pki["key"]}"\n timeout: 2\n'
            f' {extra}\n}}\n')


def tls_server(pki: dict[str, str], extra: str = "") -> natsbook.LocalServer:
    """TLS on the client port and on a websocket listener (wss://), same certificates."""
    return natsbook.local_server(jetstream=False, config=tls_config(pki, extra),
                                 websocket=tls_config(pki, extra))


def plain_url(url: str) -> str:
    """The same listener asked for without TLS: nats:// (TCP) or ws:// (WebSocket)."""
    return url.replace("wss://", "ws://")



def test_tls_trusted_ca(pki: dict[str, str], transport: str) -> None:
    with tls_server(pki) as srv:
        url = url_of(srv, transport)
        assert url.startswith(("nats://", "wss://"))
        with natsbook.connect(url, tls_ca=pki["ca"]) as c:
            roundtrip(c)
            assert c.server_info.get("tls_required")
        # tls:// asks for TLS on the client port; TLS options do so on ws:// (as nats.go).
        tls_url = url.replace("nats://", "tls://").replace("wss://", "ws://")
        with natsbook.connect(tls_url, tls_ca=pki["ca"]) as c:
            roundtrip(c)
        # Hostname verification: the certificate names 127.0.0.1 and localhost only.
        with pytest.raises(TLSError, match="not trusted"):
            natsbook.connect(url, tls_ca=pki["ca"], tls_hostname="elsewhere.example",
                             connect_timeout=3)


def test_tls_wrong_ca_fails_fast(pki: dict[str, str], transport: str) -> None:
    with tls_server(pki) as srv:
        url = url_of(srv, transport)
        start = time.monotonic()
        with pytest.raises(TLSError, match="not trusted") as exc:
            natsbook.connect(url, tls_ca=pki["other_ca"], connect_timeout=3)
        assert time.monotonic() - start < 5
        assert "tls_ca" in str(exc.value)
        # Server requires TLS, client asked for none: the system store does not know this CA.
        start = time.monotonic()
        with pytest.raises(TLSError, match="requires TLS"):
            natsbook.connect(plain_url(url), connect_timeout=3)
        assert time.monotonic() - start < 2


def test_mutual_tls(pki: dict[str, str], transport: str) -> None:
    with tls_server(pki, f'ca_file: "{pki["ca"]}"\n verify: true') as srv:
        url = url_of(srv, transport)
        with natsbook.connect(url, tls_ca=pki["ca"], tls_cert=pki["client"],
                              tls_key=pki["client_key"]) as c:
            roundtrip(c)
        # No client certificate: the server verifies it after the TLS handshake (TLS 1.3)
        # and drops the connection, a refusal of credentials.
        if transport == "tcp":
            with pytest.raises(AuthError, match="closed the connection after CONNECT") as exc:
                natsbook.connect(url, tls_ca=pki["ca"], connect_timeout=3)
            assert exc.value.url == url and "check token/user/password" in str(exc.value)
        else:  # over wss:// the refusal arrives as a TLS alert during the upgrade
            with pytest.raises(TLSError, match="CERTIFICATE_REQUIRED") as tls_exc:
                natsbook.connect(url, tls_ca=pki["ca"], connect_timeout=3)
            assert url in str(tls_exc.value) and "WebSocket upgrade" in str(tls_exc.value)


def test_tls_handshake_first(pki: dict[str, str]) -> None:
    """TCP only: TLS-first is a client-port option; wss:// always starts with TLS."""
    cfg = tls_config(pki, "handshake_first: true")
    with natsbook.local_server(jetstream=False, config=cfg) as srv:
        with natsbook.connect(srv.url, tls_ca=pki["ca"], tls_handshake_first=True) as c:
            roundtrip(c)
        # The server waits (its TLS timeout: 2 s) for a TLS hello that never comes; the
        # client gives up first (1 s) and says what to change.
        start = time.monotonic()
        with pytest.raises(ConnectError) as exc:
            natsbook.connect(srv.url, tls_ca=pki["ca"], connect_timeout=1)
        assert time.monotonic() - start < 5
        assert str(exc.value) == (f"natsbook: {srv.url} sent no INFO within 1s - the server "
                                  "may expect TLS first: pass tls_handshake_first=True")


def test_tls_requested_but_server_plaintext(url: str, pki: dict[str, str]) -> None:
    expect = "offers no TLS|does not offer TLS"
    with pytest.raises(TLSError, match=expect) as exc:
        natsbook.connect(url, tls_ca=pki["ca"], connect_timeout=2)
    assert "refusing to send credentials in plaintext" in str(exc.value)
    with pytest.raises(TLSError, match=expect):
        natsbook.connect(url.replace("nats://", "tls://").replace("ws://", "wss://"),
                         connect_timeout=2)
    # Any tls_* option asks for TLS, tls_hostname alone included: no plaintext fallback.
    with pytest.raises(TLSError, match=expect):
        natsbook.connect(url, tls_hostname="localhost", connect_timeout=2)
