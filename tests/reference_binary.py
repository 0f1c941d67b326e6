"""A plain reading of the binary-payload mapping (docs/capture.md, "Binary payloads"), one
payload at a time: the format's own decoder, then the mapping written out as the page says
it, without natsbook's fast path (no orjson check, no batches). Rows come out as
``reference_decoder.Row`` so ``check_rows`` compares them with a frame.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import cbor2
import msgpack
import pandas as pd

from .reference_decoder import DEEPEST, MISSING, Row, row_of


class Bad(Exception):
    pass


def msgpack_loads(payload: bytes) -> Any:
    return msgpack.unpackb(payload, raw=False, strict_map_key=False, timestamp=0)


def cbor_loads(payload: bytes) -> Any:
    stream = io.BytesIO(payload)
    value = cbor2.CBORDecoder(stream).decode()
    if stream.read(1):
        raise ValueError("trailing bytes")
    return value


def key_text(key: Any) -> str:
    if isinstance(key, str):
        key.encode("utf-8")  # a lone surrogate raises (UnicodeEncodeError is a ValueError)
        return key
    if key is None:
        return "null"
    if key is True:
        return "true"
    if key is False:
        return "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return repr(key)
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise Bad from None
    raise Bad


def mapped(value: Any, level: int = 1) -> Any:
    if isinstance(value, dict):
        if level > DEEPEST:
            raise Bad
        out = {}
        for k, v in value.items():
            out[key_text(k)] = mapped(v, level + 1)
        return out
    if isinstance(value, list) or (isinstance(value, tuple)
                                   and not isinstance(value, msgpack.ExtType)):
        if level > DEEPEST:
            raise Bad
        return [mapped(v, level + 1) for v in value]
    if isinstance(value, str):
        value.encode("utf-8")
        return value
    if isinstance(value, msgpack.Timestamp):
        ns = value.seconds * 10**9 + value.nanoseconds
        if -(2**63) < ns < 2**63:
            return pd.Timestamp(ns, unit="ns", tz="UTC")
        return value
    if isinstance(value, dt.datetime):
        try:
            return pd.Timestamp(value).as_unit("ns").tz_convert("UTC")
        except (OverflowError, ValueError):
            return value
    if value is cbor2.undefined:
        return None
    return value


def read(payload: bytes, loads: Callable[[bytes], Any]) -> Row:
    if payload == b"":
        return row_of(True, MISSING)
    try:
        value = mapped(loads(payload))
    except Exception:  # the format refused it, or the mapping did (Bad)
        return row_of(False, None)
    return row_of(True, value)
