"""Support for the magics: argument parsing, error mapping, payload rendering and the throttled
live status line of %nats_sub."""

from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import math
import re
import shlex
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from IPython.core.error import UsageError

from .. import Msg
from ..errors import BadInputError, ConnectionClosedError, NatsbookError
from ._display import plural

if TYPE_CHECKING:
    from natsbook import Subscription

NOT_CONNECTED = ("not connected - run %nats_connect first (a URL, --context NAME, or nothing: "
                  "$NATS_URL, else an embedded nats-server)")
# {expr} fields in payload-bearing lines: no quotes or colons inside, so JSON objects such as
# {"id": 1} are never taken for a field (IPython's own expansion would turn that into "id").
FIELD_RE = re.compile(r"\{\{([^{}\"':]+)\}\}|\{([^{}\"':]+)\}")
INPUT_VAR_RE = re.compile(r"^_i(\d*|i|ii|00)$")
AUTH_KEYS = ("token", "user", "password", "creds", "nkey_seed")
_SHOW_CHARS = 20_000


#: Set on a natsbook error that a magic raised: shown as one line (see `show_magic_error`).
_FROM_MAGIC = "_natsbook_from_magic"


@contextlib.contextmanager
def magic_errors() -> Iterator[None]:
    """The magic boundary. What the line asked for was wrong (a ``BadInputError``: a bad
    subject, payload, name or flag value): a ``UsageError``. It failed at run time (no
    responders, a timeout, a refused connection, a stream that does not exist): the natsbook
    error itself, marked so that `show_magic_error` prints it as one line, no traceback."""
    try:
        yield
    except BadInputError as exc:
        raise UsageError(str(exc)) from None
    except NatsbookError as exc:
        if isinstance(exc, ConnectionClosedError) and "%nats_connect" not in str(exc):
            exc.args = (f"{exc} (in the notebook: %nats_connect)",)
        setattr(exc, _FROM_MAGIC, True)
        raise exc.with_traceback(None) from None


