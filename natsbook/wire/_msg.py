"""Small record types: a received message and its headers; payload encoding."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import BadHeaderError, BadInputError
from ._protocol import header_block_error, parse_headers

__all__ = ["Headers", "Msg", "encode_payload"]


class Headers(Mapping[str, str]):
    """Message headers that keep repeated keys.

    ``h["K"]`` is the first value, ``h.getall("K")`` every value in order. Keys compare exactly
    as sent (NATS headers are case-sensitive on the wire).
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items = list(items or [])

    def __getitem__(self, key: str) -> str:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for k, _ in self._items:
            seen.setdefault(k)
        return iter(seen)

    def __len__(self) -> int:
        return len({k for k, _ in self._items})

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self._items if k == key]

    def items_all(self) -> list[tuple[str, str]]:
        return list(self._items)

    def to_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self._items:
            out.setdefault(k, []).append(v)
        return out

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(slots=True)
class Msg:
    """A received message."""

    subject: str
    data: bytes
    reply: str | None = None
    headers: Headers | None = None
    #: Status code of an HMSG status line (e.g. 503 no responders, 408 timeout), else None.
    status: int | None = None
    description: str = ""
    #: Receive time, seconds since the epoch (the reader's clock when the chunk arrived).
    time: float = 0.0
    sid: int = 0
    _conn: Any = field(default=None, repr=False, compare=False)
    #: Why the header block is not NATS headers (then ``headers`` is None), for a message read
    #: back from a capture (``sub.messages()``, ``sub.last_msg``); None otherwise.
    header_error: str | None = None

    @classmethod
    def from_raw(cls, subject: bytes, reply: bytes | None, hdr: bytes | None, payload: bytes,
                 time: float = 0.0, sid: int = 0, conn: Any = None, *,
                 lenient: bool = False) -> Msg:
        """The message of a raw row. A header block that is not NATS headers raises
        ProtocolError, or with `lenient` gives ``headers=None`` and the reason in
        ``header_error`` (the payload is delivered, as nats.go does)."""
        headers = None
        status = None
        description = ""
        bad = None
        if hdr:
            bad = header_block_error(hdr) if lenient else None
            if bad is None:
                status, description, items = parse_headers(hdr)
                headers = Headers(items)
        return cls(subject.decode("utf-8", "replace"), payload,
                   reply.decode("utf-8", "replace") if reply else None, headers,
                   status, description, time, sid, conn, bad)

    def text(self) -> str:
        return self.data.decode("utf-8")

    def json(self) -> Any:
        return orjson.loads(self.data)

    def respond(self, data: Any = b"", *, headers: Mapping[str, Any] | None = None) -> None:
        """Reply to this message's reply subject."""
        if not self.reply:
            raise BadInputError(f"message on {self.subject!r} has no reply subject to respond to")
        if self._conn is None:
            raise BadInputError("message is not bound to a connection")
        self._conn.publish(self.reply, data, headers=headers)


def header_items(headers: Any) -> list[tuple[Any, str]]:
    """Header values as text: str as is, bytes as UTF-8, numbers with ``str()`` (``5`` ->
    "5", ``2.5`` -> "2.5") and bools as "true"/"false"; a list or tuple gives the key once per
    value. Keys are checked when the block is encoded.

    Raises:
        BadHeaderError: `headers` is neither a mapping nor (key, value) pairs, or a value is
            of another type (None, a dict, an object...).
    """
    if isinstance(headers, Headers):  # a received message's headers: every value
        pairs: Iterable[Any] = headers.items_all()
    elif isinstance(headers, Mapping):
        pairs = headers.items()
    elif isinstance(headers, str | bytes) or not isinstance(headers, Iterable):
        raise BadHeaderError(repr(headers)[:40], "headers must be a mapping of key -> value "
                             "(or list of values), e.g. {'X-Sensor': 'a1'}")
    else:
        pairs = headers
    out: list[tuple[Any, str]] = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise BadHeaderError(repr(pair)[:40], "expected (key, value) pairs")
        key, value = pair
        for v in value if isinstance(value, list | tuple) else (value,):
            out.append((key, _header_text(key, v)))
    return out


def _header_text(key: Any, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadHeaderError(str(key), "bytes values must be UTF-8 text") from None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Real):
        return str(value)
    raise BadHeaderError(str(key), f"a {type(value).__name__} value cannot be sent - give "
                         "str, bytes, int, float or bool (or a list of them)")


def encode_payload(data: Any) -> bytes:
    """bytes-like as is, str as UTF-8, dict/list/numbers/bools/None as JSON.

    Raises:
        BadInputError: the value cannot be serialised.
    """
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if data is None:
        return b""
    try:
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise BadInputError(
            f"cannot send a {type(data).__name__} as a payload ({exc}) - pass bytes, str, or a "
            "JSON-serialisable dict/list"
        ) from None
