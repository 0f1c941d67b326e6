"""The ``natsbook`` command: ``lab``, ``server``, ``simulate`` and ``record`` (``_record``).

``natsbook lab`` is the one-command start: an embedded nats-server (JetStream and monitoring on),
the telemetry simulator against it, and JupyterLab on the example notebooks with ``NATS_URL``
(and ``NATSBOOK_MONITOR_URL``) set for the kernels. Ctrl-C (SIGINT) or SIGTERM stops everything
it started, each child by its own handle, and exits 0.

Where the example notebooks run (``find_notebooks``): always from a copy, never from where
they ship, so running them (outputs, autosave, ``Untitled.ipynb``, checkpoints) never writes
into a source checkout or the installed package.

1. ``--notebook-dir DIR``: the examples are copied in when DIR holds no notebook yet (or is a
   copy natsbook made before); a folder of other notebooks is used as it is.
2. Otherwise the per-user copy ``$XDG_DATA_HOME/natsbook/notebooks`` (default
   ``~/.local/share/natsbook/notebooks``), from a source checkout's ``notebooks/`` or the
   examples a wheel bundles as ``natsbook/notebooks``.

A copy is refreshed when the examples change, one notebook at a time: a notebook still as
natsbook copied it is replaced by the new version; one the user changed (edited, or run and
saved with outputs) is kept and named in the lab's output - delete or rename it to get the new
version. ``.natsbook-examples.json`` in the copy records what natsbook copied.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..client import redact_url
from ..errors import BadInputError, NatsbookError
from ._record import add_record_parser, cmd_record
from ._run import (
    StatusLine,
    Stopper,
    embedded_server,
    free_port,
    http_json,
    port_free,
    server_summary,
    sim_summary,
    start_simulator,
    write_private,
    write_ready_file,
)

__all__ = ["default_notebook_dir", "find_notebooks", "main"]

#: The natsbook package (the wheel bundles the examples in its notebooks/ folder).
PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: What natsbook copied into a notebook folder: {notebook name: sha256 of the copy}.
MANIFEST = ".natsbook-examples.json"
LAB_READY_TIMEOUT = 90.0


# -- notebooks -------------------------------------------------------------------------------
def _examples_source() -> Path | None:
    checkout = PACKAGE_DIR.parent / "notebooks"
    if (PACKAGE_DIR.parent / "pyproject.toml").exists() and any(checkout.glob("*.ipynb")):
        return checkout
    bundled = PACKAGE_DIR / "notebooks"
    if any(bundled.glob("*.ipynb")):
        return bundled
    return None


def default_notebook_dir() -> Path:
    """The per-user copy of the examples: ``$XDG_DATA_HOME/natsbook/notebooks``, default
    ``~/.local/share/natsbook/notebooks``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser().resolve() / "natsbook" / "notebooks"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_examples(src: Path, dest: Path) -> list[str]:
    """Bring the examples in `dest` up to date with `src`; returns the names of notebooks
    kept because the user changed them while the shipped version changed too."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest = dest / MANIFEST
    try:
        copied = json.loads(manifest.read_text())
    except (OSError, ValueError):
        copied = {}
    if not isinstance(copied, dict):
        copied = {}
    kept: list[str] = []
    for nb in sorted(src.glob("*.ipynb")):
        target = dest / nb.name
        new = _sha256(nb)
        if target.exists():
            have = _sha256(target)
            if have != new and copied.get(nb.name) != have:
                kept.append(nb.name)  # not what natsbook copied: the user's, never replaced
                continue
        if not target.exists() or _sha256(target) != new:
            shutil.copyfile(nb, target)
        copied[nb.name] = new
    manifest.write_text(json.dumps(copied, indent=1, sort_keys=True))
    return kept


def _notebooks(notebook_dir: str | os.PathLike[str] | None) -> tuple[Path, list[str]]:
    """(the folder JupyterLab opens, the edited examples kept there)."""
    src = _examples_source()
    if notebook_dir is not None:
        dest = Path(notebook_dir).expanduser().resolve()
        ours = (dest / MANIFEST).exists() or not any(dest.glob("*.ipynb"))
        kept = _copy_examples(src, dest) if src is not None and ours else []
        dest.mkdir(parents=True, exist_ok=True)
        return dest, kept
    if src is None:
        raise BadInputError("no example notebooks found (neither a source checkout nor bundled "
                            "in the package) - reinstall natsbook, or pass --notebook-dir DIR")
    dest = default_notebook_dir()
    return dest, _copy_examples(src, dest)


def find_notebooks(notebook_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory JupyterLab opens, with the examples copied in or refreshed (the rules
    are in the module docstring).

    Raises:
        BadInputError: no example notebooks can be found (a broken install).
    """
    return _notebooks(notebook_dir)[0]