def show_magic_error(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
                     tb_offset: int | None = None) -> None:
    """IPython's custom exception handler for ``NatsbookError`` (``set_custom_exc``): an
    error a magic raised shows as one line, ``NoRespondersError: natsbook: no responders on
    ...``, as a ``UsageError`` does; one from the user's own code keeps its full traceback."""
    if getattr(value, _FROM_MAGIC, False):
        shell._showtraceback(etype, value, [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"])
    else:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def install_error_display(shell: Any) -> None:
    """Let `show_magic_error` show natsbook errors, unless another handler is installed."""
    if not shell.custom_exceptions:
        shell.set_custom_exc((NatsbookError,), show_magic_error)


def uninstall_error_display(shell: Any) -> None:
    if shell.custom_exceptions == (NatsbookError,):
        shell.set_custom_exc((), None)


def parse_line(func: Any, line: str) -> Any:
    """Split like a POSIX shell (quotes are removed, as natscli users expect; IPython's own
    magic_arguments splitting keeps them), then parse with the magic's argparse parser."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # unbalanced quotes
        raise UsageError(f"cannot split the line: {exc} - quote payloads that hold spaces or "
                         "quotes, e.g. '{\"id\": 1}'") from None
    return func.parser.parse_args(argv)


_JSON_AFTER_SUBJECT = re.compile(r"\s*[^\s-]\S*\s+(?=[\[{])")


def parse_payload_line(func: Any, line: str) -> Any:
    """Like parse_line, but an unquoted JSON object or array right after the subject is taken
    verbatim as the payload (``%nats_pub s {"temp": 20.1} --count 2``), as a user would type
    it; anything else is split like a shell."""
    m = _JSON_AFTER_SUBJECT.match(line)
    if m is not None:
        start = m.end()
        why = ""
        try:
            _, end = json.JSONDecoder().raw_decode(line, start)
        except ValueError as exc:
            end, why = -1, str(exc)
        if end < 0:
            try:
                return parse_line(func, line)
            except UsageError as exc:  # e.g. "unrecognized arguments: json}"
                raise UsageError(f"{exc} - the payload after the subject starts like JSON "
                                 f"but is not JSON ({why}): fix it, or quote it as text, "
                                 "e.g. '{\"id\": 1}'") from None
        if end > start:
            args = parse_line(func, line[:start] + line[end:])
            if args.payload is not None:
                raise UsageError("two payloads given: the JSON after the subject and "
                                 f"{args.payload!r} - give one")
            args.payload = line[start:end]
            return args
    return parse_line(func, line)


#: Upper bounds of the magics' numeric flags: past them a typo is far likelier than intent.
MAX_SECONDS = 86_400.0
MAX_PUB_COUNT = 10_000_000
MAX_ROWS = 1_000_000_000
MAX_SEQ = 2**64 - 1


def int_arg(flag: str, text: str | None, low: int, high: int, hint: str = "") -> int | None:
    """A whole-number flag value within [low, high] (None when the flag was not given).

    Raises:
        UsageError: one line naming the flag, the value and the accepted range.
    """
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise UsageError(f"{flag} {text} must be a whole number from {low:,} to {high:,}{hint}")
    return value


def seconds_arg(flag: str, text: str | None, high: float = MAX_SECONDS) -> float | None:
    """A duration flag value in seconds: finite, > 0 and at most `high` (None: not given).

    Raises:
        UsageError: one line naming the flag, the value and the accepted range.
    """
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= high):
        raise UsageError(f"{flag} {text} must be > 0 seconds and at most {high:,g} - e.g. "
                         f"{flag} 2.5")
    return value


def check_name(name: str | None) -> None:
    if name is not None and not name.isidentifier():
        raise UsageError(f"-o {name!r} is not a valid Python variable name")


def header_args(items: list[str] | None) -> dict[str, list[str]] | None:
    if not items:
        return None
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise UsageError(f"header {item!r} is not KEY:VALUE - e.g. -H Content-Type:json")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def render_payload(data: bytes) -> str:
    """Pretty JSON when it is JSON, else text, else a bytes repr; long bodies are cut."""
    if not data:
        return "(empty payload)"
    try:
        text = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = repr(data)
    if len(text) > _SHOW_CHARS:
        text = text[:_SHOW_CHARS] + f"\n... ({len(text) - _SHOW_CHARS} more characters; the " \
                                    "returned Msg holds all of it)"
    return text


def shown_here(obj: Any, shell: Any) -> Any:
    """`obj`, marked as already shown by the magic (a live status line, a pretty reply).

    When it is the cell's result IPython shows nothing more (no frozen repr under a live
    line, no raw ``Msg(...)`` under the pretty reply); displayed in a later cell, or by
    ``display()``, it renders as usual. `obj` must take instance attributes.
    """
    count = getattr(shell, "execution_count", None)

    def already_shown() -> None:
        with contextlib.suppress(AttributeError):
            del obj._ipython_display_
        if getattr(shell, "execution_count", None) != count:
            from IPython.display import display

            display(obj)

    obj._ipython_display_ = already_shown
    return obj


def reply_msg(msg: Any) -> Any:
    """A copy of a (slotted) Msg that can carry the shown_here mark."""
    return _Reply(*(getattr(msg, f.name) for f in dataclasses.fields(msg)))


class _Reply(Msg):
    """A reply the magic printed already (a Msg in every other way)."""

    def __repr__(self) -> str:
        return "Msg" + Msg.__repr__(self).removeprefix(type(self).__qualname__)


class LiveStatus:
    """One subscription's status line; the ticker thread sets its widget's value (a trait)."""

    __slots__ = ("_last_n", "_last_t", "done", "sub", "widget")

    def __init__(self, sub: Subscription, widget: Any) -> None:
        self.sub = sub
        self.widget = widget
        self.done = False
        self._last_n = sub.received
        self._last_t = time.monotonic()
        self.widget.value = self.render(0.0)

    def render(self, rate: float) -> str:
        sub = self.sub
        last = sub.last_msg
        state = "●" if sub.active else "■ stopped"
        parts = [f"{state} <b>{html.escape(sub.subject)}</b>",
                 plural(sub.received, "msg"), f"{rate:,.1f}/s"]
        if sub.queue:
            parts.insert(1, f"queue {html.escape(sub.queue)}")
        if last is not None:
            parts.append(f"last: {html.escape(last.subject)}")
        return ("<span style='font-family: monospace; font-size: 12px'>"
                + " · ".join(parts) + "</span>")

    def tick(self) -> None:
        now = time.monotonic()
        n = self.sub.received
        rate = (n - self._last_n) / (now - self._last_t) if now > self._last_t else 0.0
        self._last_n, self._last_t = n, now
        if not self.sub.active:
            self.done = True
            rate = 0.0
        value = self.render(rate)
        if value != self.widget.value:  # set only on change: no comm traffic when idle
            self.widget.value = value


class StatusTicker:
    """One throttled background timer for every live status line of a magics instance.

    It only sets widget traits (never ``with output:``), drops lines whose subscription has
    ended, and exits when none is left.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._items: list[LiveStatus] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, status: LiveStatus) -> None:
        with self._lock:
            self._items.append(status)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="natsbook-magics-status")
                self._thread.start()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                items = list(self._items)
            for st in items:
                try:
                    st.tick()
                except Exception:  # a widget gone bad must not kill the other lines
                    st.done = True
            with self._lock:
                self._items = [st for st in self._items if not st.done]
                if not self._items:
                    self._thread = None
                    return
        with self._lock:
            self._thread = None

    def stop(self) -> None:
        """Final update of every line, then stop the thread."""
        with self._lock:
            thread, items = self._thread, list(self._items)
            self._items.clear()
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        for st in items:
            with contextlib.suppress(Exception):
                st.tick()
