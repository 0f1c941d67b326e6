"""The NATS client protocol as a sans-IO codec: frames in, bytes out; bytes in, frames out.

The parser is built for bulk capture: one call handles a whole ``recv()`` chunk, finds frame
boundaries with ``bytes.find`` and hands back MSG/HMSG frames grouped by subscription id, with
no per-message objects beyond one tuple. Any split of the stream parses the same.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, cast

import orjson

from ..errors import BadHeaderError, ProtocolError
from ._runs import MsgRun, find_run

__all__ = [
    "PING",
    "PONG",
    "HeaderInput",
    "Parser",
    "decode_info",
    "encode_connect",
    "encode_headers",
    "encode_pub",
    "encode_sub",
    "encode_unsub",
    "header_block_error",
    "parse_headers",
]

CRLF = b"\r\n"
PING = b"PING\r\n"
PONG = b"PONG\r\n"
HDR_LINE = b"NATS/1.0"
# A control line longer than this is not NATS (the server's own limit is 4 KiB by default).
MAX_CONTROL_LINE = 64 * 1024
# Refuse frames above this size even if the server's INFO claims a larger max_payload.
HARD_MAX_FRAME = 256 * 1024 * 1024

OP_INFO = "INFO"
OP_PING = "PING"
OP_PONG = "PONG"
OP_OK = "+OK"
OP_ERR = "-ERR"

HeaderInput = Mapping[str, "str | Iterable[str]"] | Iterable[tuple[str, str]]
#: One received message before it becomes an object: (subject, reply, header block, payload).
RawMsg = tuple[bytes, "bytes | None", "bytes | None", bytes]


def encode_connect(options: Mapping[str, object]) -> bytes:
    return b"CONNECT " + orjson.dumps(dict(options)) + CRLF


def encode_sub(subject: str, sid: int, queue: str | None = None) -> bytes:
    if queue:
        return f"SUB {subject} {queue} {sid}\r\n".encode()
    return f"SUB {subject} {sid}\r\n".encode()


def encode_unsub(sid: int, max_msgs: int | None = None) -> bytes:
    if max_msgs:
        return f"UNSUB {sid} {max_msgs}\r\n".encode()
    return f"UNSUB {sid}\r\n".encode()


def encode_pub(subject: bytes, reply: bytes | None, payload: bytes,
               header_block: bytes | None = None) -> bytes:
    """PUB or HPUB for already-validated subject/reply."""
    if header_block:
        total = len(header_block) + len(payload)
        if reply:
            head = b"HPUB %b %b %d %d\r\n" % (subject, reply, len(header_block), total)
        else:
            head = b"HPUB %b %d %d\r\n" % (subject, len(header_block), total)
        return head + header_block + payload + CRLF
    if reply:
        return b"PUB %b %b %d\r\n%b\r\n" % (subject, reply, len(payload), payload)
    return b"PUB %b %d\r\n%b\r\n" % (subject, len(payload), payload)


def _header_items(headers: HeaderInput) -> Iterable[tuple[str, str]]:
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if isinstance(value, str | bytes):
                yield key, value if isinstance(value, str) else value.decode()
            else:
                for v in value:
                    yield key, v
    else:
        yield from headers


def encode_headers(headers: HeaderInput, status: str | None = None) -> bytes:
    """Encode headers (a mapping of key -> value or list of values, or (key, value) pairs).

    Raises:
        BadHeaderError: a key is empty or holds ':' / whitespace / control characters, or a
            value holds CR or LF.
    """
    lines = [b"NATS/1.0" + (b" " + status.encode() if status else b"")]
    for key, value in _header_items(headers):
        if not isinstance(key, str) or not key:
            raise BadHeaderError(str(key), "header keys must be non-empty strings")
        if any(c == ":" or c.isspace() or ord(c) < 33 or ord(c) > 126 for c in key):
            raise BadHeaderError(key, "keys may not contain ':', spaces or control characters"
                                 " - use e.g. 'X-Sensor-Id'")
        if not isinstance(value, str):
            value = str(value)
        if "\r" in value or "\n" in value:
            raise BadHeaderError(key, "values may not contain CR or LF - send it in the payload")
        lines.append(f"{key}: {value}".encode())
    return CRLF.join(lines) + CRLF + CRLF


def decode_info(line: bytes) -> dict[str, Any]:
    """The JSON object of an ``INFO {...}`` line.

    Raises:
        ProtocolError: not an INFO line, or its argument is not a JSON object.
    """
    if line[:4].upper() != b"INFO":
        raise ProtocolError(f"expected INFO, got {bytes(line[:40])!r}")
    try:
        info = orjson.loads(line[4:])
    except orjson.JSONDecodeError:
        raise ProtocolError(f"malformed INFO: {bytes(line[:80])!r}") from None
    if not isinstance(info, dict):
        raise ProtocolError(f"INFO is not a JSON object: {bytes(line[:80])!r}")
    return info


def header_block_error(block: bytes) -> str | None:
    """Why `block` is not a NATS header block (the text ``parse_headers`` raises), or None.

    Only the first line is checked: that is the one thing ``parse_headers`` refuses (lines
    without a ``:`` are skipped, as nats.go does).
    """
    if block[:8] == HDR_LINE:
        return None
    first = bytes(block[:200]).decode("utf-8", "replace").split("\r\n", 1)[0]
    return f"header block does not start with NATS/1.0: {first[:40]!r}"


def service_error_code(value: str) -> int | None:
    """A ``Nats-Service-Error-Code`` value as a number: 1 to 9 ASCII digits, else None
    (``"²".isdigit()`` is true and int() refuses it: a hostile reply is never an exception)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