# -- natsbook server -------------------------------------------------------------------------
def cmd_server(args: argparse.Namespace) -> int:
    out = sys.stdout
    with Stopper() as stopper:
        try:
            ctx = embedded_server(args)
            srv = ctx.__enter__()
        except NatsbookError as exc:
            print(exc, file=sys.stderr)
            return 1
        sim = None
        try:
            if args.simulate:
                sim = start_simulator(srv.url, args)
            js = f"on (store {srv.store_dir})" if srv.jetstream else "off"
            print(f"natsbook {__version__}: nats-server running (pid {srv.pid})", file=out)
            print(f"  NATS_URL={srv.url}", file=out)
            print(f"  NATSBOOK_MONITOR_URL={srv.monitor_url}", file=out)
            print(f"  JetStream {js}", file=out)
            if sim is not None:
                print(f"  simulator: {len(sim.devices)} devices at {sim.rate:g}/s on "
                      f"{sim.prefix}.<site>.<device>, svc.*, jobs.*", file=out)
            print("Ctrl-C to stop.", file=out, flush=True)
            write_ready_file(args.ready_file, {
                "url": srv.url, "monitor_url": srv.monitor_url, "pid": os.getpid(),
                "server_pid": srv.pid, "store_dir": str(srv.store_dir),
                "simulator": sim is not None})
            status = StatusLine(out, not args.quiet)
            while not stopper.wait(1.0):
                if not srv.running:
                    status.clear()
                    print("natsbook: nats-server exited unexpectedly:\n"
                          + "\n".join(list(srv.log)[-10:]), file=sys.stderr)
                    return 1
                status.update(" · ".join(s for s in (
                    server_summary(srv.monitor_url), sim_summary(sim)) if s))
            status.clear()
            print("stopping...", file=out, flush=True)
            return 0
        except NatsbookError as exc:
            print(exc, file=sys.stderr)
            return 1
        finally:
            if sim is not None:
                sim.stop()
            ctx.__exit__(None, None, None)
            if args.ready_file:
                with contextlib.suppress(OSError):
                    Path(args.ready_file).unlink()


# -- natsbook simulate -----------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"
    out = sys.stdout
    with Stopper() as stopper:
        try:
            sim = start_simulator(url, args)
        except NatsbookError as exc:
            print(f"{exc}\n(start a server with `natsbook server`, or pass --url)",
                  file=sys.stderr)
            return 1
        try:
            print(f"simulating {len(sim.devices)} devices at {sim.rate:g}/s against "
                  f"{sim.conn.connected_url if sim.conn else redact_url(url)}: "
                  f"{sim.prefix}.<site>.<device>, svc.*, jobs.* (Ctrl-C to stop)",
                  file=out, flush=True)
            status = StatusLine(out, not args.quiet)
            deadline = time.monotonic() + args.duration if args.duration else None
            while not stopper.wait(0.5):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if not sim.running:
                    status.clear()
                    print("natsbook: the connection closed; simulator stopped", file=sys.stderr)
                    return 1
                status.update(sim_summary(sim))
            status.clear()
        finally:
            sim.stop()
        st = sim.stats
        print(f"published {st['published']} readings ({st['anomalies']} anomalies, "
              f"{st['malformed']} malformed), {sum(st['jobs_done'].values())} jobs done, "
              f"{sum(st['requests'].values())} requests answered", file=out)
        return 0


# -- natsbook lab ----------------------------------------------------------------------------
def lab_command(port: int, root_dir: Path, *, open_browser: bool,
                extra: Sequence[str] = ()) -> list[str]:
    """The JupyterLab command line (the token is passed through JUPYTER_TOKEN_FILE)."""
    cmd = [sys.executable, "-m", "jupyterlab",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={root_dir}",
           f"--ServerApp.open_browser={open_browser}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd + list(extra)


#: Page config for the lab: no "get notified about official Jupyter news?" toast. It disables
#: JupyterLab's announcements plugin the documented way (what `jupyter labextension disable
#: @jupyterlab/apputils-extension:announcements` writes), for this lab only.
QUIET_PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


def _quiet_lab_config(tmp: Path) -> str:
    """A JUPYTER_CONFIG_PATH with a labconfig/page_config.json holding QUIET_PAGE_CONFIG in
    front of the user's own path (their config dir and settings stay as they are)."""
    labconfig = tmp / "config" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps(QUIET_PAGE_CONFIG))
    rest = os.environ.get("JUPYTER_CONFIG_PATH", "")
    return os.pathsep.join(p for p in (str(tmp / "config"), rest) if p)


