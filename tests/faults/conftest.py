"""Fixtures for the fault-injection suite: servers of the test's own, clusters.

Every server here is started by the test that breaks it and stopped by its own handle; the
session-wide ``server`` fixture is never killed.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import natsbook
from natsbook import LocalServer

from .helpers import Cluster


@pytest.fixture
def own_server() -> Iterator[LocalServer]:
    """A plain server (no JetStream) of the test's own, for kill/stop/restart."""
    srv = natsbook.local_server(jetstream=False)
    try:
        yield srv
    finally:
        srv.signal(signal.SIGCONT)  # in case the test left it frozen
        srv.close()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., LocalServer]]:
    """Start servers with a custom config; every one is closed after the test."""
    started: list[LocalServer] = []

    def make(config: str | None = None, **kwargs: Any) -> LocalServer:
        kwargs.setdefault("jetstream", False)
        srv = natsbook.local_server(config=config, **kwargs)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.signal(signal.SIGCONT)
        srv.close()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A three-node loopback cluster (client, route and monitoring port per node)."""
    c = Cluster()
    try:
        yield c.start()
    finally:
        c.close()
