"""Small record types: a received message and its headers; payload encoding."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._protocol import parse_headers
from .errors import BadInputError

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

    @classmethod
    def from_raw(cls, subject: bytes, reply: bytes | None, hdr: bytes | None, payload: bytes,
                 time: float = 0.0, sid: int = 0, conn: Any = None) -> Msg:
        headers = None
        status = None
        description = ""
        if hdr:
            status, description, items = parse_headers(hdr)
            headers = Headers(items)
        return cls(subject.decode("utf-8", "replace"), payload,
                   reply.decode("utf-8", "replace") if reply else None, headers,
                   status, description, time, sid, conn)

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
