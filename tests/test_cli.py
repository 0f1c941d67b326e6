"""The natsbook command against real processes: start, ready, stop, nothing leaked."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import natsbook
from natsbook.lab import _run, cli

from ._proc import alive, descendants, free_port, isolated_env, wait_gone, wait_json

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "natsbook.lab.cli"]


def _spawn(args: list[str], tmp: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, *args], env=isolated_env(tmp, **env), cwd=tmp,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen[str], sig: int, timeout: float = 40.0) -> str:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        raise AssertionError(f"no stop within {timeout}s after signal {sig}:\n{out}") from None
    return out


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _one_message(url: str, subject: str, timeout: float = 15.0) -> natsbook.Msg:
    with natsbook.connect(url) as conn:
        sub = conn.subscribe(subject)
        deadline = time.monotonic() + timeout
        while sub.last_msg is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sub.last_msg is not None, f"nothing on {subject!r} within {timeout}s"
        return sub.last_msg


def test_help_and_version() -> None:
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for command in ("lab", "server", "simulate"):
        assert command in out.stdout
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["server", "--bogus"])
    assert exc.value.code == 2


SECRET = "Sup3r#S3cret/t?k"


@pytest.mark.parametrize("url", [f"nats://alice:{SECRET}@127.0.0.1:1",
                                 f"tls://{SECRET}@127.0.0.1:1",
                                 f"alice:{SECRET}@127.0.0.1:1"])
def test_lab_and_simulate_never_print_the_urls_secret(tmp_path: Path, url: str) -> None:
    lab = subprocess.run([*CLI, "lab", "--dry-run", "--port", "0", "--url", url,
                          "--notebook-dir", str(tmp_path / "nb")], capture_output=True,
                         text=True, timeout=60, env=isolated_env(tmp_path))
    assert lab.returncode == 0, lab.stderr
    assert "***@127.0.0.1:1" in lab.stdout
    sim = subprocess.run([*CLI, "simulate", "--url", url], capture_output=True, text=True,
                         timeout=60, env=isolated_env(tmp_path))
    assert sim.returncode == 1
    for out in (lab.stdout, lab.stderr, sim.stdout, sim.stderr):
        assert "S3cret" not in out and "Sup3r" not in out, out


def test_redact_url_hides_what_parse_url_takes_for_credentials() -> None:
    from natsbook.client import redact_url

    assert redact_url("user:pa://ss@host:4222") == "***@host:4222"
    assert redact_url("nats://u:p@a:1,tls://t@b:2") == "nats://***@a:1,tls://***@b:2"
    assert redact_url("nats://a:1") == "nats://a:1"
    assert redact_url(f"wss://{SECRET}@h/path") == "wss://***@h/path"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_server_serves_and_stops_cleanly(tmp_path: Path, sig: int) -> None:
    ready = tmp_path / "ready.json"
    proc = _spawn(["server", "--simulate", "--rate", "5", "--ready-file", str(ready)], tmp_path)
    try:
        info = wait_json(ready, proc)
        assert info["pid"] == proc.pid
        assert alive(info["server_pid"])
        msg = _one_message(info["url"], "telemetry.>")
        assert set(msg.json()) >= {"device", "temperature", "humidity", "battery", "status"}
        with natsbook.connect(info["url"]) as conn:
            assert "epoch" in conn.request("svc.time", timeout=5).json()
        varz = _get(f"{info['monitor_url']}/varz")
        assert varz["jetstream"]["config"]["store_dir"]
        children = descendants(proc.pid)
        assert info["server_pid"] in children
    finally:
        out = _stop(proc, sig)
    assert proc.returncode == 0, out
    assert "NATS_URL=nats://127.0.0.1:" in out
    assert not wait_gone(children), f"left running: {children}"
    assert not ready.exists()


def test_server_on_a_busy_port_fails_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([*CLI, "server", "--port", str(port)], capture_output=True,
                             text=True, timeout=60, env=isolated_env(tmp_path))
    assert out.returncode == 1
    assert "address already in use" in out.stderr


def test_simulate_runs_for_its_duration(server: natsbook.LocalServer, subject: str,
                                        tmp_path: Path) -> None:
    with natsbook.connect(server.url) as conn:
        sub = conn.subscribe(f"{subject}.>")
        out = subprocess.run(
            [*CLI, "simulate", "--url", server.url, "--devices", "3", "--rate", "10",
             "--duration", "1.5", "--prefix", subject, "--no-services", "--workers", "0"],
            capture_output=True, text=True, timeout=60, env=isolated_env(tmp_path))
        conn.flush()
    assert out.returncode == 0, out.stderr
    assert "published" in out.stdout
    published = int(out.stdout.split("published ")[1].split()[0])
    assert published > 0
    assert sub.received == published
    assert {s.split(".")[-1] for s in sub.to_pandas()["subject"]} == {
        "th-001", "th-002", "th-003"}


def test_simulate_without_a_server_says_what_to_do(tmp_path: Path) -> None:
    port = free_port()
    out = subprocess.run([*CLI, "simulate", "--url", f"nats://127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=60,
                         env=isolated_env(tmp_path))
    assert out.returncode == 1
    assert "natsbook server" in out.stderr


def test_lab_dry_run_starts_nothing(tmp_path: Path) -> None:
    out = subprocess.run([*CLI, "lab", "--dry-run", "--port", "0", "--notebook-dir",
                          str(tmp_path / "nb")], capture_output=True, text=True, timeout=60,
                         env=isolated_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "-m jupyterlab" in out.stdout and "--ServerApp.ip=127.0.0.1" in out.stdout
    assert sorted(p.name for p in (tmp_path / "nb").glob("*.ipynb")) == sorted(
        p.name for p in (REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_lab_starts_becomes_ready_and_stops_everything(tmp_path: Path, sig: int) -> None:
    notebooks = tmp_path / "nb"
    shutil.copytree(REPO / "notebooks", notebooks)
    ready = tmp_path / "lab.json"
    proc = _spawn(["lab", "--no-browser", "--port", "0", "--notebook-dir", str(notebooks),
                   "--rate", "5", "--ready-file", str(ready)], tmp_path)
    try:
        info = wait_json(ready, proc, timeout=120)
        auth = {"Authorization": f"token {info['token']}"}
        assert "started" in _get(f"{info['lab_url']}/api/status", auth)
        names = {c["name"] for c in _get(f"{info['lab_url']}/api/contents", auth)["content"]}
        assert "01-quickstart.ipynb" in names
        # A kernel: Jupyter must shut it down when we stop.
        req = urllib.request.Request(f"{info['lab_url']}/api/kernels", method="POST",
                                     data=b'{"name": "python3"}',
                                     headers={**auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 201
        assert "device" in _one_message(info["nats_url"], "telemetry.>").json()
        children = descendants(proc.pid)
        assert {info["server_pid"], info["lab_pid"]} <= children
        assert len(children) >= 3  # nats-server, JupyterLab, the kernel
    finally:
        out = _stop(proc, sig)
    assert proc.returncode == 0, out
    assert not wait_gone(children), f"left running: {children}\n{out}"
    assert not ready.exists()


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones and checkpoints too) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_find_notebooks_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = _tree(REPO / "notebooks")
    # From a source checkout: a per-user copy, never the repository's notebooks/.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    work = cli.find_notebooks()
    assert work == tmp_path / "data" / "natsbook" / "notebooks" == cli.default_notebook_dir()
    assert REPO not in work.parents
    shipped = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in work.glob("*.ipynb")) == shipped
    # An empty directory named with --notebook-dir gets the examples.
    target = tmp_path / "mine"
    assert cli.find_notebooks(target) == target
    assert sorted(p.name for p in target.glob("*.ipynb")) == shipped
    # The next start: a notebook the user changed is kept (and named), one still as copied
    # gets the shipped version, a deleted one comes back.
    (target / "01-quickstart.ipynb").write_text("{}")
    (target / "02-telemetry-analysis.ipynb").unlink()
    old = b'{"cells": [], "old": true}'
    (target / "03-request-reply.ipynb").write_bytes(old)
    manifest = json.loads((target / cli.MANIFEST).read_text())
    manifest["03-request-reply.ipynb"] = hashlib.sha256(old).hexdigest()  # as if copied so
    (target / cli.MANIFEST).write_text(json.dumps(manifest))
    root, kept = cli._notebooks(target)
    assert root == target and kept == ["01-quickstart.ipynb"]
    assert (target / "01-quickstart.ipynb").read_text() == "{}"
    for name in ("02-telemetry-analysis.ipynb", "03-request-reply.ipynb"):
        assert (target / name).read_bytes() == (REPO / "notebooks" / name).read_bytes()
    # A folder of the user's own notebooks is used as it is.
    own = tmp_path / "own"
    own.mkdir()
    (own / "mine.ipynb").write_text("{}")
    assert cli.find_notebooks(own) == own
    assert [p.name for p in own.iterdir()] == ["mine.ipynb"]
    assert _tree(REPO / "notebooks") == checkout


def test_lab_dry_run_from_the_checkout_runs_the_notebooks_elsewhere(tmp_path: Path) -> None:
    out = subprocess.run([*CLI, "lab", "--dry-run", "--port", "0"], capture_output=True,
                         text=True, timeout=60, env=isolated_env(tmp_path), cwd=REPO)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "open notebooks in:" in x)
    root = Path(line.split("open notebooks in:", 1)[1].strip())
    assert root == tmp_path / "xdg-data" / "natsbook" / "notebooks"
    assert REPO not in root.parents and "01-quickstart.ipynb" in {p.name for p in
                                                                  root.iterdir()}
    assert f"--ServerApp.root_dir={root}" in out.stdout


def test_a_lab_run_never_writes_into_the_checkout(tmp_path: Path) -> None:
    """Run from a source checkout with the default notebook folder: what the user does in
    JupyterLab (save a notebook, make an Untitled one) lands in the copy; the checkout's
    notebooks/ are byte for byte what they were."""
    before = _tree(REPO / "notebooks")
    ready = tmp_path / "lab.json"
    proc = subprocess.Popen([*CLI, "lab", "--no-browser", "--port", "0", "--rate", "5",
                             "--ready-file", str(ready)], env=isolated_env(tmp_path),
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        info = wait_json(ready, proc, timeout=120)
        root = Path(info["notebook_dir"])
        assert root == tmp_path / "xdg-data" / "natsbook" / "notebooks"
        auth = {"Authorization": f"token {info['token']}",
                "Content-Type": "application/json"}
        api = f"{info['lab_url']}/api/contents"
        nb = _get(f"{api}/01-quickstart.ipynb", auth)
        nb["content"]["cells"][0]["source"] = "edited in the lab"
        for method, url, body in (
                ("PUT", f"{api}/01-quickstart.ipynb",
                 {"type": "notebook", "content": nb["content"]}),   # a save / an autosave
                ("POST", f"{api}/01-quickstart.ipynb/checkpoints", None),
                ("POST", api, {"type": "notebook"})):               # File > New: Untitled
            req = urllib.request.Request(url, method=method, headers=auth,
                                         data=json.dumps(body).encode() if body else b"")
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status in (200, 201)
    finally:
        out = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, out
    assert "edited in the lab" in (root / "01-quickstart.ipynb").read_text()
    assert (root / "Untitled.ipynb").exists()
    assert _tree(REPO / "notebooks") == before
    # The next start keeps the edited notebook and says so.
    dry = subprocess.run([*CLI, "lab", "--dry-run", "--port", "0"], capture_output=True,
                         text=True, timeout=60, env=isolated_env(tmp_path), cwd=REPO)
    assert "kept your changed 01-quickstart.ipynb" in dry.stdout, dry.stdout
    assert "edited in the lab" in (root / "01-quickstart.ipynb").read_text()


def _spy_os_open(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, int, int, int]]:
    """Record each os.open: (path, flags, mode asked, mode the file has right after)."""
    opened: list[tuple[Path, int, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, mode, *args, **kwargs)
        opened.append((Path(path), flags, mode, stat.S_IMODE(os.fstat(fd).st_mode)))
        return fd

    monkeypatch.setattr(os, "open", spy)

    def no_chmod(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"chmod{args}: the file was created with other permissions")

    monkeypatch.setattr(os, "chmod", no_chmod)
    return opened


def test_ready_file_is_private_from_its_creation(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The ready file holds the lab's token: its file is created 0600 (O_CREAT | O_EXCL, not
    chmodded after writing), so no one else can read it at any point, whatever the umask, and
    it replaces a world-readable file already there."""
    target = tmp_path / "run" / "ready.json"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    opened = _spy_os_open(monkeypatch)
    old_umask = os.umask(0)  # a file created with the default mode would be world-readable
    try:
        _run.write_ready_file(str(target), {"token": "T0KEN", "lab_url": "http://x"})
    finally:
        os.umask(old_umask)
    ours = [o for o in opened if o[0].parent == target.parent]
    assert len(ours) == 1, opened
    _path, flags, mode, at_creation = ours[0]
    assert flags & os.O_CREAT and flags & os.O_EXCL and flags & os.O_NOFOLLOW
    assert mode == 0o600 and at_creation == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text()) == {"token": "T0KEN", "lab_url": "http://x"}
    assert [p.name for p in target.parent.iterdir()] == ["ready.json"]  # no temporary left


