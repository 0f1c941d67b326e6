"""Reconnect storms and a growing server pool, caused by a hostile or broken server (issue 24,
items 5 and 6): a server that drops every connection right after the handshake is not
reconnected to more often than reconnect_wait allows, and announced servers (INFO
connect_urls) are pruned, capped and parsed without ever crashing the I/O thread."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable

import pytest

import natsbook
from natsbook.errors import NatsbookError
from tests.support.fake_roles import info_line
from tests.support.fake_server import (
    FakeServer,
    Script,
    after_connect_sends,
    hello,
    ping_flood,
    read_until,
    serve_pings,
)

from .helpers import wait_for

MAX_DISCOVERED = 256  # natsbook.core._transport.MAX_DISCOVERED (checked below)


def _urls(first: int, n: int) -> list[str]:
    return [f"127.0.0.1:{port}" for port in range(first, first + n)]


@pytest.mark.parametrize("script", [after_connect_sends(b"", then_close=True),
                                    ping_flood(chunks=50)], ids=["closes", "ping-flood"])
def test_no_reconnect_storm_to_a_server_that_drops_us(fake: Callable[..., FakeServer],
                                                      script: Script) -> None:
    """Every connection is handshaken and then lost at once (closed, or declared slow under a
    PING flood): a server is not tried again within reconnect_wait of its last attempt, as
    nats.go. Before, a successful reconnect reset the backoff and the client reconnected at
    once, again and again (140 reconnects in 5 s), losing the first cause from conn.errors."""
    wait, attempts = 0.3, 5
    srv = fake(script)
    conn = natsbook.connect(srv.url, reconnect_wait=wait, ping_interval=60,
                            pending_size=100_000)
    try:
        # A fixed amount of work (5 connections), however slow the machine: then every
        # attempt came at least reconnect_wait after the one before it (half of it here,
        # for the accept's own latency; a storm is milliseconds apart).
        assert wait_for(lambda: srv.accepted >= attempts, timeout=60), srv.accepted
        times = srv.accepted_at[:attempts]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= wait / 2, gaps
        assert conn.stats["reconnects"] >= attempts - 2  # the last may be mid-handshake
    finally:
        conn.close()
    assert conn._engine._thread is not None and not conn._engine._thread.is_alive()


def test_close_interrupts_the_wait_between_reconnects(fake: Callable[..., FakeServer]) -> None:
    """Waiting for a server's reconnect_wait to pass honors close()."""
    srv = fake(after_connect_sends(b"", then_close=True))
    conn = natsbook.connect(srv.url, reconnect_wait=30, ping_interval=60)
    wait_for(lambda: conn.status == "reconnecting", timeout=5)
    time.sleep(0.1)
    assert srv.accepted == 1  # not tried again within reconnect_wait
    started = time.monotonic()
    conn.close()
    assert conn._engine._thread is not None
    conn._engine._thread.join(5)
    assert not conn._engine._thread.is_alive() and time.monotonic() - started < 5


def test_announced_servers_are_capped_and_pruned(fake: Callable[..., FakeServer]) -> None:
    """Repeated INFOs announcing fresh servers: the pool keeps the configured server and at
    most MAX_DISCOVERED of the latest announcement (as nats.go, a discovered server missing
    from it leaves the pool); the cap is reported once. Before, the pool only grew (58,001
    servers after 200 such INFOs)."""
    storm = b"".join(info_line(connect_urls=_urls(20000 + i * 400, 400)) for i in range(20))
    last = set(_urls(20000 + 19 * 400, 400))
    final = ["127.0.0.1:2", "127.0.0.1:3"]

    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(storm)
        read_until(peer, b"PING\r\n")
        peer.sendall(b"PONG\r\n")
        read_until(peer, b"PING\r\n")
        peer.sendall(info_line(connect_urls=final) + b"PONG\r\n")
        serve_pings(peer, 5)

    srv = fake(script)
    conn = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    try:
        from natsbook.core import _transport
        assert getattr(_transport, "MAX_DISCOVERED", MAX_DISCOVERED) == MAX_DISCOVERED
        conn.flush(10)  # its PONG comes after the storm of INFOs
        servers = conn.servers
        assert servers[0] == srv.url and len(servers) == 1 + MAX_DISCOVERED
        assert {s.removeprefix("nats://") for s in servers[1:]} <= last
        capped = [t for _, t in conn.errors if "announced more than" in t]
        assert capped == [f"the cluster announced more than {MAX_DISCOVERED} servers: the rest "
                          f"are ignored (at most {MAX_DISCOVERED} discovered servers join the "
                          "pool)"]
        conn.flush(10)
        assert conn.servers == [srv.url] + [f"nats://{u}" for u in final]
        assert conn.is_connected and conn.stats["reconnects"] == 0
    finally:
        conn.close()


BAD = ("ignored an announced server URL '[::1': bad host in server URL '[::1' - use "
       "nats://host:4222 or nats://[::1]:4222")


def test_unparsable_announced_url_after_connect(fake: Callable[..., FakeServer]) -> None:
    """An async INFO announcing a URL parse_url rejects (urlsplit's bare ValueError for
    "[::1", or a BadInputError): skipped and reported once; the connection stays up. Before,
    it crashed the I/O thread ("internal error") and reconnected in a loop."""
    bad = info_line(connect_urls=["[::1", "127.0.0.1:2"])

    def script(peer: socket.socket) -> None:
        hello(peer)
        peer.sendall(bad + info_line(connect_urls=["127.0.0.1:99999"]) + bad)
        serve_pings(peer, 5)

    srv = fake(script)
    conn = natsbook.connect(srv.url, connect_timeout=1, ping_interval=60)
    try:
        conn.flush(5)
        texts = [t for _, t in conn.errors]
        assert texts.count(BAD) == 1, texts
        assert texts.count("ignored an announced server URL '127.0.0.1:99999': bad port in "
                           "server URL 127.0.0.1:... - use nats://host:4222") == 1, texts
        assert not [t for t in texts if "internal error" in t or "disconnected" in t], texts
        assert conn.is_connected and conn.stats["reconnects"] == 0 and srv.accepted == 1
        assert conn.servers == [srv.url, "nats://127.0.0.1:2"]
    finally:
        conn.close()


def test_unparsable_announced_url_at_handshake(fake: Callable[..., FakeServer]) -> None:
    """The same URL in the handshake's INFO: connect() succeeds without it (never a bare
    ValueError)."""
    def script(peer: socket.socket) -> None:
        peer.sendall(info_line(connect_urls=["[::1"]))
        read_until(peer, b"PING\r\n")
        peer.sendall(b"PONG\r\n")
        serve_pings(peer, 5)

    srv = fake(script)
    try:
        conn = natsbook.connect(srv.url, connect_timeout=1, ping_interval=60)
    except NatsbookError:  # acceptable too; a bare ValueError is not
        return
    try:
        conn.flush(5)
        assert BAD in [t for _, t in conn.errors]
        assert conn.is_connected and conn.servers == [srv.url]
    finally:
        conn.close()
