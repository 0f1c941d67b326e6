"""binder/start run locally: starts nats-server + simulator, execs the command, and its
server is stopped afterwards by its own PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ._proc import alive, descendants, free_port, isolated_env, wait_gone

BINDER = Path(__file__).resolve().parent.parent / "binder"
START = BINDER / "start"

CLIENT = """
import os, time, natsbook
conn = natsbook.connect()   # NATS_URL, exported by binder/start
sub = conn.subscribe("telemetry.>")
deadline = time.monotonic() + 20
while sub.received < 3 and time.monotonic() < deadline:
    time.sleep(0.05)
print("url", os.environ["NATS_URL"])
print("monitor", os.environ["NATSBOOK_MONITOR_URL"])
print("telemetry", sub.received >= 3)
print("svc.time", "epoch" in conn.request("svc.time", timeout=5).json())
conn.close()
"""


def _env(tmp: Path, port: int, monitor_port: int) -> dict[str, str]:
    return isolated_env(tmp, NATSBOOK_PORT=str(port), NATSBOOK_MONITOR_PORT=str(monitor_port),
                        NATSBOOK_RUN_DIR=str(tmp / "run"), PYTHON=sys.executable)


def test_files_repo2docker_reads() -> None:
    reqs = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    assert {".", "-e .", ".[lab]", "-e .[lab]"} & set(reqs)
    assert os.access(START, os.X_OK)
    lines = [line for line in START.read_text().splitlines() if line.strip()]
    assert lines[0].startswith("#!") and lines[-1] == 'exec "$@"'


def test_start_runs_server_and_simulator_then_execs(tmp_path: Path) -> None:
    port, monitor_port = free_port(), free_port()
    run = tmp_path / "run"
    proc = subprocess.run([str(START), sys.executable, "-c", CLIENT], capture_output=True,
                          text=True, timeout=120, env=_env(tmp_path, port, monitor_port))
    pid = int((run / "server.pid").read_text())
    try:
        info = json.loads((run / "ready.json").read_text())
        server_pids = descendants(pid)
        assert info["server_pid"] in server_pids and info["pid"] == pid
    finally:
        os.kill(pid, signal.SIGTERM)
    assert not wait_gone({pid, *server_pids}), "binder/start's server outlived SIGTERM"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert f"url nats://127.0.0.1:{port}" in out
    assert f"monitor http://127.0.0.1:{monitor_port}" in out
    assert "telemetry True" in out and "svc.time True" in out
    assert "simulator" in (run / "server.log").read_text()


def test_start_with_a_busy_port_uses_what_is_there(tmp_path: Path) -> None:
    monitor_port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([str(START), sys.executable, "-c",
                               "import os; print(os.environ['NATS_URL'])"],
                              capture_output=True, text=True, timeout=60,
                              env=_env(tmp_path, port, monitor_port))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"nats://127.0.0.1:{port}"
    assert "taken" in proc.stderr
    assert not (tmp_path / "run" / "server.pid").exists()


def test_start_passes_the_exit_status_through(tmp_path: Path) -> None:
    port, monitor_port = free_port(), free_port()
    proc = subprocess.run([str(START), sys.executable, "-c", "raise SystemExit(7)"],
                          capture_output=True, text=True, timeout=60,
                          env=_env(tmp_path, port, monitor_port))
    pid = int((tmp_path / "run" / "server.pid").read_text())
    children = descendants(pid)
    os.kill(pid, signal.SIGTERM)
    assert not wait_gone({pid, *children})
    assert proc.returncode == 7
    assert not alive(pid)