def _kept_note(kept: Sequence[str]) -> str:
    return (f"kept your changed {', '.join(kept)} (the example changed since; delete or "
            "rename yours to get the new version)")


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (Jupyter then shuts its kernels down), SIGKILL to its group if it hangs."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == its pid
        proc.wait(5)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cmd_lab(args: argparse.Namespace, extra: Sequence[str]) -> int:
    out = sys.stdout
    try:
        root, kept = _notebooks(args.notebook_dir)
    except NatsbookError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.port is None:
        port = 8888 if port_free(8888) else free_port()
    elif args.port == 0:
        port = free_port()
    else:
        port = args.port
    cmd = lab_command(port, root, open_browser=not args.no_browser, extra=extra)
    if args.dry_run:
        print("natsbook lab (dry run) would:", file=out)
        server = f"no, use {redact_url(args.url)}" if args.url else "yes (JetStream, monitoring)"
        print(f"  start nats-server: {server}", file=out)
        print(f"  start the simulator: {'no' if args.no_simulator else 'yes'}", file=out)
        print(f"  open notebooks in: {root}", file=out)
        if kept:
            print(f"  {_kept_note(kept)}", file=out)
        print(f"  run: {' '.join(cmd)}", file=out)
        return 0

    with Stopper() as stopper, contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="natsbook-lab-")))
        try:
            server_pid: int | None = None
            if args.url:
                url, monitor_url = args.url, args.monitor_url
            else:
                srv = stack.enter_context(embedded_server(args))
                url, monitor_url, server_pid = srv.url, srv.monitor_url, srv.pid
            sim = None
            if not args.no_simulator:
                sim = start_simulator(url, args)
                stack.callback(sim.stop)
        except NatsbookError as exc:
            print(exc, file=sys.stderr)
            return 1
        if stopper.stopped:
            return 0
        token = secrets.token_urlsafe(24)
        token_file = tmp / "token"
        write_private(token_file, token)
        env = dict(os.environ, NATS_URL=url, JUPYTER_TOKEN_FILE=str(token_file),
                   JUPYTER_CONFIG_PATH=_quiet_lab_config(tmp))
        env.pop("JUPYTER_TOKEN", None)
        if monitor_url:
            env["NATSBOOK_MONITOR_URL"] = monitor_url
        log_path = tmp / "jupyterlab.log"
        log = stack.enter_context(open(log_path, "wb"))
        # Its own session: a terminal's Ctrl-C reaches only us, and we stop it in order.
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
        stack.callback(_stop_process, proc)
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"token {token}"}
        deadline = time.monotonic() + LAB_READY_TIMEOUT
        while True:
            if stopper.wait(0.25):
                return 0
            if proc.poll() is not None:
                print(f"natsbook: JupyterLab exited with code {proc.returncode}:\n"
                      f"{_tail(log_path)}", file=sys.stderr)
                return 1
            try:
                http_json(f"{base}/api/status", auth, timeout=2.0)
                break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                print(f"natsbook: JupyterLab did not answer on {base} within "
                      f"{LAB_READY_TIMEOUT:g}s:\n{_tail(log_path)}", file=sys.stderr)
                return 1
        print(f"natsbook {__version__} lab is running", file=out)
        print(f"  NATS        {redact_url(url)}", file=out)
        if monitor_url:
            print(f"  monitoring  {monitor_url}", file=out)
        if sim is not None:
            print(f"  simulator   {len(sim.devices)} devices at {sim.rate:g}/s on "
                  "telemetry.<site>.<device>, svc.*, jobs.*", file=out)
        print(f"  notebooks   {root}", file=out)
        if kept:
            print(f"              {_kept_note(kept)}", file=out)
        print(f"  JupyterLab  {base}/lab?token={token}", file=out)
        print(f"  lab log     {log_path}", file=out)
        print("Ctrl-C stops everything.", file=out, flush=True)
        write_ready_file(args.ready_file, {
            "nats_url": url, "monitor_url": monitor_url, "lab_url": base, "token": token,
            "pid": os.getpid(), "lab_pid": proc.pid, "notebook_dir": str(root),
            "server_pid": server_pid})
        if args.ready_file:
            stack.callback(lambda: Path(args.ready_file).unlink(missing_ok=True))
        status = StatusLine(out, not args.quiet)
        code = 0
        while not stopper.wait(1.0):
            if proc.poll() is not None:
                status.clear()
                print(f"natsbook: JupyterLab exited (code {proc.returncode})", file=sys.stderr)
                code = proc.returncode or 0
                break
            status.update(" · ".join(s for s in (
                server_summary(monitor_url), sim_summary(sim)) if s))
        status.clear()
        print("stopping JupyterLab, simulator and nats-server...", file=out, flush=True)
    return code


