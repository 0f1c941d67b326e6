"""The simulator's binary-telemetry family: each reading also as MessagePack and Protobuf.

    <root>.msgpack.<site>.<device>  the reading as a MessagePack map; ``ts`` is a MessagePack
                                    timestamp (decodes to a datetime64 column) and ``raw`` the
                                    sensor's two raw bytes (a bin value, kept as bytes)
    <root>.proto.<site>.<device>    the reading as a ``natsbook.lab.Reading`` Protobuf message
                                    (:data:`PROTO_TEXT`; :func:`descriptor_set` gives its
                                    compiled FileDescriptorSet, so no protoc is needed)

A malformed reading is malformed in both (cut in half), as it is in JSON.

>>> sim = Simulator(conn, binary="binary").start()
>>> sub = conn.subscribe("binary.proto.>", decode=natsbook.protobuf(
...     "natsbook.lab.Reading", descriptor_set()))
"""

from __future__ import annotations

import functools
from typing import Any

import msgpack

__all__ = ["PROTO_TEXT", "READING", "BinaryTelemetry", "descriptor_set"]

#: The Protobuf message's full name.
READING = "natsbook.lab.Reading"
#: The ``.proto`` text of the message (what :func:`descriptor_set` builds, field by field).
PROTO_TEXT = """syntax = "proto3";
package natsbook.lab;
import "google/protobuf/timestamp.proto";

enum Status { OK = 0; LOW_BATTERY = 1; ERROR = 2; }

message Reading {
  string device = 1;
  string site = 2;
  uint64 seq = 3;
  google.protobuf.Timestamp ts = 4;
  double temperature = 5;
  double humidity = 6;
  double battery = 7;
  Status status = 8;
}
"""
_STATUS = {"ok": 0, "low_battery": 1, "error": 2}


@functools.cache
def descriptor_set() -> bytes:
    """The serialized FileDescriptorSet of :data:`PROTO_TEXT` (with timestamp.proto)."""
    from google.protobuf import descriptor_pb2, timestamp_pb2

    fds = descriptor_pb2.FileDescriptorSet()
    timestamp_pb2.DESCRIPTOR.CopyToProto(fds.file.add())
    f = fds.file.add(name="natsbook/lab/telemetry.proto", package="natsbook.lab",
                     syntax="proto3", dependency=["google/protobuf/timestamp.proto"])
    status = f.enum_type.add(name="Status")
    for name, number in (("OK", 0), ("LOW_BATTERY", 1), ("ERROR", 2)):
        status.value.add(name=name, number=number)
    msg = f.message_type.add(name="Reading")
    t = descriptor_pb2.FieldDescriptorProto
    for number, (name, kind, type_name) in enumerate([
            ("device", t.TYPE_STRING, None), ("site", t.TYPE_STRING, None),
            ("seq", t.TYPE_UINT64, None), ("ts", t.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            ("temperature", t.TYPE_DOUBLE, None), ("humidity", t.TYPE_DOUBLE, None),
            ("battery", t.TYPE_DOUBLE, None), ("status", t.TYPE_ENUM, ".natsbook.lab.Status"),
    ], start=1):
        field = msg.field.add(name=name, number=number, type=kind, label=t.LABEL_OPTIONAL,
                              json_name=name)
        if type_name:
            field.type_name = type_name
    return fds.SerializeToString()


@functools.cache
def _reading_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for fdp in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set()).file:
        pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(READING))


class BinaryTelemetry:
    """Encodes the simulator's readings for the binary family rooted at `root`."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._cls = _reading_class()

    def payloads(self, body: dict[str, Any], raw: bytes,
                 malformed: bool) -> list[tuple[str, bytes]]:
        """(subject, payload) of one reading in each format."""
        micros = round(float(body["ts"]) * 1e6)  # the JSON reading's clock, to the microsecond
        seconds, nanos = micros // 1_000_000, micros % 1_000_000 * 1000
        packed = msgpack.packb({**body, "ts": msgpack.Timestamp(seconds, nanos), "raw": raw})
        msg = self._cls(device=body["device"], site=body["site"], seq=body["seq"],
                        temperature=body["temperature"], humidity=body["humidity"],
                        battery=body["battery"], status=_STATUS.get(body["status"], 0))
        msg.ts.seconds, msg.ts.nanos = seconds, nanos
        proto = msg.SerializeToString()
        if malformed:
            packed, proto = packed[: len(packed) // 2], proto[: len(proto) // 2] + b"\xff"
        tail = f"{body['site']}.{body['device']}"
        return [(f"{self.root}.msgpack.{tail}", packed), (f"{self.root}.proto.{tail}", proto)]
