"""Connection and context handling: %nats_connect (URLs, credentials, natscli contexts, the
embedded server, secrets kept out of the input history), %nats_info and %nats_close."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

import natsbook

from ..errors import NatsbookError
from ._context import NatsContext, load_context
from ._display import plural
from ._magic_support import (
    AUTH_KEYS,
    INPUT_VAR_RE,
    magic_errors,
    parse_line,
)
from ._magics_base import NatsMagicsBase
from ._scrub import scrub_cell

if TYPE_CHECKING:
    from natsbook import Connection


@magics_class
class ConnectMagics(NatsMagicsBase):
    """%nats_connect, %nats_info, %nats_close."""

    def _scrub_history(self) -> bool:
        """Replace the secrets typed on ``%nats_connect`` lines of the current cell by ``***``
        in the session's input history: ``In``/``_ih``, ``_i``/``_iN``, the history database
        and its write cache. Exactly the secret characters go (see :mod:`natsbook.notebook._scrub`);
        this does not depend on the line parsing.

        Returns True when the current cell held one (a secret that came from ``{var}`` or a
        context file is not in the cell, and earlier cells are left alone).
        """
        hm = getattr(self.shell, "history_manager", None)
        if hm is None or not hm.input_hist_raw:
            return False
        raw_now = hm.input_hist_raw[-1]
        raw_clean = scrub_cell(raw_now)
        if raw_clean == raw_now:
            return False
        try:  # the history keeps the cell as IPython transformed it, too
            parsed_clean = self._shell.transform_cell(raw_clean).rstrip("\n")
        except Exception:
            parsed_clean = raw_clean
        hm.input_hist_raw[-1] = raw_clean
        if hm.input_hist_parsed:
            hm.input_hist_parsed[-1] = parsed_clean
        if getattr(hm, "_i00", None) == raw_now:
            hm._i00 = raw_clean
        ns = self._shell.user_ns
        for key in [k for k in ns if INPUT_VAR_RE.match(k)]:
            if ns[key] == raw_now:
                ns[key] = raw_clean
        with hm.db_input_cache_lock:
            hm.db_input_cache[:] = [(ln, parsed_clean, raw_clean) if raw == raw_now else
                                    (ln, src, raw) for ln, src, raw in hm.db_input_cache]
            # Already written by the saving thread? Rewrite the row; the thread holds this
            # lock while it writes, so it cannot slip in between.
            with contextlib.suppress(Exception), hm.db as db:
                db.execute("UPDATE history SET source=?, source_raw=? WHERE session=? AND "
                           "source_raw=?", (parsed_clean, raw_clean, hm.session_number,
                                            raw_now))
        return True

    # ------------------------------------------------------------------ connect
    @magic_arguments()
    @argument("urls", nargs="*", metavar="URL",
              help="server URL(s): nats://host:4222, tls://host:4222 (several: failover pool)")
    @argument("--token", help="auth token (prefer {VAR} so it is never typed into a cell)")
    @argument("--user", help="user name (with --password)")
    @argument("--password", help="password (prefer {VAR})")
    @argument("--creds", help="path of a JWT .creds file")
    @argument("--nkey", help="path of a file holding an NKey user seed (SU...)")
    @argument("--tls-ca", help="CA certificate (PEM) to verify the server")
    @argument("--tls-cert", help="client certificate (PEM)")
    @argument("--tls-key", help="client key (PEM)")
    @argument("--name", default="natsbook", help="connection name the server shows")
    @argument("--context", nargs="?", const="", default=None, metavar="NAME",
              help="use a natscli context (~/.config/nats/context/NAME.json); without NAME: "
                   "$NATS_CONTEXT, else the one `nats context select` chose")
    @line_magic
    def nats_connect(self, line: str) -> Connection:
        """Connect to NATS; replaces (and closes) the previous connection.

        Where to: URL arguments; else the context's URL (``--context``, or ``$NATS_CONTEXT``
        when no URL is given); else ``%config NatsMagics.default_server``; else ``$NATS_URL``;
        else an embedded nats-server is started (``%nats_close`` stops it). Flags override the
        context's settings. Returns the Connection.
        """
        # First, whatever fails next (an unknown flag, a missing value, bad quotes).
        typed = self._scrub_history()
        try:
            args = parse_line(self.nats_connect, line)
        except UsageError as exc:
            # argparse echoes what it did not understand, which may be a secret after a
            # mistyped flag (--tokn s3cr3t): keep it out of the message.
            text = str(exc)
            if "unrecognized arguments" in text:
                text = "unrecognized arguments (not shown: they may hold secrets)"
            raise UsageError(f"%nats_connect: {text} - see %nats_connect?") from None

        kwargs: dict[str, Any] = {}
        ctx: NatsContext | None = None
        with magic_errors():
            if args.context is not None:
                ctx = load_context(args.context)
            elif not args.urls and os.environ.get("NATS_CONTEXT", "").strip():
                ctx = load_context(None)
        if ctx is not None:
            kwargs.update(ctx.connect_kwargs())
        explicit = {"token": args.token, "user": args.user, "password": args.password,
                    "creds": args.creds, "nkey_seed": args.nkey}
        if any(v is not None for v in explicit.values()):
            for key in AUTH_KEYS:
                kwargs.pop(key, None)
        kwargs.update({k: v for k, v in explicit.items() if v is not None})
        for key, value in (("tls_ca", args.tls_ca), ("tls_cert", args.tls_cert),
                           ("tls_key", args.tls_key)):
            if value is not None:
                kwargs[key] = value

        started = ""
        if args.urls:
            kwargs["servers"] = args.urls
        elif ctx is not None:
            kwargs.setdefault("servers", None)  # context without a URL: $NATS_URL / default
        elif self.default_server.strip():
            kwargs["servers"] = self.default_server
        elif os.environ.get("NATS_URL", "").strip():
            kwargs["servers"] = None  # connect() reads $NATS_URL
        else:
            with magic_errors():
                if self.server is None or not self.server.running:
                    self.server = natsbook.local_server()
                    started = "started"
                else:
                    started = "reusing"
            kwargs["servers"] = self.server.url

        with magic_errors():
            conn = natsbook.connect(name=args.name, connect_timeout=self.timeout, **kwargs)
        old, self.conn = self.conn, conn
        if old is not None:
            self._ticker.stop()
            self._names.clear()
            old.close()
        info = conn.server_info
        facts = [f"server {info['server_name']}" if info.get("server_name") else "",
                 f"nats-server v{info['version']}" if info.get("version") else "",
                 "JetStream on" if info.get("jetstream") else ""]
        where = conn.connected_url or conn.servers[0]
        via = f" (context {ctx.name!r})" if ctx is not None else ""
        print(f"natsbook: connected to {where}{via}: " + ", ".join(f for f in facts if f))
        if started and self.server is not None:
            print(f"natsbook: no URL, no default_server and no $NATS_URL - {started} an embedded "
                  f"nats-server at {self.server.url} (monitoring {self.server.monitor_url}); "
                  "%nats_close stops it")
        if typed:
            print("natsbook: the secret was replaced by *** in this session's input history; "
                  "the cell itself still holds it - prefer --token {VAR}, a .creds file or "
                  "--context")
        return conn

    # ------------------------------------------------------------------ state
    @line_magic
    def nats_info(self, line: str) -> dict[str, Any]:
        """Server INFO and the connection's state, as a dict."""
        if line.strip():
            raise UsageError("%nats_info takes no arguments")
        conn = self._require()
        rtt: float | None
        try:
            rtt = round(conn.rtt(self.timeout) * 1000, 3)
        except NatsbookError:
            rtt = None
        info = dict(conn.server_info)
        return {
            "status": conn.status,
            "connected_url": conn.connected_url,
            "servers": conn.servers,
            "name": conn.name,
            "server_name": info.get("server_name"),
            "server_id": info.get("server_id"),
            "version": info.get("version"),
            "jetstream": bool(info.get("jetstream")),
            "max_payload": conn.max_payload,
            "rtt_ms": rtt,
            "subscriptions": len(conn.subscriptions),
            "stats": conn.stats,
            "embedded_server": self.server.url if self.server is not None and
            self.server.running else None,
            "server_info": info,
        }

    @magic_arguments()
    @argument("--explorers", action="store_true",
              help="only stop every subject-explorer watch of this kernel (dashboards' and "
                   "standalone ones, also those whose output was cleared); the connection "
                   "stays open")
    @line_magic
    def nats_close(self, line: str) -> None:
        """Close the connection (and stop the embedded server %nats_connect started).

        ``--explorers``: stop every explorer watch of this kernel instead. A watch on ``>``
        makes requests to unserved subjects (from any client of the server) wait for their
        timeout instead of failing with "no responders".
        """
        args = parse_line(self.nats_close, line)
        if args.explorers:
            stopped = natsbook.stop_all()["explorers"]
            print(f"natsbook: stopped {plural(stopped, 'explorer watch', 'explorer watches')}"
                  if stopped else "natsbook: no explorer was watching")
            return
        conn = self.conn
        if conn is None and self.server is None:
            print("natsbook: not connected - nothing to close")
            return
        where = conn.servers[0] if conn is not None else ""
        self._stop_all()
        if where:
            print(f"natsbook: closed the connection to {where}")
        server, self.server = self.server, None
        if server is not None:
            url = server.url
            server.close()
            print(f"natsbook: stopped the embedded nats-server at {url}")