def test_private_files_are_never_written_through_an_existing_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The token file (and the ready file's temporary): a file or a symlink already at the
    path is an error, never written through."""
    opened = _spy_os_open(monkeypatch)
    token = tmp_path / "token"
    _run.write_private(token, "T0KEN")
    assert token.read_text() == "T0KEN" and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert opened[0][2:] == (0o600, 0o600)
    with pytest.raises(FileExistsError):
        _run.write_private(token, "again")
    assert token.read_text() == "T0KEN"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        _run.write_private(link, "x")
    assert not (tmp_path / "elsewhere").exists()


def _time_wait_port() -> int:
    """A loopback port whose only trace is a connection in TIME-WAIT: listened on the way
    JupyterLab's server listens (SO_REUSEADDR; Linux reuses a TIME-WAIT only when both the
    old and the new socket set it), one connection accepted and closed by the listening side
    first (the side that closes first keeps the TIME-WAIT), the listener closed."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        accepted, _ = listener.accept()
        accepted.close()
        client.recv(1)  # the server's FIN has arrived
        client.close()
    return port


def test_a_port_in_time_wait_is_free_for_the_lab() -> None:
    """A quick restart of `natsbook lab` keeps 8888: JupyterLab's server binds with
    SO_REUSEADDR, so a port in TIME-WAIT is free for it, and the probe must agree."""
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError):  # without SO_REUSEADDR: taken ...
        plain.bind(("127.0.0.1", port))
    assert _run.port_free(port)  # ... but JupyterLab would get it
    # A port someone listens on is still taken, even by a listener with SO_REUSEADDR.
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert not _run.port_free(busy.getsockname()[1])
    with socket.socket() as wildcard:
        wildcard.bind(("0.0.0.0", 0))
        wildcard.listen()
        assert not _run.port_free(wildcard.getsockname()[1])
