"""Process helpers for the CLI and Binder tests (Linux /proc; loopback only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def wait_gone(pids: set[int], timeout: float = 20.0) -> set[int]:
    """Wait until none of `pids` is alive; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p for p in left if alive(p)}
    return left


def wait_json(path: Path, proc: subprocess.Popen[Any] | None = None,
              timeout: float = 60.0) -> dict[str, Any]:
    """Wait for a ready file written by `natsbook ... --ready-file`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"exited with {proc.returncode} before ready:\n{out}")
        time.sleep(0.1)
    raise AssertionError(f"{path} not written within {timeout}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    """os.environ with Jupyter state kept under `tmp` and no inherited NATS_URL."""
    env = dict(os.environ)
    env.pop("NATS_URL", None)
    env.pop("NATSBOOK_MONITOR_URL", None)
    for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTER_DATA_DIR", "data"),
                     ("IPYTHONDIR", "ipython")):
        env[var] = str(tmp / "jupyter" / sub)
    env["XDG_DATA_HOME"] = str(tmp / "xdg-data")  # the lab's copy of the examples
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
