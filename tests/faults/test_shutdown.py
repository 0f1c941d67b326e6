"""Shutdown: close() and interpreter exit leave no thread, socket or nats-server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import natsbook
from natsbook import LocalServer

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
