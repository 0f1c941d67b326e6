"""Operations verbs: ``%nats_services`` (NATS services, the micro protocol),
``%nats_consumers`` (JetStream consumers, their backlog and how it moves) and
``%nats_trace`` (where one message goes, server by server: ADR-41 message tracing) and
``%nats_check`` (health checks as pass / warn / fail rows)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from .. import ops
from ._magic_support import (
    check_name,
    header_args,
    magic_errors,
    parse_line,
    parse_payload_line,
    seconds_arg,
)
from ._magics_base import NatsMagicsBase

#: The longest ``--watch`` (the cell blocks while it samples).
MAX_WATCH = 3600.0


@magics_class
class OpsMagics(NatsMagicsBase):
    """Services and consumers: what runs on the system and whether it keeps up."""

    @magic_arguments()
    @argument("service", nargs="?", help="only services of this name")
    @argument("--timeout", "-t", default=None, metavar="S",
              help="seconds to wait for answers (default: 1)")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_services(self, line: str) -> Any:
        """Running NATS services (any official client's micro library), one row per endpoint:
        name, id, version, endpoint, subject, queue group, requests, errors, average
        processing time, last error, started."""
        args = parse_line(self.nats_services, line)
        timeout = seconds_arg("--timeout", args.timeout, 60.0) or 1.0
        check_name(args.name)
        conn = self._require()
        with magic_errors():
            frame = conn.services(args.service, timeout=timeout)
        self._bind(args.name, frame)
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("stream", help="stream name")
    @argument("consumer", nargs="?", help="show this consumer's info (a dict)")
    @argument("--watch", "-w", default=None, metavar="S",
              help="sample pending and ack-pending for S seconds (the cell waits), one row "
                   "per sample and consumer")
    @argument("--every", "-e", default=None, metavar="S",
              help="seconds between --watch samples (default: 1)")
    @argument("-o", "--out", dest="name", help="bind the result to this variable")
    @line_magic
    def nats_consumers(self, line: str) -> Any:
        """A stream's consumers: pending, ack pending, redelivered, waiting pulls, delivered
        and ack-floor sequences, last active, paused. With CONSUMER its info as a dict; with
        --watch the backlog over time."""
        args = parse_line(self.nats_consumers, line)
        watch = seconds_arg("--watch", args.watch, MAX_WATCH)
        every = seconds_arg("--every", args.every, MAX_WATCH) or 1.0
        check_name(args.name)
        conn = self._require()
        result: Any
        with magic_errors():
            if watch is not None:
                result = conn.consumer_lag(args.stream, args.consumer, every=every,
                                           duration=watch, timeout=self.timeout)
            elif args.consumer is not None:
                result = conn.consumer_info(args.stream, args.consumer, timeout=self.timeout)
            else:
                result = conn.consumers(args.stream, timeout=self.timeout)
        self._bind(args.name, result)
        if hasattr(result, "__len__") and not isinstance(result, dict):
            self._limit_display(len(result))
        return result

    @magic_arguments()
    @argument("subject", help="the subject to publish the traced message on")
    @argument("payload", nargs="?", default=None, help="the message payload (default: empty)")
    @argument("-H", "--header", action="append", metavar="KEY:VALUE", help="a header; repeat")
    @argument("--no-deliver", action="store_true",
              help="trace only (Nats-Trace-Only): nothing is delivered or stored")
    @argument("--timeout", "-t", default=None, metavar="S",
              help="seconds to wait for every server's trace event (default: 2)")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_trace(self, line: str) -> Any:
        """Trace one message (``Nats-Trace-Dest``, nats-server 2.11+): prints its path server
        by server (routes, gateways, leaf nodes, the subscribers and streams it reached) and
        returns one row per event (``conn.trace``)."""
        args = parse_payload_line(self.nats_trace, line)
        timeout = seconds_arg("--timeout", args.timeout, 600.0) or 2.0
        check_name(args.name)
        conn = self._require()
        subject = self._expand(args.subject) or ""
        payload = self._expand(args.payload) or ""
        headers = header_args([self._expand(h) or "" for h in args.header or []])
        with magic_errors():
            frame = conn.trace(subject, payload, headers, deliver=not args.no_deliver,
                               timeout=timeout)
        print(trace_text(frame, subject))
        self._bind(args.name, frame)
        self._limit_display(len(frame))
        return frame

    @magic_arguments()
    @argument("streams", nargs="*", help="only these streams (default: every stream)")
    @argument("--pending", default=None, metavar="WARN,FAIL",
              help="consumer pending thresholds, e.g. 1000,10000")
    @argument("--ack-pending", default=None, metavar="WARN,FAIL",
              help="consumer ack-pending thresholds")
    @argument("--lag", default=None, metavar="WARN,FAIL",
              help="stream replica lag thresholds (default 100,1000)")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_check(self, line: str) -> Any:
        """Health checks as pass/warn/fail rows (``conn.check``): the connection, JetStream,
        streams and consumers, and every server for a system-account user."""
        args = parse_line(self.nats_check, line)
        check_name(args.name)
        limits = {flag: _pair(flag, value) for flag, value in (
            ("--pending", args.pending), ("--ack-pending", args.ack_pending),
            ("--lag", args.lag))}
        conn = self._require()
        with magic_errors():
            frame = conn.check(streams=args.streams or None,
                               consumer_pending=limits["--pending"],
                               consumer_ack_pending=limits["--ack-pending"],
                               stream_lag=limits["--lag"] or (100, 1000),
                               timeout=self.timeout)
        counts = frame["status"].value_counts()
        print(f"natsbook: {len(frame)} checks - " + ", ".join(
            f"{int(counts.get(s, 0))} {s}" for s in ("pass", "warn", "fail"))
            + f" (overall: {frame.attrs['status']})")
        self._bind(args.name, frame)
        self._limit_display(len(frame))
        return frame


def _pair(flag: str, text: str | None) -> tuple[float, float] | None:
    """A WARN,FAIL flag value."""
    if text is None:
        return None
    try:
        warn, fail = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} {text} must be two numbers WARN,FAIL (e.g. 100,1000)") from None
    if not 0 <= warn <= fail:
        raise UsageError(f"{flag} {text}: need 0 <= WARN <= FAIL")
    return warn, fail

def trace_text(frame: Any, subject: str) -> str:
    """The path of a trace frame as lines of text (``n1 -route-> n2``, ``n2 -> stream S``)."""
    edges = ops.trace_edges(frame)
    origin = [str(s) for s in frame["server"].dropna()][:1] or ["?"]
    lines = [f"natsbook: trace of {subject!r} from {origin[0]}"
             f" - {frame.attrs.get('received', 0)} of {frame.attrs.get('expected', 0)} "
             "server events"]
    for e in edges.astype(object).where(edges.notna(), "").to_dict("records"):
        arrow = f"-{e['link']}->" if e["link"] and e["link"] != "client" else "->"
        extra = f" ({e['detail']})" if e["detail"] else ""
        err = f"  ERROR: {e['error']}" if e["error"] else ""
        lines.append(f"  {e['source']} {arrow} {e['target']}{extra}{err}")
    if edges.empty:
        lines.append("  reached no one (no subscriber, no stream)")
    for err in frame.loc[frame["malformed"], "error"].dropna():
        lines.append(f"  malformed: {err}")
    if not frame.attrs.get("complete", True):
        lines.append("  incomplete: some servers' events did not arrive within the timeout")
    return "\n".join(lines)
