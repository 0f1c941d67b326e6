"""The wire layer: pure, no I/O. Subjects (validate, match ``*`` / ``>``), the NATS protocol
codec (bytes in, frames out; frames in, bytes out) and the message/header records.

Imports nothing of natsbook but :mod:`natsbook.errors`.
"""

from __future__ import annotations

from ._msg import Headers, Msg, encode_payload
from ._protocol import RawMsg, parse_headers
from ._subjects import check_publish, check_queue, check_subscribe, matches

__all__ = [
    "Headers",
    "Msg",
    "RawMsg",
    "check_publish",
    "check_queue",
    "check_subscribe",
    "encode_payload",
    "matches",
    "parse_headers",
]
