"""Auth and TLS matrices against real servers. Wrong credentials fail fast and clearly."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import natsbook
from natsbook.errors import AuthError, ConnectError, TLSError
from tests.support.nats_jwt import make_bad_creds_text, make_nkey_user, make_operator_setup

SECRET = "s3cr3t-Token-Value"


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
    with natsbook.local_server(jetstream=False, config=f'authorization {{ token: "{SECRET}" }}') \
            as srv:
        yield srv


def test_token(token_server: natsbook.LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="natsbook")
    with natsbook.connect(token_server.url, token=SECRET) as c:
        roundtrip(c)
        assert SECRET not in repr(c)
    host = token_server.url.removeprefix("nats://")
    with natsbook.connect(f"nats://{SECRET}@{host}") as c:
        roundtrip(c)
        assert SECRET not in repr(c) and SECRET not in str(c.servers)
    assert_fast_auth_error(lambda: natsbook.connect(token_server.url, token="wrong"), "wrong")
    assert_fast_auth_error(lambda: natsbook.connect(token_server.url))
    assert SECRET not in caplog.text


def test_user_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="natsbook")
    cfg = 'authorization { users = [ {user: "alice", password: "pw-Secret-1"} ] }'
    with natsbook.local_server(jetstream=False, config=cfg) as srv:
        with natsbook.connect(srv.url, user="alice", password="pw-Secret-1") as c:
            roundtrip(c)
        host = srv.url.removeprefix("nats://")
        with natsbook.connect(f"nats://alice:pw-Secret-1@{host}") as c:
            roundtrip(c)
            assert "pw-Secret-1" not in repr(c)
        err = assert_fast_auth_error(
            lambda: natsbook.connect(srv.url, user="alice", password="nope-Secret-2"),
            "nope-Secret-2")
        assert err.url == srv.url
    assert "pw-Secret-1" not in caplog.text


def test_nkey(tmp_path: Path) -> None:
    seed, pub = make_nkey_user()
    cfg = f"authorization {{ users = [ {{ nkey: {pub} }} ] }}"
    with natsbook.local_server(jetstream=False, config=cfg) as srv:
        with natsbook.connect(srv.url, nkey_seed=seed) as c:
            roundtrip(c)
        seed_file = tmp_path / "user.nk"
        seed_file.write_bytes(seed)
        with natsbook.connect(srv.url, nkey_seed=str(seed_file)) as c:
            roundtrip(c)
        other_seed, _ = make_nkey_user()
        assert_fast_auth_error(lambda: natsbook.connect(srv.url, nkey_seed=other_seed))


def test_creds(tmp_path: Path) -> None:
    setup = make_operator_setup()
    with natsbook.local_server(jetstream=False, config=setup.server_config) as srv:
        path = setup.write_creds(tmp_path / "alice.creds")
        with natsbook.connect(srv.url, creds=path) as c:
            roundtrip(c)
            assert setup.user_jwt not in repr(c)
        bad = tmp_path / "bad.creds"
        bad.write_text(make_bad_creds_text())
        assert_fast_auth_error(lambda: natsbook.connect(srv.url, creds=bad))
    not_creds = tmp_path / "x.creds"
    not_creds.write_text("hello")
    with pytest.raises(natsbook.errors.BadInputError, match=r"not a NATS \.creds"):
        natsbook.connect("nats://127.0.0.1:1", creds=not_creds)


# ---------------------------------------------------------------------------------- TLS
def tls_config(pki: dict[str, str], extra: str = "") -> str:
    return (f'tls {{\n cert_file: "{pki["cert"]}"\n key_file: "{pki["key"]}"\n timeout: 2\n'
            f' {extra}\n}}\n')



def test_tls_trusted_ca(pki: dict[str, str]) -> None:
    with natsbook.local_server(jetstream=False, config=tls_config(pki)) as srv:
        with natsbook.connect(srv.url, tls_ca=pki["ca"]) as c:
            roundtrip(c)
            assert c.server_info.get("tls_required")
        tls_url = srv.url.replace("nats://", "tls://")
        with natsbook.connect(tls_url, tls_ca=pki["ca"]) as c:
            roundtrip(c)


def test_tls_wrong_ca_fails_fast(pki: dict[str, str]) -> None:
    with natsbook.local_server(jetstream=False, config=tls_config(pki)) as srv:
        start = time.monotonic()
        with pytest.raises(TLSError, match="not trusted") as exc:
            natsbook.connect(srv.url, tls_ca=pki["other_ca"], connect_timeout=3)
        assert time.monotonic() - start < 5
        assert "tls_ca" in str(exc.value)
        # Server requires TLS, client asked for none: the system store does not know this CA.
        with pytest.raises(TLSError, match="requires TLS"):
            natsbook.connect(srv.url, connect_timeout=3)


def test_mutual_tls(pki: dict[str, str]) -> None:
    cfg = tls_config(pki, f'ca_file: "{pki["ca"]}"\n verify: true')
    with natsbook.local_server(jetstream=False, config=cfg) as srv:
        with natsbook.connect(srv.url, tls_ca=pki["ca"], tls_cert=pki["client"],
                              tls_key=pki["client_key"]) as c:
            roundtrip(c)
        # No client certificate: the server verifies it after the TLS handshake (TLS 1.3)
        # and drops the connection right after CONNECT, a refusal of credentials.
        with pytest.raises(AuthError, match="closed the connection after CONNECT") as exc:
            natsbook.connect(srv.url, tls_ca=pki["ca"], connect_timeout=3)
        assert exc.value.url == srv.url and "check token/user/password" in str(exc.value)


def test_tls_handshake_first(pki: dict[str, str]) -> None:
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


def test_tls_requested_but_server_plaintext(server: natsbook.LocalServer,
                                            pki: dict[str, str]) -> None:
    with pytest.raises(TLSError, match="offers no TLS"):
        natsbook.connect(server.url, tls_ca=pki["ca"], connect_timeout=2)
    with pytest.raises(TLSError, match="offers no TLS"):
        natsbook.connect(server.url.replace("nats://", "tls://"), connect_timeout=2)
