"""IPython magics: the NATS CLI's daily verbs as notebook lines (``%load_ext natsbook``).

::

    %nats_connect [URL ...] [--token T] [--user U --password P] [--creds F] [--nkey F]
                  [--tls-ca F] [--tls-cert F] [--tls-key F] [--name N] [--context [NAME]]
    %nats_pub SUBJECT [PAYLOAD] [--reply R] [-H KEY:VALUE ...] [--count N]   (%%nats_pub too)
    %nats_sub SUBJECT [--queue Q] [--max N] [-o NAME]
    %nats_req SUBJECT [PAYLOAD] [--timeout S] [-H KEY:VALUE ...]           (%%nats_req too)
    %nats_unsub [SUBJECT | --all]      %nats_subs      %nats_info      %nats_close
    %nats_msgs [PATTERN] [--last N] [--decode json|text|bytes|auto] [-o NAME]
    %nats_streams      %nats_stream NAME [--subject S] [--since T] [--until T] [--last N]
                       [-o NAME]   (T: ISO time, epoch seconds >= 1e9, or 30s/10m/2h ago)
    %nats_kv BUCKET [KEY] [-o NAME]    %nats_server varz|connz|closed|subsz|jsz|healthz|routez
    %nats_panel        (the dashboard of publish/subscribe/request/explorer panels)

Every magic goes through the public API (:func:`natsbook.connect` and ``Connection`` methods).
Options live on the ``NatsMagics`` class: ``%config NatsMagics.timeout = 2``. Library errors
become ``UsageError`` (one line with a hint, no traceback). Secrets given to ``%nats_connect``
are never printed, and are replaced by ``***`` in this session's input history.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import time
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import CaselessStrEnum, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

import natsbook

from ._context import NatsContext, load_context
from ._magic_support import (
    _AUTH_KEYS,
    _FIELD_RE,
    _INPUT_VAR_RE,
    _NOT_CONNECTED,
    _check_name,
    _headers,
    _LiveStatus,
    _parse,
    _parse_payload_line,
    _render_payload,
    _secrets_in_url,
    _StatusTicker,
    _usage_errors,
)
from .errors import NatsbookError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ._connection import Connection
    from ._msg import Msg
    from ._server import LocalServer
    from ._subscription import Subscription

__all__ = ["NatsMagics", "load_ipython_extension", "unload_ipython_extension"]

@magics_class
class NatsMagics(Magics, Configurable):
    """NATS from notebook lines. Settings: ``%config NatsMagics`` lists them."""

    timeout = Float(5.0, help="Seconds to wait for a reply (%nats_req), for the server to "
                              "confirm a publish or subscribe, and for each connect attempt."
                    ).tag(config=True)
    decode = CaselessStrEnum(["auto", "json", "text", "bytes"], default_value="auto",
                             help="How %nats_msgs decodes payloads unless --decode is given."
                             ).tag(config=True)
    display_limit = Int(50, help="At most this many rows are shown for %nats_msgs and "
                                 "%nats_subs (the returned DataFrame has every row; 0: pandas' "
                                 "own display.max_rows).").tag(config=True)
    default_server = Unicode("", help="Server URL(s), comma-separated, for %nats_connect "
                                      "without a URL; empty: $NATS_URL, else an embedded "
                                      "nats-server.").tag(config=True)
    live_status = CaselessStrEnum(["auto", "widget", "text", "off"], default_value="auto",
                                  help="%nats_sub's status line: a live widget (in a kernel "
                                       "with ipywidgets), one text line, or nothing."
                                  ).tag(config=True)
    monitor_url = Unicode("", help="Monitoring URL for %nats_server (empty: "
                                   "$NATSBOOK_MONITOR_URL, the embedded server's, else port "
                                   "8222 of the connected host).").tag(config=True)
    status_interval = Float(0.5, help="Seconds between live status updates (0.25-10)."
                            ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.conn: Connection | None = None
        self.server: LocalServer | None = None
        self._names: dict[int, str] = {}
        self._ticker = _StatusTicker(self.status_interval)
        self._limit_restore: dict[str, Any] | None = None

    @validate("timeout")
    def _valid_timeout(self, proposal: Any) -> float:
        if proposal["value"] <= 0:
            raise TraitError("NatsMagics.timeout must be > 0 seconds")
        return float(proposal["value"])

    @validate("display_limit")
    def _valid_limit(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError("NatsMagics.display_limit must be >= 0 (0: no limit of ours)")
        return int(proposal["value"])

    @validate("status_interval")
    def _valid_interval(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not 0.25 <= value <= 10:
            raise TraitError("NatsMagics.status_interval must be between 0.25 and 10 seconds")
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.interval = value
        return value

    # ------------------------------------------------------------------ helpers
    @property
    def _shell(self) -> InteractiveShell:
        assert self.shell is not None
        return self.shell

    def _require(self) -> Connection:
        conn = self.conn
        if conn is None:
            raise UsageError(_NOT_CONNECTED)
        if conn.is_closed:
            raise UsageError(f"the connection to {conn.servers[0]} is closed - run "
                             "%nats_connect to open a new one")
        return conn

    def _expand(self, text: str | None, keep: tuple[str, ...] = ()) -> str | None:
        """``{expr}`` from the user's namespace, as IPython does for line magics, but field by
        field: JSON such as ``{"id": 1}`` stays as it is, a field that cannot be evaluated is
        left alone, ``{{x}}`` gives a literal ``{x}`` and names in `keep` (``{i}``) are kept.
        """
        if not text or "{" not in text:
            return text

        def field(m: re.Match[str]) -> str:
            if m.group(1) is not None:
                return "{" + m.group(1) + "}"
            expr = m.group(2).strip()
            if expr in keep:
                return m.group(0)
            try:
                return str(self._shell.ev(expr))
            except Exception:
                return m.group(0)

        return _FIELD_RE.sub(field, text)

    def _bind(self, name: str | None, value: Any) -> None:
        if name:
            self._shell.user_ns[name] = value

    def _limit_display(self, rows: int) -> None:
        """Show at most ``display_limit`` rows of the frame this cell returns: pandas' row
        options are lowered for this cell only and restored after it (post_run_cell)."""
        limit = self.display_limit
        current = pd.get_option("display.max_rows")
        if not limit or rows <= limit or (current is not None and current <= limit):
            return
        if self._limit_restore is None:
            self._limit_restore = {"display.max_rows": current,
                                   "display.min_rows": pd.get_option("display.min_rows")}
            self._shell.events.register("post_run_cell", self._restore_display)
        pd.set_option("display.max_rows", limit)
        pd.set_option("display.min_rows", limit)

    def _restore_display(self, *_: Any) -> None:
        saved, self._limit_restore = self._limit_restore, None
        with contextlib.suppress(ValueError):
            self._shell.events.unregister("post_run_cell", self._restore_display)
        for key, value in (saved or {}).items():
            pd.set_option(key, value)

    def _scrub_history(self, secrets: list[str]) -> bool:
        """Replace secrets typed into the current cell by ``***`` in the session's input
        history: ``In``/``_ih``, ``_i``/``_iN``, the history database and its write cache.

        Returns True when the current cell held one (a secret that came from ``{var}`` or a
        context file is not in the cell, and earlier cells are left alone).
        """
        secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        hm = getattr(self.shell, "history_manager", None)
        if not secrets or hm is None or not hm.input_hist_raw:
            return False
        raw_now = hm.input_hist_raw[-1]
        if not any(s in raw_now for s in secrets):
            return False

        def clean(text: str) -> str:
            for s in secrets:
                text = text.replace(s, "***")
            return text

        hm.input_hist_raw[-1] = clean(raw_now)
        if hm.input_hist_parsed:
            hm.input_hist_parsed[-1] = clean(hm.input_hist_parsed[-1])
        if getattr(hm, "_i00", None) == raw_now:
            hm._i00 = clean(raw_now)
        ns = self._shell.user_ns
        for key in [k for k in ns if _INPUT_VAR_RE.match(k)]:
            if ns[key] == raw_now:
                ns[key] = clean(raw_now)
        with hm.db_input_cache_lock:
            hm.db_input_cache[:] = [(ln, clean(src), clean(raw)) if raw == raw_now else
                                    (ln, src, raw) for ln, src, raw in hm.db_input_cache]
            # Already written by the saving thread? Rewrite the row; the thread holds this
            # lock while it writes, so it cannot slip in between.
            with contextlib.suppress(Exception), hm.db as db:
                rows = db.execute("SELECT line, source FROM history WHERE session=? AND "
                                  "source_raw=?", (hm.session_number, raw_now)).fetchall()
                for line_no, src in rows:
                    db.execute("UPDATE history SET source=?, source_raw=? WHERE session=? AND "
                               "line=?", (clean(src), clean(raw_now), hm.session_number,
                                          line_no))
        return True

    def _stop_all(self) -> None:
        self._ticker.stop()
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        self._names.clear()

    def _want_widget(self) -> bool:
        mode = self.live_status.lower()
        if mode == "widget":
            return True
        if mode != "auto":
            return False
        # Only a kernel renders widgets; a terminal would print their repr.
        return getattr(self.shell, "kernel", None) is not None

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
        try:
            args = _parse(self.nats_connect, line)
        except UsageError as exc:
            # argparse echoes what it did not understand, which may be a secret after a
            # mistyped flag (--tokn s3cr3t): keep it out of the message and of the history.
            text = str(exc)
            if "unrecognized arguments" in text:
                with contextlib.suppress(UsageError, ValueError):
                    _, extra = self.nats_connect.parser.parse_known_args(shlex.split(line))
                    self._scrub_history([x for x in extra if not x.startswith("-")])
                text = "unrecognized arguments (not shown: they may hold secrets)"
            raise UsageError(f"%nats_connect: {text} - see %nats_connect?") from None
        secrets = [args.token or "", args.password or ""]
        for url in args.urls:
            secrets += _secrets_in_url(url)
        typed = self._scrub_history(secrets)

        kwargs: dict[str, Any] = {}
        ctx: NatsContext | None = None
        with _usage_errors():
            if args.context is not None:
                ctx = load_context(args.context)
            elif not args.urls and os.environ.get("NATS_CONTEXT", "").strip():
                ctx = load_context(None)
        if ctx is not None:
            kwargs.update(ctx.connect_kwargs())
        explicit = {"token": args.token, "user": args.user, "password": args.password,
                    "creds": args.creds, "nkey_seed": args.nkey}
        if any(v is not None for v in explicit.values()):
            for key in _AUTH_KEYS:
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
            with _usage_errors():
                if self.server is None or not self.server.running:
                    self.server = natsbook.local_server()
                    started = "started"
                else:
                    started = "reusing"
            kwargs["servers"] = self.server.url

        with _usage_errors():
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

    # ------------------------------------------------------------------ publish
    @magic_arguments()
    @argument("subject", help="subject to publish to ({var} expands from the namespace)")
    @argument("payload", nargs="?", default=None,
              help="payload text (quote it; JSON is sent as typed); the cell body in %%%%nats_pub")
    @argument("--reply", "-r", help="reply subject")
    @argument("-H", "--header", action="append", metavar="KEY:VALUE",
              help="a header; repeat for more (repeated keys are kept)")
    @argument("--count", "-c", type=int, default=1,
              help="publish N messages; {i} in the payload becomes 1..N (natscli's {{Count}})")
    @no_var_expand
    @line_cell_magic
    def nats_pub(self, line: str, cell: str | None = None) -> None:
        """Publish a message (or ``--count`` of them) and wait until the server has them."""
        args = _parse_payload_line(self.nats_pub, line)
        if cell is not None and args.payload is not None:
            raise UsageError("%%nats_pub takes the payload from the cell body - leave it off the "
                             "line")
        if args.count < 1:
            raise UsageError(f"--count {args.count} must be at least 1")
        conn = self._require()
        keep = ("i",) if args.count > 1 else ()
        subject = self._expand(args.subject, keep) or ""
        reply = self._expand(args.reply)
        body = cell.rstrip("\r\n") if cell is not None else self._expand(args.payload, keep)
        body = body or ""
        headers = _headers([self._expand(h, keep) or "" for h in args.header or []])
        size = 0
        with _usage_errors():
            for i in range(1, args.count + 1):
                data = body.replace("{i}", str(i)) if keep else body
                hdrs = ({k: [v.replace("{i}", str(i)) for v in vs] for k, vs in headers.items()}
                        if keep and headers else headers)
                subj = subject.replace("{i}", str(i)) if keep else subject
                conn.publish(subj, data, reply=reply, headers=hdrs)
                size += len(data.encode())
            conn.flush(self.timeout)
        what = "1 message" if args.count == 1 else f"{args.count} messages"
        print(f"natsbook: published {what} to {subject!r} ({size:,} payload bytes)")

    # ------------------------------------------------------------------ subscribe
    @magic_arguments()
    @argument("subject", help="subject or pattern (* one token, > the rest)")
    @argument("--queue", "-q", help="queue group: each message goes to one member")
    @argument("--max", type=int, default=None, help="stop after N messages")
    @argument("-o", "--out", dest="name", help="bind the Subscription to this variable")
    @line_magic
    def nats_sub(self, line: str) -> Subscription:
        """Start a capture; shows a one-line live status and returns the Subscription."""
        args = _parse(self.nats_sub, line)
        _check_name(args.name)
        conn = self._require()
        with _usage_errors():
            sub = conn.subscribe(args.subject, queue=args.queue, max_msgs=args.max,
                                 timeout=self.timeout)
        if args.name:
            self._names[sub.sid] = args.name
        self._bind(args.name, sub)
        if self._want_widget():
            import ipywidgets
            from IPython.display import display

            status = _LiveStatus(sub, ipywidgets.HTML())
            display(status.widget)
            self._ticker.interval = self.status_interval
            self._ticker.add(status)
        elif self.live_status.lower() != "off":
            extra = "".join([f", queue {args.queue!r}" if args.queue else "",
                             f", stops after {args.max}" if args.max else ""])
            print(f"natsbook: capturing {args.subject!r}{extra} - %nats_msgs shows what arrived,"
                  f" %nats_unsub {args.subject} stops it")
        return sub

    @magic_arguments()
    @argument("subject", nargs="?", help="stop the active captures on this subject pattern")
    @argument("--all", "-a", action="store_true", help="stop every active capture")
    @line_magic
    def nats_unsub(self, line: str) -> None:
        """Stop captures; what they captured stays available to %nats_msgs."""
        args = _parse(self.nats_unsub, line)
        if (args.subject is None) == (not args.all):
            raise UsageError("give a SUBJECT or --all (see %nats_subs for the active captures)")
        conn = self._require()
        with _usage_errors():
            if args.all:
                subs = conn.subscriptions
                for sub in subs:
                    sub.unsubscribe()
                print(f"natsbook: stopped {len(subs)} subscription(s)")
            else:
                n = sum(1 for s in conn.subscriptions if s.subject == args.subject)
                conn.unsubscribe(args.subject)
                print(f"natsbook: stopped {n} subscription(s) on {args.subject!r}")

    @line_magic
    def nats_subs(self, line: str) -> pd.DataFrame:
        """A DataFrame of the active captures and their counters, indexed by sid."""
        if line.strip():
            raise UsageError("%nats_subs takes no arguments")
        conn = self._require()
        rows = []
        for sub in conn.subscriptions:
            st = sub.stats
            last = sub.last_msg
            rows.append({
                "sid": sub.sid, "subject": sub.subject, "queue": sub.queue or "",
                "name": self._names.get(sub.sid, ""), "max": sub.max_msgs,
                "received": st.received, "stored": st.stored, "evicted": st.evicted,
                "dropped": st.dropped, "bytes": st.bytes,
                "last_subject": last.subject if last is not None else "",
                "created": pd.Timestamp(sub.created, unit="s", tz="UTC"),
            })
        columns = ["sid", "subject", "queue", "name", "max", "received", "stored", "evicted",
                   "dropped", "bytes", "last_subject", "created"]
        frame = pd.DataFrame(rows, columns=columns).set_index("sid")
        frame["max"] = frame["max"].astype("Int64")
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("pattern", nargs="?", help="only messages whose subject matches this pattern")
    @argument("--last", "-n", type=int, default=None, help="only the newest N messages")
    @argument("--decode", "-d", choices=["auto", "json", "text", "bytes"], default=None,
              help="payload decoding (default: %%config NatsMagics.decode)")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_msgs(self, line: str) -> pd.DataFrame:
        """The messages captured on this connection as a DataFrame, oldest first."""
        args = _parse(self.nats_msgs, line)
        _check_name(args.name)
        conn = self._require()
        with _usage_errors():
            if args.pattern is not None:
                natsbook.check_subscribe(args.pattern)
            frame = conn.to_pandas(args.decode or self.decode.lower(), last=args.last,
                                   subject=args.pattern)
        self._bind(args.name, frame)
        self._limit_display(len(frame))
        return frame

    # ------------------------------------------------------------------ request
    @magic_arguments()
    @argument("subject", help="subject of the service")
    @argument("payload", nargs="?", default=None, help="request payload; the cell body in "
                                                       "%%%%nats_req")
    @argument("--timeout", "-t", type=float, default=None,
              help="seconds to wait (default: %%config NatsMagics.timeout)")
    @argument("-H", "--header", action="append", metavar="KEY:VALUE", help="a header; repeat")
    @no_var_expand
    @line_cell_magic
    def nats_req(self, line: str, cell: str | None = None) -> Msg:
        """Send a request; shows the reply (pretty JSON when it is JSON) and the round-trip
        time, returns the reply Msg."""
        args = _parse_payload_line(self.nats_req, line)
        if cell is not None and args.payload is not None:
            raise UsageError("%%nats_req takes the payload from the cell body - leave it off the "
                             "line")
        timeout = self.timeout if args.timeout is None else args.timeout
        if timeout <= 0:
            raise UsageError(f"--timeout {timeout:g} must be > 0 seconds")
        conn = self._require()
        subject = self._expand(args.subject) or ""
        body = cell.rstrip("\r\n") if cell is not None else self._expand(args.payload)
        headers = _headers([self._expand(h) or "" for h in args.header or []])
        with _usage_errors():
            start = time.perf_counter()
            msg = conn.request(subject, body or "", timeout=timeout, headers=headers)
            rtt = time.perf_counter() - start
        print(f"natsbook: reply from {subject!r} in {rtt * 1000:.2f} ms ({len(msg.data):,} "
              "bytes)")
        if msg.headers:
            for key, value in msg.headers.items_all():
                print(f"  {key}: {value}")
        print(_render_payload(msg.data))
        return msg

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

    @line_magic
    def nats_close(self, line: str) -> None:
        """Close the connection (and stop the embedded server %nats_connect started)."""
        if line.strip():
            raise UsageError("%nats_close takes no arguments")
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

    # ------------------------------------------------------------------ JetStream, KV, server
    @line_magic
    def nats_streams(self, line: str) -> pd.DataFrame:
        """Every JetStream stream as a DataFrame (messages, bytes, first/last seq and time)."""
        if line.strip():
            raise UsageError("%nats_streams takes no arguments")
        conn = self._require()
        with _usage_errors():
            frame = conn.streams(timeout=self.timeout)
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("stream", help="stream name")
    @argument("--subject", "-s", help="only stored messages on this subject (wildcards ok)")
    @argument("--since", help="from this time: ISO time (2024-05-01T12:00Z), epoch seconds (a "
                              "bare number >= 1e9: 1700000000.5) or a duration with a unit "
                              "before now (30s, 10m, 2h); a smaller bare number is refused")
    @argument("--until", help="up to this time (the same forms as --since)")
    @argument("--last", "-n", type=int, default=None, help="only the newest N messages")
    @argument("--start-seq", type=int, default=None, help="from this stream sequence")
    @argument("--decode", "-d", choices=["auto", "json", "text", "bytes"], default=None,
              help="payload decoding (default: %%config NatsMagics.decode)")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_stream(self, line: str) -> pd.DataFrame:
        """A stream's stored history as a capture DataFrame with ``seq`` and stored ``time``."""
        args = _parse(self.nats_stream, line)
        _check_name(args.name)
        conn = self._require()
        with _usage_errors():
            frame = conn.stream_history(args.stream, subject=args.subject, since=args.since,
                                        until=args.until, last=args.last,
                                        start_seq=args.start_seq,
                                        decode=args.decode or self.decode.lower(),
                                        timeout=max(self.timeout, 10.0))
        self._bind(args.name, frame)
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("bucket", help="KV bucket name")
    @argument("key", nargs="?", help="show this key's history instead of the whole bucket")
    @argument("--deleted", action="store_true", help="include deleted/purged keys")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_kv(self, line: str) -> pd.DataFrame:
        """A KV bucket as a DataFrame (key, value, revision, created, operation)."""
        args = _parse(self.nats_kv, line)
        _check_name(args.name)
        conn = self._require()
        with _usage_errors():
            bucket = conn.kv(args.bucket)
            if args.key is not None:
                frame = bucket.history(args.key)
            else:
                frame = bucket.to_pandas(self.decode.lower(), include_deleted=args.deleted)
        self._bind(args.name, frame)
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("endpoint", choices=["varz", "connz", "closed", "subsz", "jsz", "healthz",
                                   "routez"], help="monitoring endpoint")
    @argument("--url", help="monitoring URL (default: %%config NatsMagics.monitor_url, "
                            "$NATSBOOK_MONITOR_URL, the embedded server's, else port 8222 of "
                            "the connected host)")
    @argument("-o", "--out", dest="name", help="bind the result to this variable")
    @line_magic
    def nats_server(self, line: str) -> Any:
        """Server monitoring as DataFrames: varz, connz, closed (close reasons, e.g. slow
        consumers), subsz, jsz, healthz, routez."""
        args = _parse(self.nats_server, line)
        _check_name(args.name)
        url = args.url or self.monitor_url or os.environ.get("NATSBOOK_MONITOR_URL", "")
        if not url and self.server is not None and self.server.running:
            url = self.server.monitor_url or ""
        if not url and self.conn is not None and self.conn.connected_url:
            host = self.conn.connected_url.split("://", 1)[1].rsplit(":", 1)[0]
            url = f"http://{host}:8222"
        if not url:
            raise UsageError("no monitoring URL - pass --url http://HOST:8222 or "
                             "%config NatsMagics.monitor_url = '...'")
        with _usage_errors():
            result = getattr(natsbook.monitor(url, timeout=self.timeout), args.endpoint)()
        self._bind(args.name, result)
        if isinstance(result, pd.DataFrame):
            self._limit_display(len(result))
        return result

    @line_magic
    def nats_panel(self, line: str) -> Any:
        """The dashboard: publish, subscribe, request and subject explorer panels in tabs."""
        if line.strip():
            raise UsageError("%nats_panel takes no arguments")
        conn = self._require()
        with _usage_errors():
            return natsbook.dashboard(conn)

    def close(self) -> None:
        """Close the connection and the embedded server (extension unload)."""
        self._stop_all()
        server, self.server = self.server, None
        if server is not None:
            server.close()
        if self._limit_restore is not None:
            self._restore_display()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext natsbook``: register the magics (``%config NatsMagics`` for options)."""
    registry = ipython.magics_manager.registry
    if "NatsMagics" in registry:
        return
    ipython.register_magics(NatsMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext natsbook``: close the connection and any embedded server."""
    magics = ipython.magics_manager.registry.pop("NatsMagics", None)
    if magics is not None:
        magics.close()
        for kind in ("line", "cell"):
            table = ipython.magics_manager.magics[kind]
            for name in [n for n in table if n.startswith("nats_")]:
                del table[name]
        with contextlib.suppress(ValueError):
            ipython.configurables.remove(magics)
