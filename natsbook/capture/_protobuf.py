"""Protobuf payloads: ``decode=natsbook.protobuf("pkg.Reading", "protos/")``.

Messages are read with the official ``protobuf`` runtime from a descriptor pool built out of a
``FileDescriptorSet`` (given, or compiled from ``.proto`` text by the ``protoc`` inside the
``grpcio-tools`` wheel, which needs no network). Each message becomes a dict in field order
and goes through the JSON contract as that dict would (docs/capture.md, "Protobuf"):

- field names as written in the ``.proto`` file (``sensor_id``, not ``sensorId``), in field
  order; a map field is an object with its entries in key order (protobuf maps have none);
- a field without presence (a proto3 scalar, repeated or map field) always has a value,
  its default when unset (``0``, ``""``, ``[]``, ``{}``), as every protobuf reader sees it; a
  field with presence (``optional``, a message field, a ``oneof`` member) that is not set is
  missing;
- 64-bit integers stay exact ints; enums are their value names (a number not in the enum
  stays the number); ``bytes`` stay bytes; ``google.protobuf.Timestamp`` is a UTC pandas
  Timestamp, ``Duration`` a pandas Timedelta, the wrapper types their value, ``Struct`` /
  ``Value`` / ``ListValue`` the JSON value they hold;
- zero bytes are a message with every field at its default (that is what they mean in
  protobuf), not an empty row.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import BadInputError
from ._binary import Decoder
from ._spill import DECODER_KEY

__all__ = ["DESCRIPTORS_KEY", "from_metadata", "protobuf"]

#: Schema metadata key holding a protobuf capture's serialized FileDescriptorSet.
DESCRIPTORS_KEY = b"natsbook.protobuf.descriptors"
_WRAPPERS = {f"google.protobuf.{n}Value" for n in
             ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")}
_JSONISH = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


def _compile(path: Path) -> bytes:
    """A FileDescriptorSet (with imports) of the .proto file, or every .proto under a folder."""
    # grpcio-tools is an extra: looked up, not imported (protoc runs in a child process).
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(
            f"compiling {os.fspath(path)!r} needs grpcio-tools (pip install 'natsbook[protobuf]')"
            " - or give a descriptor set made with: protoc --include_imports "
            "--descriptor_set_out=telemetry.pb telemetry.proto")
    root = path if path.is_dir() else path.parent
    files = sorted(root.rglob("*.proto")) if path.is_dir() else [path]
    if not files:
        raise BadInputError(f"no .proto file under {os.fspath(path)!r}")
    bundled = Path(next(iter(spec.submodule_search_locations))) / "_proto"  # google/protobuf
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        done = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{root}", f"-I{bundled}",
             "--include_imports", f"--descriptor_set_out={out}",
             *(os.fspath(f.relative_to(root)) for f in files)],
            cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BadInputError(f"protoc could not compile {os.fspath(path)!r}: "
                                f"{done.stderr.strip() or done.stdout.strip()}")
        return out.read_bytes()


def _file_set(message_type: Any, descriptors: Any) -> bytes:
    from google.protobuf import descriptor_pb2

    if descriptors is None:
        file = getattr(getattr(message_type, "DESCRIPTOR", None), "file", None)
        if file is None:
            raise BadInputError("natsbook.protobuf(message_type, descriptors): give descriptors "
                                "(a .proto file or folder, or a FileDescriptorSet) unless "
                                "message_type is a generated message class")
        fds = descriptor_pb2.FileDescriptorSet()
        seen: set[str] = set()

        def add(f: Any) -> None:  # dependencies first, each file once
            if f.name in seen:
                return
            seen.add(f.name)
            for dep in f.dependencies:
                add(dep)
            f.CopyToProto(fds.file.add())

        add(file)
        return fds.SerializeToString()
    if isinstance(descriptors, descriptor_pb2.FileDescriptorSet):
        return descriptors.SerializeToString()
    if isinstance(descriptors, bytes | bytearray):
        return bytes(descriptors)
    path = Path(descriptors)
    if not path.exists():
        raise BadInputError(f"no descriptors at {os.fspath(path)!r} - give a .proto file, a "
                            "folder of them, or a descriptor set file (protoc "
                            "--include_imports --descriptor_set_out=FILE)")
    if path.is_dir() or path.suffix == ".proto":
        return _compile(path)
    return path.read_bytes()


@functools.lru_cache(maxsize=32)
def _message_class(name: str, file_set: bytes) -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf.message import DecodeError

    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(file_set)
    except DecodeError:
        raise BadInputError("the descriptors are not a serialized FileDescriptorSet - make one "
                            "with protoc --include_imports --descriptor_set_out=FILE") from None
    pool = descriptor_pool.DescriptorPool()
    todo = list(fds.file)
    while todo:  # dependencies first, whatever order the set lists them in
        left = []
        for fdp in todo:
            try:
                pool.Add(fdp)
            except (TypeError, KeyError, ValueError):
                left.append(fdp)
        if len(left) == len(todo):
            raise BadInputError(f"the descriptor set cannot be loaded ({left[0].name!r} imports "
                                "a file it lacks) - make it with protoc --include_imports")
        todo = left
    try:
        desc = pool.FindMessageTypeByName(name)
    except KeyError:
        names = sorted(m for f in fds.file for m in
                       (f"{f.package}.{t.name}" if f.package else t.name for t in f.message_type))
        raise BadInputError(f"no message type {name!r} in the descriptors - they hold: "
                            f"{', '.join(names) or 'none'}") from None
    return message_factory.GetMessageClass(desc)


def _value(value: Any, field: Any) -> Any:
    message = field.message_type
    if message is not None:
        return _message_value(value, message)
    if field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    return value


def _message_value(msg: Any, desc: Any) -> Any:
    full = desc.full_name
    if full == "google.protobuf.Timestamp":
        return pd.Timestamp(msg.seconds * 1_000_000_000 + msg.nanos, tz="UTC")
    if full == "google.protobuf.Duration":
        return pd.Timedelta(msg.seconds * 1_000_000_000 + msg.nanos, unit="ns")
    if full in _WRAPPERS:
        return msg.value
    if full in _JSONISH:
        from google.protobuf import json_format

        return json_format.MessageToDict(msg)
    return to_dict(msg)


def to_dict(msg: Any) -> dict[str, Any]:
    """A message's fields in declaration order, by the mapping in this module's docstring."""
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        name = field.name
        if field.is_repeated:
            items = getattr(msg, name)
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                vf = entry.fields_by_name["value"]
                # Protobuf maps have no order: entries in key order, so rows agree.
                out[name] = {k: _value(items[k], vf) for k in sorted(items)}
            else:
                out[name] = [_value(v, field) for v in items]
        elif field.has_presence and not msg.HasField(name):
            continue
        else:
            out[name] = _value(getattr(msg, name), field)
    return out


def _decoder(name: str, file_set: bytes) -> Decoder:
    cls = _message_class(name, file_set)

    def loads(payload: bytes) -> dict[str, Any]:
        return to_dict(cls.FromString(payload))

    return Decoder(f"protobuf:{name}", loads, decode_empty=True,
                   metadata={DESCRIPTORS_KEY: file_set})


def protobuf(message_type: Any, descriptors: Any = None) -> Decoder:
    """A decoder for Protobuf payloads: ``decode=natsbook.protobuf("pkg.Reading", "protos/")``.

    Works wherever ``decode=`` does, including ``subscribe(..., decode=...)``, whose captures
    then keep the descriptors (in spill parts and ``to_parquet`` files too).

    Args:
        message_type: the full name of the message (``"telemetry.Reading"``), or a generated
            message class (then `descriptors` may be left out).
        descriptors: a ``.proto`` file or a folder of them (compiled without network by the
            ``protoc`` of ``grpcio-tools``: ``pip install 'natsbook[protobuf]'``), a
            descriptor set file (``protoc --include_imports --descriptor_set_out=set.pb
            x.proto``), its bytes, or a ``FileDescriptorSet``.

    Raises:
        BadInputError: the descriptors cannot be read or compiled, or do not hold the message.
    """
    name = message_type if isinstance(message_type, str) else \
        getattr(getattr(message_type, "DESCRIPTOR", None), "full_name", None)
    if not isinstance(name, str) or not name:
        raise BadInputError(f"message_type={message_type!r} must be a message's full name "
                            "('pkg.Reading') or a generated message class")
    return _decoder(name, _file_set(message_type, descriptors))


def from_metadata(meta: dict[bytes, bytes]) -> Decoder:
    """The decoder a protobuf capture's schema metadata declares."""
    name = meta[DECODER_KEY].decode("utf-8", "replace").removeprefix("protobuf:")
    if DESCRIPTORS_KEY not in meta:
        raise BadInputError(f"this capture declares protobuf message {name!r} without its "
                            "descriptors - pass decode=natsbook.protobuf(...) explicitly")
    return _decoder(name, meta[DESCRIPTORS_KEY])
