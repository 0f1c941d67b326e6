"""Operations verbs: ``%nats_services`` (NATS services, the micro protocol) and
``%nats_consumers`` (JetStream consumers, their backlog and how it moves)."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ._magic_support import _check_name, _magic_errors, _parse, _seconds_arg
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
        args = _parse(self.nats_services, line)
        timeout = _seconds_arg("--timeout", args.timeout, 60.0) or 1.0
        _check_name(args.name)
        conn = self._require()
        with _magic_errors():
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
        args = _parse(self.nats_consumers, line)
        watch = _seconds_arg("--watch", args.watch, MAX_WATCH)
        every = _seconds_arg("--every", args.every, MAX_WATCH) or 1.0
        _check_name(args.name)
        conn = self._require()
        result: Any
        with _magic_errors():
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