# -- argument parsing ------------------------------------------------------------------------
def _add_sim_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulator")
    g.add_argument("--devices", type=int, default=12, help="simulated sensors (default 12)")
    g.add_argument("--rate", type=float, default=2.0,
                   help="readings per second per device (default 2)")
    g.add_argument("--workers", type=int, default=3, help="jobs.> worker pool size (default 3)")
    g.add_argument("--job-rate", type=float, default=0.5,
                   help="jobs published per second (default 0.5)")
    g.add_argument("--anomaly-rate", type=float, default=0.01,
                   help="fraction of anomalous readings (default 0.01)")
    g.add_argument("--malformed-rate", type=float, default=0.005,
                   help="fraction of malformed payloads (default 0.005)")
    g.add_argument("--inject-every", type=float, default=2.0, metavar="S",
                   help="at least one anomaly and one malformed payload every S seconds, so "
                        "a short capture has some (default 2; 0: only the rates)")
    g.add_argument("--no-services", action="store_true", help="do not serve svc.*")
    g.add_argument("--seed", type=int, default=None, help="random seed (reproducible readings)")
    g.add_argument("--prefix", default="telemetry",
                   help="first subject token of the readings (default telemetry)")
    g.add_argument("--binary", default="binary", metavar="ROOT",
                   help="each reading again as MessagePack and Protobuf on "
                        "ROOT.msgpack.> / ROOT.proto.> (default binary)")
    g.add_argument("--no-binary", action="store_true", help="no binary-telemetry family")


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats-port", type=int, default=0,
                   help="client port of the embedded server (default: a free one)")
    p.add_argument("--monitor-port", type=int, default=0,
                   help="HTTP monitoring port (default: a free one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="natsbook", description="NATS in Jupyter: embedded server, simulator, JupyterLab.")
    parser.add_argument("--version", action="version", version=f"natsbook {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{lab,server,simulate,record}")
    sub.required = True

    lab = sub.add_parser(
        "lab", help="nats-server + simulator + JupyterLab on the example notebooks",
        description="Start the embedded nats-server (unless --url), the telemetry simulator "
                    "and JupyterLab with NATS_URL set. Unknown options go to JupyterLab.")
    lab.add_argument("--url", help="use this NATS server instead of starting one")
    lab.add_argument("--monitor-url", help="its monitoring URL (with --url), for 05-monitoring")
    lab.add_argument("--no-simulator", action="store_true", help="do not run the simulator")
    lab.add_argument("--port", type=int, default=None,
                     help="JupyterLab port (default 8888, or a free one if taken; 0: free)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("--notebook-dir",
                     help="run the notebooks here (the examples are copied in if it has no "
                          "notebook; default ~/.local/share/natsbook/notebooks)")
    lab.add_argument("--ready-file",
                     help="write URLs, token and PIDs as JSON here once ready (for scripts)")
    lab.add_argument("--dry-run", action="store_true",
                     help="print what would be started, start nothing")
    lab.add_argument("-q", "--quiet", action="store_true", help="no status line")
    _add_server_options(lab)
    _add_sim_options(lab)

    srv = sub.add_parser("server", help="run the embedded nats-server and print its URLs",
                         description="Run nats-server (JetStream + monitoring) until Ctrl-C.")
    srv.add_argument("--port", dest="nats_port", type=int, default=0,
                     help="client port (default: a free one; 4222 is the NATS default)")
    srv.add_argument("--monitor-port", type=int, default=0,
                     help="HTTP monitoring port (default: a free one; 8222 is the default)")
    srv.add_argument("--no-jetstream", action="store_true", help="JetStream off")
    srv.add_argument("--store-dir", help="JetStream store directory (default: temporary)")
    srv.add_argument("--simulate", action="store_true", help="also run the simulator")
    srv.add_argument("--ready-file", help="write URLs and PIDs as JSON here once ready")
    srv.add_argument("-q", "--quiet", action="store_true", help="no status line")
    _add_sim_options(srv)

    sim = sub.add_parser("simulate", help="publish IoT telemetry, serve svc.*, run jobs.> workers",
                         description="Run the telemetry simulator against a NATS server.")
    sim.add_argument("--url", help="server URL (default: $NATS_URL or nats://127.0.0.1:4222)")
    sim.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    sim.add_argument("-q", "--quiet", action="store_true", help="no status line")
    _add_sim_options(sim)
    add_record_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``natsbook`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "lab":
        return cmd_lab(args, extra)
    if args.command == "server":
        return cmd_server(args)
    if args.command == "record":
        return cmd_record(args)
    return cmd_simulate(args)


if __name__ == "__main__":
    sys.exit(main())
