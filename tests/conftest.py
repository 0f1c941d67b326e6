"""Shared fixtures: a real nats-server per test session (and per test where needed),
connections, unique subjects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import natsbook
from natsbook import LocalServer


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
