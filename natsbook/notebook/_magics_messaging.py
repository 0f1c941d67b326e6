"""Messaging verbs: %nats_pub, %nats_sub, %nats_unsub, %nats_subs, %nats_msgs, %nats_req."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

import natsbook

from ._display import TABLE, mark, plural
from ._magic_support import (
    MAX_PUB_COUNT,
    MAX_ROWS,
    LiveStatus,
    check_name,
    header_args,
    int_arg,
    magic_errors,
    parse_line,
    parse_payload_line,
    render_payload,
    reply_msg,
    seconds_arg,
    shown_here,
)
from ._magics_base import NatsMagicsBase

MAX_REPLIES = 1_000_000
MAX_CONCURRENCY = 100_000

if TYPE_CHECKING:
    from natsbook import Msg, Subscription


@magics_class
class MessagingMagics(NatsMagicsBase):
    """Publish, subscribe (captures), request."""

    # ------------------------------------------------------------------ publish
    @magic_arguments()
    @argument("subject", help="subject to publish to ({var} expands from the namespace)")
    @argument("payload", nargs="?", default=None,
              help="payload text (quote it; JSON is sent as typed); the cell body in %%%%nats_pub")
    @argument("--reply", "-r", help="reply subject")
    @argument("-H", "--header", action="append", metavar="KEY:VALUE",
              help="a header; repeat for more (repeated keys are kept)")
    @argument("--count", "-c", default=None, metavar="N",
              help="publish N messages (1 to 10,000,000); {i} in the subject, --reply, "
                   "headers and payload becomes 1..N (natscli's {{Count}}), {{i}} a literal {i}")
    @no_var_expand
    @line_cell_magic
    def nats_pub(self, line: str, cell: str | None = None) -> None:
        """Publish a message (or ``--count`` of them) and wait until the server has them."""
        args = parse_payload_line(self.nats_pub, line)
        if cell is not None and args.payload is not None:
            raise UsageError("%%nats_pub takes the payload from the cell body - leave it off the "
                             "line")
        counted = args.count is not None
        args.count = int_arg("--count", args.count, 1, MAX_PUB_COUNT) or 1
        conn = self._require()
        # With --count, {i} is the counter (1..N) in the subject, reply, headers and payload,
        # {{i}} a literal {i}; the cell body is not expanded from the namespace, so there only
        # {i} and {{i}} are fields.
        subject = _Counted(self._template(args.subject, counter=counted))
        reply = (_Counted(self._template(args.reply, counter=counted))
                 if args.reply is not None else None)
        if cell is not None:
            text = cell.rstrip("\r\n")
            body = _Counted(_counter_fields(text) if counted else [text])
        else:
            body = _Counted(self._template(args.payload or "", counter=counted))
        header_lines = [_Counted(self._template(h, counter=counted)) for h in args.header or []]
        fixed_headers = header_args([h.fill(0) for h in header_lines])
        size = 0
        with magic_errors():
            for i in range(1, args.count + 1):
                data = body.fill(i)
                hdrs = (header_args([h.fill(i) for h in header_lines])
                        if any(h.counted for h in header_lines) else fixed_headers)
                conn.publish(subject.fill(i), data,
                             reply=reply.fill(i) if reply is not None else None, headers=hdrs)
                size += len(data.encode())
            conn.flush(self.timeout)
        subject_shown = subject.fill(1) if not subject.counted else args.subject
        print(f"natsbook: published {plural(args.count, 'message')} to {subject_shown!r} "
              f"({plural(size, 'payload byte')})")

    # ------------------------------------------------------------------ subscribe
    @magic_arguments()
    @argument("subject", help="subject or pattern (* one token, > the rest)")
    @argument("--queue", "-q", help="queue group: each message goes to one member")
    @argument("--max", default=None, metavar="N",
              help="stop after N messages (1 to 1,000,000,000)")
    @argument("--decode", "-d", default=None, metavar="DECODE",
              help="the capture's payload format (msgpack, cbor or a registered name): "
                   "%%nats_msgs, SQL and live views then decode it by default")
    @argument("-o", "--out", dest="name", help="bind the Subscription to this variable")
    @line_magic
    def nats_sub(self, line: str) -> Subscription:
        """Start a capture; shows a one-line live status and returns the Subscription."""
        args = parse_line(self.nats_sub, line)
        args.max = int_arg("--max", args.max, 1, MAX_ROWS,
                            " (the capture's max_msgs: it stops after that many)")
        check_name(args.name)
        conn = self._require()
        with magic_errors():
            sub = conn.subscribe(args.subject, queue=args.queue, max_msgs=args.max,
                                 timeout=self.timeout, decode=args.decode)
        if args.name:
            self._names[sub.sid] = args.name
        self._bind(args.name, sub)
        if self._want_widget():
            import ipywidgets
            from IPython.display import display

            status = LiveStatus(sub, ipywidgets.HTML())
            display(status.widget)
            self._ticker.interval = self.status_interval
            self._ticker.add(status)
        elif self.live_status.lower() != "off":
            extra = "".join([f", queue {args.queue!r}" if args.queue else "",
                             f", stops after {args.max}" if args.max else ""])
            print(f"natsbook: capturing {args.subject!r}{extra} - %nats_msgs shows what arrived,"
                  f" %nats_unsub {args.subject} stops it")
        else:
            return sub
        # The live line (or the note) stands for it: no frozen repr under it.
        return shown_here(sub, self.shell)

    @magic_arguments()
    @argument("subject", nargs="?", help="stop the active captures on this subject pattern")
    @argument("--all", "-a", action="store_true", help="stop every active capture")
    @line_magic
    def nats_unsub(self, line: str) -> None:
        """Stop captures; what they captured stays available to %nats_msgs."""
        args = parse_line(self.nats_unsub, line)
        if (args.subject is None) == (not args.all):
            raise UsageError("give a SUBJECT or --all (see %nats_subs for the active captures)")
        conn = self._require()
        with magic_errors():
            if args.all:
                subs = conn.subscriptions
                for sub in subs:
                    sub.unsubscribe()
                print(f"natsbook: stopped {plural(len(subs), 'subscription')}")
            else:
                n = sum(1 for s in conn.subscriptions if s.subject == args.subject)
                conn.unsubscribe(args.subject)
                print(f"natsbook: stopped {plural(n, 'subscription')} on {args.subject!r}")

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
        return mark(frame, TABLE)

    @magic_arguments()
    @argument("pattern", nargs="?", help="only messages whose subject matches this pattern")
    @argument("--last", "-n", default=None, metavar="N",
              help="only the newest N messages (1 to 1,000,000,000)")
    @argument("--decode", "-d", default=None, metavar="DECODE",
              help="payload decoding: auto, json, text, bytes, msgpack, cbor or a name "
                   "given to natsbook.register_decoder (default: %%config NatsMagics.decode)")
    @argument("-o", "--out", dest="name", help="bind the DataFrame to this variable")
    @line_magic
    def nats_msgs(self, line: str) -> pd.DataFrame:
        """The messages captured on this connection as a DataFrame, oldest first."""
        args = parse_line(self.nats_msgs, line)
        args.last = int_arg("--last", args.last, 1, MAX_ROWS)
        check_name(args.name)
        conn = self._require()
        with magic_errors():
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
    @argument("--timeout", "-t", default=None, metavar="S",
              help="seconds to wait, > 0 and at most 86400 (default: %%config "
                   "NatsMagics.timeout)")
    @argument("-H", "--header", action="append", metavar="KEY:VALUE", help="a header; repeat")
    @argument("--replies", default=None, metavar="N",
              help="scatter-gather: collect up to N replies (1 to 1,000,000) within --timeout; "
                   "returns them as a DataFrame")
    @argument("--count", "-c", default=None, metavar="N",
              help="load test: send the request N times (1 to 10,000,000), prints a latency "
                   "summary, returns the DataFrame of request_batch")
    @argument("--concurrency", default=None, metavar="C",
              help="with --count: requests in flight at most (1 to 100,000; default 100)")
    @no_var_expand
    @line_cell_magic
    def nats_req(self, line: str, cell: str | None = None) -> Msg | pd.DataFrame:
        """Send a request; shows the reply (pretty JSON when it is JSON) and the round-trip
        time, returns the reply Msg. ``--replies N`` gathers many replies,
        ``--count N --concurrency C`` load-tests the service."""
        args = parse_payload_line(self.nats_req, line)
        if cell is not None and args.payload is not None:
            raise UsageError("%%nats_req takes the payload from the cell body - leave it off the "
                             "line")
        timeout = seconds_arg("--timeout", args.timeout) or self.timeout
        replies = int_arg("--replies", args.replies, 1, MAX_REPLIES)
        count = int_arg("--count", args.count, 1, MAX_PUB_COUNT)
        concurrency = int_arg("--concurrency", args.concurrency, 1, MAX_CONCURRENCY)
        if replies is not None and count is not None:
            raise UsageError("--replies (one request, many replies) and --count (many requests)"
                             " do not go together - pick one")
        if concurrency is not None and count is None:
            raise UsageError("--concurrency goes with --count N (how many requests to send)")
        conn = self._require()
        subject = self._expand(args.subject) or ""
        body = cell.rstrip("\r\n") if cell is not None else self._expand(args.payload)
        headers = header_args([self._expand(h) or "" for h in args.header or []])
        if replies is not None:
            with magic_errors():
                frame = conn.request_many(subject, body or "", max_replies=replies,
                                          max_wait=timeout, headers=headers,
                                          decode=self.decode.lower())
            print(f"natsbook: {len(frame)} repl{'y' if len(frame) == 1 else 'ies'} from "
                  f"{subject!r} (asked for {replies}, waited at most {timeout:g}s)")
            return frame
        if count is not None:
            with magic_errors():
                start = time.perf_counter()
                frame = conn.request_batch(subject, [body or ""] * count,
                                           concurrency=concurrency or 100, timeout=timeout,
                                           headers=headers, decode=self.decode.lower())
                elapsed = time.perf_counter() - start
            print(latency_summary(frame, subject, concurrency or 100, elapsed))
            return frame
        with magic_errors():
            start = time.perf_counter()
            msg = conn.request(subject, body or "", timeout=timeout, headers=headers)
            rtt = time.perf_counter() - start
        print(f"natsbook: reply from {subject!r} in {rtt * 1000:.2f} ms ({len(msg.data):,} "
              "bytes)")
        if msg.headers:
            for key, value in msg.headers.items_all():
                print(f"  {key}: {value}")
        print(render_payload(msg.data))
        return shown_here(reply_msg(msg), self.shell)  # printed: no raw Msg(...) under it


def latency_summary(frame: pd.DataFrame, subject: str, concurrency: int,
                    elapsed: float) -> str:
    """A few lines on a request_batch run: how many answered, errors by kind, latency
    percentiles (of the answered requests)."""
    n = len(frame)
    ok = frame["latency_ms"][frame["error"].isna()]
    lines = [f"natsbook: {n:,} requests to {subject!r}, {concurrency} in flight at most: "
             f"{len(ok):,} ok, {n - len(ok):,} failed in {elapsed:.2f}s "
             f"({n / max(elapsed, 1e-9):,.0f} req/s)"]
    errors = frame["error"].dropna().value_counts()
    if len(errors):
        lines.append("  errors: " + ", ".join(f"{k} {v:,}" for k, v in errors.items()))
        if "error_text" in frame:
            # What the services said: the commonest texts (the row has each one's own).
            failed = frame.loc[frame["error"].notna(), ["error", "error_code", "error_text"]]
            said = Counter(zip(failed["error"].astype(str), failed["error_code"].astype(str),
                               failed["error_text"].astype(str), strict=True))
            for (kind, code, text), count in said.most_common(3):
                shown = text if len(text) <= 120 else text[:117] + "..."
                code_part = "" if code in ("<NA>", "None", "nan") else f" {code}"
                lines.append(f"    {kind}{code_part}: {shown!r} x{count:,}")
    if len(ok):
        q = ok.quantile([0.5, 0.9, 0.99])
        lines.append(f"  latency ms: min {ok.min():.3f}  p50 {q[0.5]:.3f}  p90 {q[0.9]:.3f}  "
                     f"p99 {q[0.99]:.3f}  max {ok.max():.3f}")
        lines.append("  " + rate_limit(n, concurrency, elapsed, float(ok.mean())))
    return "\n".join(lines)


def rate_limit(n: int, concurrency: int, elapsed: float, mean_ms: float) -> str:
    """What set the pace of a request_batch run, from Little's law: the requests in flight on
    average are the rate times the mean latency. A full window means the responders' answer
    time (their queue included) set the rate; a window far from full means this process
    (sending, receiving, the kernel's CPU) did."""
    window = min(concurrency, n)
    in_flight = n / max(elapsed, 1e-9) * mean_ms / 1000.0
    if n <= concurrency:
        return (f"rate set by the slowest reply: all {n:,} requests went out at once "
                f"(--concurrency {concurrency}); send more (--count) to measure a rate")
    if in_flight >= 0.8 * window:
        return (f"rate set by the responders: the window was full ({in_flight:,.0f} of "
                f"{concurrency} in flight on average, {mean_ms:.2f} ms each) - add "
                "responders to the service's queue group; raise --concurrency only if the "
                "latency stays flat as it grows")
    return (f"rate set by this client: {in_flight:,.1f} of {concurrency} allowed requests "
            f"were in flight on average ({mean_ms:.2f} ms each) - sending and receiving in "
            "this process set the pace, not the service")


def _counter_fields(text: str) -> list[str | None]:
    """A cell body split at its ``{i}`` counter fields (``None``); ``{{i}}`` is a literal."""
    parts: list[str | None] = []
    for n, chunk in enumerate(text.split("{{i}}")):
        if n:
            parts.append("{i}")
        pieces = chunk.split("{i}")
        for k, piece in enumerate(pieces):
            if k:
                parts.append(None)
            parts.append(piece)
    return parts


class _Counted:
    """A template from `_template`: `fill(i)` puts the counter into each ``None`` slot."""

    __slots__ = ("counted", "parts", "text")

    def __init__(self, parts: list[str | None]) -> None:
        self.parts = parts
        self.counted = any(p is None for p in parts)
        self.text = "".join(p or "" for p in parts)

    def fill(self, i: int) -> str:
        if not self.counted:
            return self.text
        n = str(i)
        return "".join(n if p is None else p for p in self.parts)
