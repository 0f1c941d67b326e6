"""Shared fixtures: a real nats-server per test session (and per test where needed),
connections, unique subjects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import natsbook
from natsbook import LocalServer
from natsbook.magics import NatsMagics, unload_ipython_extension


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    """One embedded nats-server (JetStream + monitoring) shared by the session."""
    with natsbook.local_server() as srv:
        yield srv


@pytest.fixture
def fresh_server() -> Iterator[LocalServer]:
    """A server of the test's own (for kill/restart and config changes)."""
    with natsbook.local_server() as srv:
        yield srv


@pytest.fixture
def conn(server: LocalServer) -> Iterator[natsbook.Connection]:
    c = natsbook.connect(server.url, name="natsbook-test")
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