def parse_headers(block: bytes) -> tuple[int | None, str, list[tuple[str, str]]]:
    """Parse a header block into (status code or None, status description, [(key, value)]).

    Repeated keys are kept in order; nothing collapses.

    Raises:
        ProtocolError: the block does not start with ``NATS/1.0`` (see header_block_error).
    """
    text = block.decode("utf-8", "replace")
    lines = text.split("\r\n")
    first = lines[0]
    status: int | None = None
    description = ""
    if not first.startswith("NATS/1.0"):
        raise ProtocolError(header_block_error(block) or "header block is not NATS/1.0")
    rest = first[8:].strip()
    if rest:
        code, _, description = rest.partition(" ")
        # A status is 3 ASCII digits ("503"); "²" passes str.isdigit() and int() refuses it,
        # so anything else is the description, never an exception.
        if code.isascii() and code.isdigit() and len(code) <= 3:
            status = int(code)
        else:
            description = rest
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        items.append((key.strip(), value.strip()))
    return status, description.strip(), items


_MSG_FIRST = frozenset(b"MHmh")
_PROBE = 15
#: MSG <subject> <sid> [reply] <size>: the line the server sends most.
_MSG_RE = re.compile(rb"MSG ([^ \t\r\n]+) ([^ \t\r\n]+) (?:([^ \t\r\n]+) )?(\d{1,12})\r\n")


#: Possessive repeats (``++``) exist from Python 3.11. A run of fixed-size frames has nothing
#: to backtrack into, so a greedy ``+`` matches exactly the same; the possessive one only
#: spares the regex engine its backtracking bookkeeping.
_RUN_REPEAT = rb"++" if sys.version_info >= (3, 11) else rb"+"


#: Bytes left in a read before a bulk pass (below) pays for its split.
BULK_MIN = 2048
#: Bytes one bulk pass splits at most: its cost stays proportional to what it can take.
BULK_WINDOW = 1 << 16


def _bulk_msgs(buf: bytes, pos: int, limit: int,
               out: dict[bytes, list[RawMsg]]) -> tuple[int, int, bool]:
    """Plain MSG frames from `pos` on, for floods whose lines differ frame to frame (many
    subjects, sizes): one C-level split of the rest of the read on CRLF gives, while no
    payload holds a CRLF, the pieces line, payload, line, payload... Each row is proven before
    it is taken: its line is exactly what the parser's MSG regex accepts and its payload is as
    long as the line says. A payload holding a CRLF makes its own line's size disagree (the
    piece after its line is shorter than the size), so the pass stops at the first frame it
    cannot prove (a control line, an HMSG, an odd line) and the caller's loop goes on from
    there: rows before it are exact. Returns (rows taken, new position, whether every complete
    frame of the window was taken)."""
    run = find_run(buf, pos, limit)
    if run is not None:
        # A run of one sid proven in bulk: its frames stay offsets into buf (see _runs).
        sid, cols, end = run
        rows = out.get(sid)
        run_rows = rows if isinstance(rows, MsgRun) else MsgRun(rows)
        out[sid] = cast("list[RawMsg]", run_rows)  # it stands in for the row list
        run_rows.add_columns(cols)
        return cols.n, end, False
    rest = buf[pos:pos + BULK_WINDOW]
    pieces = rest.split(b"\r\n")
    pairs = (len(pieces) - 1) >> 1
    lines = pieces[0:2 * pairs:2]
    payloads = pieces[1:2 * pairs:2]
    # Tabs, CRs or LFs outside the CRLFs: then every line is checked for them on its own.
    clean = (b"\t" not in rest and rest.count(b"\n") == rest.count(b"\r") == len(pieces) - 1)
    last_sid = b""
    last_list: list[RawMsg] = []
    taken = 0
    for line, payload in zip(lines, payloads, strict=True):
        t = line.split(b" ")
        k = len(t)
        if k == 4:
            op, subject, sid, size_b = t
            reply = None
            if not subject or not sid:
                break
        elif k == 5:
            op, subject, sid, reply, size_b = t
            if not subject or not sid or not reply:
                break
        else:
            break
        if op != b"MSG" or not size_b.isdigit() or len(size_b) > 12:
            break
        size = int(size_b)
        if size != len(payload) or size > limit:
            break
        if not clean and (b"\t" in line or b"\r" in line or b"\n" in line):
            break
        if sid != last_sid:
            got = out.get(sid)
            if got is None:
                got = out[sid] = []
            last_sid, last_list = sid, got
        last_list.append((subject, reply, None, payload))
        taken += 1
    if not taken:
        return 0, pos, False
    used = sum(map(len, lines[:taken])) + sum(map(len, payloads[:taken])) + 4 * taken
    return taken, pos + used, taken == pairs


