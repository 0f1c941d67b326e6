"""Shutdown: close() sends what was published first, within its timeout, and counts what it
could not; close() and interpreter exit leave no thread, socket or nats-server behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import nats
import pytest

import natsbook
from natsbook import LocalServer
from tests.support.fake_server import FakeServer, hello, keep_open, reads_later

from .helpers import wait_for


def natsbook_threads() -> set[threading.Thread]:
    # Server log readers belong to LocalServers (the session one lives on); count the rest.
    return {t for t in threading.enumerate()
            if t.name.startswith("natsbook") and t.name != "natsbook-server-log"}


def fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return out


def socket_inodes_to(port: int) -> set[str]:
    """Inodes of TCP sockets in this machine's table whose remote port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    remote_port = int(parts[2].rsplit(":", 1)[1], 16)
                    if remote_port == port and parts[9] != "0":
                        inodes.add(parts[9])
        except FileNotFoundError:
            continue
    return inodes


def my_sockets_to(port: int) -> int:
    mine = {link.split("socket:[", 1)[1].rstrip("]") for link in fds() if "socket:[" in link}
    return len(mine & socket_inodes_to(port))


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next((ln for ln in f if ln.startswith("State:")), "")
    except FileNotFoundError:
        return True
    return "Z" in state.split(":", 1)[1][:3]  # a zombie is dead, only not yet reaped


@pytest.mark.parametrize("count", [1, 1_000, 100_000])
def test_with_connect_delivers_every_publish(server: LocalServer, subject: str,
                                             count: int) -> None:
    """`with connect() as tx: tx.publish(...)` hands every message to the server before the
    socket closes: an independent subscriber (nats-py) gets all of them, in order (issue 24:
    0 of 1, 0 of 1,000 and 94,055 of 100,000 arrived, while stats said all were sent)."""
    def publish_all() -> dict[str, object]:
        with natsbook.connect(server.url) as tx:
            for i in range(count):
                tx.publish(subject, b"%d" % i)
        return tx.stats

    async def main() -> tuple[list[int], dict[str, object]]:
        nc = await nats.connect(server.url)
        got: list[int] = []
        sub = await nc.subscribe(subject, cb=None)
        await nc.flush()
        stats = await asyncio.to_thread(publish_all)
        try:
            while len(got) < count:
                got.append(int((await sub.next_msg(timeout=10)).data))
            with pytest.raises(nats.errors.TimeoutError):  # and nothing more
                await sub.next_msg(timeout=0.2)
        finally:
            await nc.close()
        return got, stats

    got, stats = asyncio.run(main())
    assert got == list(range(count))
    assert (stats["out_msgs"], stats["pending_msgs"], stats["unsent_msgs"]) == (count, 0, 0)


def test_close_on_a_quiet_connection_does_not_wait(fake: Callable[..., FakeServer]) -> None:
    """Nothing published since the last confirmed flush: close() has no round trip to wait
    for, even from a server that never answers again."""
    srv = fake(lambda p: (hello(p), keep_open(p, 5)))
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    start = time.monotonic()
    c.close(timeout=30.0)
    assert time.monotonic() - start < 10.0  # a round trip would have waited the 30 s
    assert c.stats["unsent_msgs"] == 0 and not c.errors


def test_close_against_a_server_that_stops_reading(fake: Callable[..., FakeServer]) -> None:
    """The server reads nothing after the handshake: close() gives up after its timeout,
    counts what it could not write, and `out_msgs` / `out_bytes` are exactly what reached
    the server's socket (read there once close() returned)."""
    go = threading.Event()
    got: list[bytes] = []
    srv = fake(reads_later(go, got))
    c = natsbook.connect(srv.url, reconnect=False, ping_interval=60)
    count, payload = 200, b"x" * 100_000  # 20 MB: far more than socket buffers hold
    frame = len(b"PUB a 100000\r\n") + len(payload) + 2
    try:
        for i in range(count):
            c.publish("a", payload)
            st = c.stats  # every snapshot adds up
            assert st["out_msgs"] + st["pending_msgs"] + st["unsent_msgs"] == i + 1
        start = time.monotonic()
        c.close(timeout=1.0)
        elapsed = time.monotonic() - start
        # At least its timeout; at most a hang check (stopping the I/O thread may take the
        # timeout again, callback threads 2 s each).
        assert 1.0 <= elapsed < 10.0, f"close took {elapsed:.2f}s"
    finally:
        go.set()
    st = c.stats
    written, unsent = st["out_msgs"], st["unsent_msgs"]
    assert written + unsent == count and st["pending_msgs"] == 0
    assert 0 < written < count, st
    # Exactly the bytes the server got: whole frames counted as written, plus part of the
    # next one (the kernel took it; the message is not counted as sent).
    wait_for(lambda: got, timeout=10)
    assert len(got[0]) == st["out_bytes"]
    assert got[0].count(b"PUB a 100000\r\n") in (written, written + 1)
    assert written * frame <= len(got[0]) < (written + 1) * frame
    text = c.errors[-1][1]
    m = re.fullmatch(rf"closed with (\d+) published messages \((\d+) bytes\) not sent to "
                     rf"{re.escape(srv.url)}: counted in stats\['unsent_msgs'\]", text)
    assert m is not None, text
    assert (int(m[1]), int(m[2])) == (unsent, unsent * frame)


