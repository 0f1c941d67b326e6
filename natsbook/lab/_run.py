"""What the ``natsbook`` commands share: free ports, ready files, the status line, the stopper
(signals -> a clean stop), the embedded server and the simulator they start."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ..client import LocalServer

__all__: list[str] = []


# -- small helpers ---------------------------------------------------------------------------
class StatusLine:
    """One line rewritten in place on a terminal; silent when output is not a terminal."""

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self._shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + text[:width])
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


class Stopper:
    """SIGINT/SIGTERM set an event instead of raising in the middle of start-up or clean-up.

    A second Ctrl-C raises KeyboardInterrupt, for a clean-up that hangs.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.event.set()

    def __enter__(self) -> Stopper:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on `port` now.

    The probe binds the way the server will: with SO_REUSEADDR, as tornado (JupyterLab's
    server) and nats-server do on POSIX. A port whose last connections are in TIME-WAIT
    (a lab stopped a moment ago) is free for them, so it is free here; a port someone
    listens on is not. Windows is left without the flag: there it would let two sockets
    share a port, and tornado does not set it either.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if os.name != "nt":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_private(path: Path, text: str) -> None:
    """Write `text` to a new file only its owner can read or write: created with mode 0600
    (O_EXCL: never an existing file, never through a symlink), so it is never readable by
    others, not even between its creation and a chmod."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1  # the file object owns it now
            f.write(text)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)  # ours: O_EXCL created it
        raise


def write_ready_file(path: str | None, info: dict[str, Any]) -> None:
    """Write JSON atomically (others poll for the file's existence): a private temporary file
    (it holds the lab's token) renamed over the target."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    write_private(tmp, json.dumps(info, indent=2))
    try:
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def http_json(url: str, headers: dict[str, str] | None = None,
               timeout: float = 2.0) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{int(n)}"


def server_summary(monitor_url: str | None) -> str:
    if not monitor_url:
        return ""
    try:
        v = http_json(f"{monitor_url}/varz", timeout=1.0)
    except (OSError, ValueError):
        return "server: no answer from monitoring"
    return (f"conns {v.get('connections', 0)} · in {_count(v.get('in_msgs', 0))} msgs · "
            f"out {_count(v.get('out_msgs', 0))} msgs")


def sim_summary(sim: Any) -> str:
    if sim is None:
        return ""
    st = sim.stats
    return (f"simulator {_count(st['published'])} readings · {st['anomalies']} anomalies · "
            f"{st['malformed']} malformed · {sum(st['jobs_done'].values())} jobs")


@contextlib.contextmanager
def embedded_server(args: argparse.Namespace) -> Iterator[LocalServer]:
    srv = LocalServer(port=getattr(args, "nats_port", 0) or 0,
                      jetstream=not getattr(args, "no_jetstream", False), monitor=True,
                      store_dir=getattr(args, "store_dir", None))
    srv.monitor_port = getattr(args, "monitor_port", 0) or None
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


def start_simulator(url: str, args: argparse.Namespace) -> Any:
    from .simulator import Simulator

    return Simulator(url, devices=args.devices, rate=args.rate, seed=args.seed,
                     workers=args.workers, job_rate=args.job_rate,
                     anomaly_rate=args.anomaly_rate, malformed_rate=args.malformed_rate,
                     services=not args.no_services, prefix=args.prefix,
                     inject_every=args.inject_every,
                     binary=None if args.no_binary else args.binary).start()