@lru_cache(maxsize=256)
def _run_pattern(line: bytes, size: int) -> re.Pattern[bytes]:
    """A run of complete frames that all carry exactly this MSG line and payload size."""
    frame = re.escape(line) + rb"\r\n.{%d}\r\n" % size
    return re.compile(rb"(?:" + frame + rb")" + _RUN_REPEAT, re.DOTALL)


class Parser:
    """Incremental parser. ``feed(chunk)`` returns (messages by sid, control frames).

    Messages come back as ``{sid: [(subject, reply, header_block, payload), ...]}`` with sid as
    the raw bytes the server sent. Control frames are tuples ``(op, arg)`` in arrival order.
    Messages in a chunk are delivered before the control frames of the same chunk, which keeps
    PONG a barrier: every message that arrived before it is handed over first.
    """

    __slots__ = ("_have", "_need", "_parts", "_rest", "max_payload")

    def __init__(self, max_payload: int = HARD_MAX_FRAME) -> None:
        self._rest = b""
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0
        self.max_payload = max_payload

    def reset(self) -> None:
        self._rest = b""
        self._parts = []
        self._have = self._need = 0

    @property
    def buffered(self) -> int:
        return len(self._rest) + self._have

    def feed(self, data: bytes) -> tuple[dict[bytes, list[RawMsg]], list[tuple[str, object]]]:
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return {}, []
            buf = b"".join(self._parts)
            self._parts = []
            self._have = self._need = 0
        elif self._rest:
            buf = self._rest + data
        else:
            buf = data
        self._rest = b""
        groups: dict[bytes, list[RawMsg]] = {}
        ctrl: list[tuple[str, object]] = []
        last_sid = b""
        last_list: list[RawMsg] = []
        n = len(buf)
        pos = 0
        find = buf.find
        startswith = buf.startswith
        limit = self.max_payload
        # Floods repeat the same control line (same subject, sid, size): remember the last one
        # and skip re-parsing it. Compared in place, without slicing.
        # When lines differ, probing costs more than it saves: probe only every _PROBE
        # messages (countdown), and on every message while the probe keeps hitting.
        cache_line = b""
        cache_len = -1
        cached: tuple[bytes, bytes, bytes | None, int, int] = (b"", b"", None, 0, 0)
        countdown = 0
        subject = sid = b""
        reply: bytes | None = None
        size = hdr_len = 0
        msg_match = _MSG_RE.match
        # Consecutive MSG lines with a new subject; from 2 on, bulk passes are tried. A pass
        # that proves little turns them off for the rest of this read.
        varied = 0
        try:
            while pos < n:
                if not countdown and cache_len >= 0 and startswith(cache_line, pos) \
                        and startswith(b"\r\n", pos + cache_len):
                    eol = pos + cache_len
                    subject, sid, reply, size, hdr_len = cached
                    # A flood repeats the same line frame after frame: let the regex engine find
                    # the whole run in C, then slice every payload in one comprehension.
                    if not hdr_len:
                        run = _run_pattern(cache_line, size).match(buf, pos)
                        if run is not None and run.end() - pos > size + cache_len + 4:
                            frame_len = cache_len + size + 4
                            first = pos + cache_len + 2
                            stop = run.end()
                            if sid != last_sid:
                                got = groups.get(sid)
                                if got is None:
                                    got = groups[sid] = []
                                last_sid, last_list = sid, got
                            last_list.extend([(subject, reply, None, buf[q:q + size])
                                              for q in range(first, stop, frame_len)])
                            pos = stop
                            continue
                elif varied >= 2 and n - pos >= BULK_MIN and startswith(b"MSG ", pos):
                    # Lines differ frame after frame: prove and take plain MSG frames in bulk.
                    taken, pos, whole = _bulk_msgs(buf, pos, limit, groups)
                    last_sid = b""  # the bulk pass appended to the groups itself
                    # Window done: go on in bulk. Stopped at a frame it could not prove: that
                    # one goes through the regex path, then bulk again if lines still differ.
                    # Nothing proved: no more bulk in this read.
                    varied = 2 if whole else 1 if taken else -(1 << 30)
                    continue
                elif (m := msg_match(buf, pos)) is not None:
                    # The common MSG line, split by the regex engine in one C call.
                    if subject != m.group(1):
                        varied += 1
                    subject, sid, reply, size_b = m.groups()
                    size = int(size_b)
                    hdr_len = 0
                    eol = m.end() - 2
                    if size > limit:
                        raise ProtocolError(
                            f"message size {size} outside 0..{limit} in "
                            f"{bytes(buf[pos:min(eol, pos + 80)])!r}"
                        )
                    if countdown:
                        countdown -= 1
                    else:
                        cache_line = buf[pos:eol]
                        cache_len = eol - pos
                        cached = (subject, sid, reply, size, 0)
                        countdown = _PROBE
                elif (eol := find(b"\r\n", pos)) < 0:
                    if n - pos > MAX_CONTROL_LINE:
                        raise ProtocolError(
                            f"control line longer than {MAX_CONTROL_LINE} bytes: "
                            f"{bytes(buf[pos:pos + 40])!r}..."
                        )
                    break
                elif buf[pos] in _MSG_FIRST:
                    line = buf[pos:eol]
                    args = line.split()
                    op = args[0].upper()
                    na = len(args)
                    try:
                        if op == b"MSG":
                            hdr_len = 0
                            if na == 4:
                                _, subject, sid, size_b = args
                                reply = None
                            elif na == 5:
                                _, subject, sid, reply, size_b = args
                            else:
                                raise ValueError
                            size = int(size_b)
                        elif op == b"HMSG":
                            if na == 5:
                                _, subject, sid, hl_b, size_b = args
                                reply = None
                            elif na == 6:
                                _, subject, sid, reply, hl_b, size_b = args
                            else:
                                raise ValueError
                            hdr_len = int(hl_b)
                            size = int(size_b)
                            if hdr_len < 0 or hdr_len > size:
                                raise ValueError
                        else:
                            raise ProtocolError(f"unknown protocol line {bytes(line[:80])!r}")
                    except ValueError:
                        cache_len = -1
                        raise ProtocolError(
                            f"malformed message line {bytes(line[:80])!r}") from None
                    if size < 0 or size > limit:
                        raise ProtocolError(
                            f"message size {size} outside 0..{limit} in {bytes(line[:80])!r}"
                        )
                    cache_line = line
                    cache_len = len(line)
                    cached = (subject, sid, reply, size, hdr_len)
                    countdown = _PROBE
                else:
                    line = buf[pos:eol]
                    pos = eol + 2
                    self._control(line, ctrl)
                    continue
                start = eol + 2
                end = start + size
                if end + 2 > n:
                    # Incomplete frame: wait for the rest without re-joining on every chunk.
                    rest = buf[pos:]
                    need = (end + 2) - pos
                    if need > 1 << 16:
                        self._parts = [rest]
                        self._have = len(rest)
                        self._need = need
                    else:
                        self._rest = rest
                    break
                if not startswith(b"\r\n", end):
                    raise ProtocolError(
                        f"message payload not terminated by CRLF after {size} bytes "
                        f"({bytes(buf[pos:min(eol, pos + 80)])!r})"
                    )
                item: RawMsg
                if hdr_len:
                    item = (subject, reply, buf[start:start + hdr_len], buf[start + hdr_len:end])
                else:
                    item = (subject, reply, None, buf[start:end])
                if sid != last_sid:
                    got = groups.get(sid)
                    if got is None:
                        got = groups[sid] = []
                    last_sid, last_list = sid, got
                last_list.append(item)
                pos = end + 2
        except ProtocolError as exc:
            # What parsed cleanly before the bad bytes still counts: hand it to the caller.
            exc.partial = (groups, ctrl)
            raise
        if pos < n and not self._parts and not self._rest:
            self._rest = buf[pos:]
        return groups, ctrl

    @staticmethod
    def _control(line: bytes, ctrl: list[tuple[str, object]]) -> None:
        head = line[:5].upper()
        if head.startswith(b"PING"):
            ctrl.append((OP_PING, None))
        elif head.startswith(b"PONG"):
            ctrl.append((OP_PONG, None))
        elif head.startswith(b"+OK"):
            ctrl.append((OP_OK, None))
        elif head.startswith(b"-ERR"):
            text = bytes(line[4:]).decode("utf-8", "replace").strip().strip("'")
            ctrl.append((OP_ERR, text))
        elif head.startswith(b"INFO"):
            ctrl.append((OP_INFO, decode_info(line)))
        elif line.strip():
            raise ProtocolError(f"unknown protocol line {bytes(line[:80])!r}")
