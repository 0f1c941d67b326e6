"""Shared fixtures: a real nats-server per test session (and per test where needed),
connections, unique subjects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import natsbook
from natsbook import LocalServer
from natsbook.notebook.magics import NatsMagics, unload_ipython_extension
from tests.support.fake_server import fake  # noqa: F401  (the scripted fake-server fixture)
from tests.support.transports import url_of


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``TRANSPORTS = ("tcp", "ws")`` runs each of its tests that connects
    through `url` / `fresh_url` / `conn` (or asks for `transport`) once per transport."""
    transports = getattr(metafunc.module, "TRANSPORTS", None)
    if transports and "transport" in metafunc.fixturenames:
        metafunc.parametrize("transport", transports, indirect=True)


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    """One embedded nats-server (JetStream + monitoring + a ws:// listener) for the session."""
    with natsbook.local_server(websocket=True) as srv:
        yield srv


@pytest.fixture
def fresh_server() -> Iterator[LocalServer]:
    """A server of the test's own (for kill/restart and config changes)."""
    with natsbook.local_server(websocket=True) as srv:
        yield srv


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    """"tcp" unless the module parametrizes it (see pytest_generate_tests)."""
    return str(getattr(request, "param", "tcp"))


@pytest.fixture
def url(server: LocalServer, transport: str) -> str:
    """The session server's URL for this test's transport (nats:// or ws://)."""
    return url_of(server, transport)


@pytest.fixture
def fresh_url(fresh_server: LocalServer, transport: str) -> str:
    return url_of(fresh_server, transport)


@pytest.fixture
def conn(url: str) -> Iterator[natsbook.Connection]:
    c = natsbook.connect(url, name="natsbook-test")
    yield c
    c.close()


@pytest.fixture
def subject() -> str:
    """A subject root unique to the test, so tests never hear each other."""
    return f"t{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- IPython shell (magics)
class TestingShell(InteractiveShell):
    """run_cell stores history (as a notebook does) and re-raises the cell's error."""

    __test__ = False

    def run_cell(self, raw_cell: str, store_history: bool = True, silent: bool = False,
                 shell_futures: bool = True, cell_id: str | None = None) -> Any:
        result = super().run_cell(raw_cell, store_history=store_history, silent=silent,
                                  shell_futures=shell_futures, cell_id=cell_id)
        result.raise_error()
        return result


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestingShell]:
    """A shell with the extension loaded, a history database of its own, no NATS_* env."""
    for var in ("NATS_URL", "NATS_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    cfg = Config()
    cfg.HistoryManager.hist_file = str(tmp_path / "history.sqlite")
    shell = TestingShell(config=cfg)
    shell.run_cell("%load_ext natsbook")
    yield shell
    magics = shell.magics_manager.registry["NatsMagics"]
    unload_ipython_extension(shell)
    assert magics.conn is None and magics.server is None
    assert not magics._ticker.running
    shell.history_manager.end_session()
    shell.history_manager._stop_save_thread()
    shell.cleanup()


@pytest.fixture
def magics(ip: TestingShell) -> NatsMagics:
    m = ip.magics_manager.registry["NatsMagics"]
    assert isinstance(m, NatsMagics)
    return m


@pytest.fixture
def nats(ip: TestingShell, server: natsbook.LocalServer) -> TestingShell:
    """The shell, connected to the session's server."""
    ip.run_cell(f"%nats_connect {server.url}")
    return ip


# ---------------------------------------------------------------- TLS
@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Test certificates (trustme): a CA, an unrelated CA, a server cert for 127.0.0.1 and
    localhost, a client cert; paths as str."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    other_ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client@natsbook")
    files = {
        "ca": d / "ca.pem", "other_ca": d / "other.pem", "cert": d / "server.pem",
        "key": d / "server-key.pem", "client": d / "client.pem", "client_key": d / "client-key.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    other_ca.cert_pem.write_to_path(str(files["other_ca"]))
    server_cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server_cert.private_key_pem.write_to_path(str(files["key"]))
    client_cert.cert_chain_pems[0].write_to_path(str(files["client"]))
    client_cert.private_key_pem.write_to_path(str(files["client_key"]))
    return {k: str(v) for k, v in files.items()}