def test_close_leaves_no_thread_or_socket(own_server: LocalServer, subject: str) -> None:
    threads_before = natsbook_threads()
    conn = natsbook.connect(own_server.url)
    got: list[bytes] = []
    conn.subscribe(subject, callback=lambda m: got.append(m.data))
    conn.subscribe(subject + ".>", callback=lambda m: None)
    conn.publish(subject, b"x")
    conn.flush()
    wait_for(lambda: got, timeout=5)
    assert my_sockets_to(own_server.port) == 1
    assert len(natsbook_threads() - threads_before) == 3  # io + 2 dispatchers

    conn.close()
    assert natsbook_threads() - threads_before == set()
    assert my_sockets_to(own_server.port) == 0
    assert conn.is_closed
    conn.close()  # idempotent


def test_connect_subscribe_close_loop_leaks_nothing(own_server: LocalServer,
                                                    subject: str) -> None:
    # One warm-up round so lazily created objects (loggers, codecs) are not counted as leaks.
    def round_trip(i: int) -> None:
        conn = natsbook.connect(own_server.url, name=f"loop-{i}")
        seen: list[int] = []
        sub = conn.subscribe(subject, callback=lambda m: seen.append(1))
        conn.serve(subject + ".svc", lambda m: b"pong")
        assert conn.request(subject + ".svc", b"ping", timeout=5).data == b"pong"
        conn.publish(subject, b"x")
        conn.flush()
        wait_for(lambda: seen, timeout=5)
        assert sub.stats.delivered == 1
        conn.close()

    round_trip(-1)
    threads_before = natsbook_threads()
    fds_before = fds()
    for i in range(20):
        round_trip(i)
    assert natsbook_threads() - threads_before == set()
    leaked = fds() - fds_before
    assert not leaked, f"file descriptors left open: {sorted(leaked)}"
    assert my_sockets_to(own_server.port) == 0


def test_close_while_reconnecting(own_server: LocalServer, subject: str) -> None:
    threads_before = natsbook_threads()
    fds_before = fds()
    conn = natsbook.connect(own_server.url, reconnect_wait=0.05)
    conn.subscribe(subject, callback=lambda m: None)
    own_server.kill()
    wait_for(lambda: conn.status == "reconnecting", timeout=5)
    start = time.monotonic()
    conn.close()
    assert time.monotonic() - start < 3.0
    assert natsbook_threads() - threads_before == set()
    assert fds() - fds_before == set()


def test_drain_leaves_nothing(own_server: LocalServer, subject: str) -> None:
    threads_before = natsbook_threads()
    conn = natsbook.connect(own_server.url)
    conn.subscribe(subject, callback=lambda m: time.sleep(0.001))
    for _ in range(100):
        conn.publish(subject, b"x")
    conn.flush()
    report = conn.drain(10)
    assert report.clean, report
    assert natsbook_threads() - threads_before == set()
    assert my_sockets_to(own_server.port) == 0


def test_killed_and_closed_servers_leave_no_process() -> None:
    srv = natsbook.local_server(jetstream=False)
    pid = srv.pid
    assert pid is not None and not process_gone(pid)
    srv.kill()
    assert process_gone(pid)
    srv.start()
    pid2 = srv.pid
    assert pid2 is not None and pid2 != pid
    srv.close()
    assert process_gone(pid2)
    assert not srv.running


_CHILD = textwrap.dedent("""
    import sys, natsbook
    srv = natsbook.local_server()
    conn = natsbook.connect(srv.url)
    conn.subscribe("x", callback=lambda m: None)
    conn.publish("x", b"1")
    conn.flush()
    print(srv.pid, flush=True)
    {ending}
""")


@pytest.mark.parametrize("ending", ["pass", "sys.exit(3)", "raise SystemExit(0)",
                                    "raise RuntimeError('boom')"])
def test_interpreter_exit_stops_server_and_connection(ending: str) -> None:
    """A kernel that exits (restart) without close() leaves no nats-server behind."""
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(ending=ending)],
                          capture_output=True, text=True, timeout=60)
    pid = int(proc.stdout.split()[0])
    try:
        wait_for(lambda: process_gone(pid), timeout=10)
    finally:
        if not process_gone(pid):
            os.kill(pid, 9)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_kernel_leaves_no_server(sig: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(ending="import time; time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        child.send_signal(sig)
        child.wait(10)
        try:
            wait_for(lambda: process_gone(pid), timeout=3)
        finally:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        if child.stdout is not None:
            child.stdout.close()
