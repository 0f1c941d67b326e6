"""Data verbs: %nats_streams, %nats_stream (JetStream history), %nats_kv, %nats_server
(monitoring) and %nats_panel (the dashboard)."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

import natsbook

from ._display import REPORT, ReportDict, mark
from ._magic_support import MAX_ROWS, MAX_SEQ, check_name, int_arg, magic_errors, parse_line
from ._magics_base import NatsMagicsBase


@magics_class
class DataMagics(NatsMagicsBase):
    """JetStream streams, KV buckets, server monitoring, the dashboard."""

    # ------------------------------------------------------------------ JetStream, KV, server
    @line_magic
    def nats_streams(self, line: str) -> pd.DataFrame | None:
        """Every JetStream stream as a DataFrame (messages, bytes, first/last seq and time)."""
        if line.strip():
            raise UsageError("%nats_streams takes no arguments")
        conn = self._require()
        with magic_errors():
            frame = conn.streams(timeout=self.timeout)
        if frame.empty:
            # An empty frame shows only a bare header: say what it means and what to do.
            print("natsbook: no streams on this server - create one with "
                  "natsbook.jetstream.add_stream(conn, 'EVENTS', ['events.>']) (or `nats "
                  "stream add`), then publish with conn.js_publish('events.x', ...)")
            return None
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("stream", help="stream name")
    @argument("--subject", "-s", help="only stored messages on this subject (wildcards ok)")
    @argument("--since", help="from this time: ISO time (2024-05-01T12:00Z), epoch seconds (a "
                              "bare number >= 1e9: 1700000000.5) or a duration with a unit "
                              "before now (30s, 10m, 2h); a smaller bare number is refused")
    @argument("--until", help="up to this time (the same forms as --since)")
    @argument("--last", "-n", default=None, metavar="N",
              help="only the newest N messages (1 to 1,000,000,000)")
    @argument("--start-seq", default=None, metavar="SEQ",
              help="from this stream sequence (1 or more)")
    @argument("--decode", "-d", default=None, metavar="DECODE",
              help="payload decoding: auto, json, text, bytes, msgpack, cbor or a name "
                   "given to natsbook.register_decoder (default: %%config NatsMagics.decode)")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_stream(self, line: str) -> pd.DataFrame:
        """A stream's stored history as a capture DataFrame with ``seq`` and stored ``time``."""
        args = parse_line(self.nats_stream, line)
        args.last = int_arg("--last", args.last, 1, MAX_ROWS)
        args.start_seq = int_arg("--start-seq", args.start_seq, 1, MAX_SEQ)
        check_name(args.name)
        conn = self._require()
        with magic_errors():
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
        args = parse_line(self.nats_kv, line)
        check_name(args.name)
        conn = self._require()
        with magic_errors():
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
                                   "routez", "gatewayz", "leafz", "accountz"],
              help="monitoring endpoint")
    @argument("--url", help="monitoring URL (default: every server through the connection "
                            "when it is a system-account user, else %%config "
                            "NatsMagics.monitor_url, $NATSBOOK_MONITOR_URL, the embedded "
                            "server's, else port 8222 of the connected host)")
    @argument("-o", "--out", dest="name", help="bind the result to this variable")
    @line_magic
    def nats_server(self, line: str) -> Any:
        """Server monitoring as DataFrames: varz, connz, closed (close reasons, e.g. slow
        consumers), subsz, jsz, healthz, routez, gatewayz, leafz, accountz. With a
        system-account connection, every server's answer (a ``server_name`` column)."""
        args = parse_line(self.nats_server, line)
        check_name(args.name)
        mon = None if args.url else self._system_monitor()
        if mon is not None:
            with magic_errors():
                result = getattr(mon, args.endpoint)()
            return self._server_result(args.name, result)
        url = args.url or self.monitor_url or os.environ.get("NATSBOOK_MONITOR_URL", "")
        if not url and self.server is not None and self.server.running:
            url = self.server.monitor_url or ""
        if not url and self.conn is not None and self.conn.connected_url:
            host = self.conn.connected_url.split("://", 1)[1].rsplit(":", 1)[0]
            url = f"http://{host}:8222"
        if not url:
            raise UsageError("no monitoring URL - pass --url http://HOST:8222 or "
                             "%config NatsMagics.monitor_url = '...'")
        with magic_errors():
            result = getattr(natsbook.monitor(url, timeout=self.timeout), args.endpoint)()
        return self._server_result(args.name, result)

    def _server_result(self, name: str | None, result: Any) -> Any:
        if isinstance(result, pd.DataFrame) and len(result) == 1:
            # display only: a vertical report, like `nats server info` (varz, jsz and a
            # single connection alike)
            mark(result, REPORT)
        elif isinstance(result, dict):
            result = ReportDict(result)
        self._bind(name, result)
        if isinstance(result, pd.DataFrame):
            self._limit_display(len(result))
        return result

    def _system_monitor(self) -> Any:
        """A monitor over the magics' connection when it is a system-account user (kept
        while the connection is the same), else None."""
        conn = self.conn
        if conn is None or conn.is_closed:
            return None
        cached = getattr(self, "_sys_monitor", None)
        if cached is not None and cached[0] is conn:
            return cached[1]
        try:
            mon = natsbook.monitor(conn, timeout=min(self.timeout, 2.0))
        except natsbook.NatsbookError:
            mon = None
        self._sys_monitor = (conn, mon)
        return mon

    @line_magic
    def nats_panel(self, line: str) -> Any:
        """The dashboard: publish, subscribe, request and subject explorer panels in tabs."""
        if line.strip():
            raise UsageError("%nats_panel takes no arguments")
        conn = self._require()
        with magic_errors():
            return natsbook.dashboard(conn)
