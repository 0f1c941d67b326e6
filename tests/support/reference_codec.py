"""An independent reference decoder for the NATS server->client protocol, for property tests.

Written from the protocol description, not from natsbook's parser: one frame at a time, no
caching, no regexes, no fast paths. It is strict (upper-case verbs, single spaces, no empty
lines), so a stream it accepts is one every correct parser must decode the same way.
"""

from __future__ import annotations

import json
from typing import Any

Row = tuple[bytes, bytes, "bytes | None", "bytes | None", bytes]  # sid, subject, reply, hdr, data


class Invalid(Exception):
    """The stream is not strictly valid NATS."""


def _token(tok: bytes) -> bytes:
    if not tok or any(b <= 0x20 or b >= 0x7F for b in tok):
        raise Invalid(f"bad token {tok!r}")
    return tok


def _number(tok: bytes, limit: int) -> int:
    if not tok or len(tok) > 12 or not all(0x30 <= b <= 0x39 for b in tok):
        raise Invalid(f"bad number {tok!r}")
    n = int(tok)
    if n > limit:
        raise Invalid(f"size {n} over {limit}")
    return n


def _no_constants(name: str) -> Any:
    raise Invalid(f"JSON constant {name}")


def decode(data: bytes, max_payload: int) -> tuple[list[Row], list[tuple[str, Any]], int]:
    """Decode every complete frame of `data`.

    Returns (messages in arrival order, control frames in arrival order, bytes left over as
    an incomplete frame). Raises Invalid when a complete frame is not strictly valid.
    """
    msgs: list[Row] = []
    ctrl: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            break
        line = data[pos:eol]
        verb, _, rest = line.partition(b" ")
        if verb in (b"MSG", b"HMSG"):
            args = rest.split(b" ")
            if verb == b"MSG" and len(args) in (3, 4):
                subject, sid, *reply_l, size_b = args
                hdr_len = 0
            elif verb == b"HMSG" and len(args) in (4, 5):
                subject, sid, *reply_l, hdr_b, size_b = args
                hdr_len = _number(hdr_b, max_payload)
            else:
                raise Invalid(f"bad {verb!r} line {line!r}")
            _token(subject)
            _token(sid)
            reply = _token(reply_l[0]) if reply_l else None
            size = _number(size_b, max_payload)
            if hdr_len > size:
                raise Invalid("header length over total size")
            start = eol + 2
            if start + size + 2 > len(data):
                break  # incomplete frame
            body = data[start:start + size]
            if data[start + size:start + size + 2] != b"\r\n":
                raise Invalid("payload not followed by CRLF")
            hdr = body[:hdr_len] if verb == b"HMSG" else None
            msgs.append((sid, subject, reply, hdr, body[hdr_len:]))
            pos = start + size + 2
            continue
        if line in (b"PING", b"PONG", b"+OK"):
            ctrl.append((line.decode(), None))
        elif verb == b"-ERR" and len(rest) >= 2 and rest[:1] == rest[-1:] == b"'":
            text = rest[1:-1]
            if b"'" in text or any(b < 0x20 or b >= 0x7F for b in text):
                raise Invalid(f"bad -ERR {line!r}")
            ctrl.append(("-ERR", text.decode()))
        elif verb == b"INFO" and rest:
            try:
                info = json.loads(rest.decode("utf-8"), parse_constant=_no_constants)
            except (ValueError, UnicodeDecodeError):
                raise Invalid(f"bad INFO {line!r}") from None
            if not isinstance(info, dict) or any(
                    isinstance(v, int) and not -(2**63) <= v < 2**64 for v in info.values()):
                raise Invalid(f"INFO is not a plain JSON object: {line!r}")
            ctrl.append(("INFO", info))
        else:
            raise Invalid(f"unknown line {line!r}")
        pos = eol + 2
    return msgs, ctrl, len(data) - pos
