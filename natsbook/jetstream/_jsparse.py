"""JetStream replies -> stored-message tables (SCHEMA columns + ``seq``), with no I/O.

*Batched direct get* replies: the JetStream headers are taken apart column-wise with numpy
on the raw Arrow buffers (``parse_direct``), with a per-row fallback for layouts it does not
expect (``_parse_direct_slow``; a test keeps the two agreeing). *Consumer deliveries*: the
stream sequence and time travel in the ``$JS.ACK`` reply subjects (``parse_acked``). Status
messages (end of batch, 404/408, heartbeats) are dropped.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..capture._store import SCHEMA
from ..wire._protocol import parse_headers

__all__: list[str] = []

_DIRECT_HDRS = frozenset({"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp",
                          "Nats-Num-Pending", "Nats-Last-Sequence", "Nats-UpTo-Sequence"})
# $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>, or the v2 form with
# <domain>.<account hash> in front and a random token at the end.
_ACK_RE = (r"^\$JS\.ACK\.(?:[^.]+\.[^.]+\.)?[^.]+\.[^.]+\.(?P<delivered>\d+)\.(?P<sseq>\d+)\."
           r"(?P<cseq>\d+)\.(?P<ts>\d+)\.(?P<pending>\d+)(?:\.[^.]+)?$")


# ---------------------------------------------------------------------------------- parsing
def _status_mask(headers: pa.Array) -> pa.Array:
    """True for status messages (EOB, 404, heartbeats): their header line carries a code."""
    return pc.fill_null(pc.starts_with(headers, "NATS/1.0 "), False)


def _build(subject: pa.Array, headers: pa.Array, payload: pa.Array, times: pa.Array,
           seq: pa.Array) -> pa.Table:
    n = len(subject)
    return pa.table({
        "time": times.cast(SCHEMA.field("time").type),
        "subject": subject.cast(pa.string()),
        "reply": pa.nulls(n, pa.string()),
        "headers": headers.cast(pa.binary()),
        "payload": payload.cast(pa.binary()),
        "seq": seq.cast(pa.int64()),
    })


def empty_history() -> pa.Table:
    return _build(pa.array([], pa.string()), pa.array([], pa.binary()), pa.array([], pa.binary()),
                  pa.array([], pa.int64()), pa.array([], pa.int64()))


def parse_direct(raw: pa.Table) -> pa.Table:
    """Direct-get replies -> stored messages: subject, seq and time out of the headers, the
    headers the publisher set kept (null when there were none)."""
    hdr = raw["headers"].combine_chunks()
    keep = pc.invert(_status_mask(hdr))
    hdr = hdr.filter(keep)
    payload = raw["payload"].combine_chunks().filter(keep)
    n = len(hdr)
    if n == 0:
        return empty_history()
    hdr = pa.concat_arrays([hdr])  # fresh buffers starting at offset 0
    try:
        subject, seq, times, cut = _direct_fields(hdr)
    except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _parse_direct_slow(hdr, payload)
    if cut is not None:  # rows whose publisher set headers: keep those, drop ours
        blocks: list[bytes | None] = [None] * n
        for i in np.flatnonzero(cut >= 0):
            blocks[int(i)] = hdr[int(i)].as_py()[:int(cut[i])] + b"\r\n\r\n"
        headers = pa.array(blocks, pa.binary())
    else:
        headers = pa.nulls(n, pa.binary())
    return _build(subject, headers, payload, times, seq)


def _slices(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """``data[starts[i]:ends[i]]`` for every i as one Arrow string array, without a loop."""
    lengths = ends - starts
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    arr = pa.Array.from_buffers(pa.large_string(), len(starts),
                                [None, pa.py_buffer(offsets), pa.py_buffer(data[idx])])
    arr.validate(full=True)  # UTF-8 check: garbage raises ArrowInvalid -> slow path
    return arr


def _direct_fields(hdr: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, np.ndarray | None]:
    """Subject, seq and time of each direct-get header block, found with numpy on the raw
    Arrow buffer (no per-row Python).

    In a batch reply the server appends, after the publisher's own headers, exactly six
    lines: Nats-Stream, -Subject, -Sequence, -Time-Stamp, -Num-Pending, -Last-Sequence, then
    the blank line. So counting CRs back from each block's end finds every field. Also
    returns, per row, where the publisher's headers end (-1 where there are none), or None
    when no row has any. Raises ValueError when the layout is not the expected one.
    """
    n = len(hdr)
    offs = np.frombuffer(hdr.buffers()[1], dtype=np.int32, count=n + 1).astype(np.int64)
    data = np.frombuffer(hdr.buffers()[2], dtype=np.uint8, count=int(offs[-1]))
    cr = np.flatnonzero(data == 13)
    last = np.searchsorted(cr, offs[1:], side="left") - 1
    first = np.searchsorted(cr, offs[:-1], side="left")
    count = last - first + 1
    if len(cr) == 0 or (count < 8).any():
        raise ValueError("not a batched direct-get reply")
    fields = []
    for k, prefix in ((7, b"Nats-Stream: "), (6, b"Nats-Subject: "), (5, b"Nats-Sequence: "),
                      (4, b"Nats-Time-Stamp: ")):
        start = cr[last - k] + 2
        for j, ch in enumerate(prefix):  # every line must start with the expected key
            if not (data[start + j] == ch).all():
                raise ValueError(f"unexpected direct-get header layout near {prefix!r}")
        fields.append((start + len(prefix), cr[last - k + 1]))
    subject = _slices(data, *fields[1]).cast(pa.string())
    seq = _slices(data, *fields[2]).cast(pa.int64())
    times = _slices(data, *fields[3]).cast(pa.timestamp("ns", tz="UTC"))
    cut = None
    if (count > 8).any():
        cut = np.where(count > 8, cr[last - 7] - offs[:-1], -1)
    return subject, seq, times, cut


def _parse_direct_slow(hdr: pa.Array, payload: pa.Array) -> pa.Table:
    subjects, seqs, times, blocks = [], [], [], []
    for block in hdr.to_pylist():
        _, _, items = parse_headers(block)
        d = dict(items)
        subjects.append(d.get("Nats-Subject"))
        seqs.append(int(d.get("Nats-Sequence", 0)))
        times.append(d.get("Nats-Time-Stamp"))
        own = [(k, v) for k, v in items if k not in _DIRECT_HDRS]
        blocks.append(("NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in own) + "\r\n")
                      .encode() if own else None)
    return _build(pa.array(subjects, pa.string()), pa.array(blocks, pa.binary()), payload,
                  pa.array(times, pa.string()).cast(pa.timestamp("ns", tz="UTC")),
                  pa.array(seqs, pa.int64()))


def parse_acked(raw: pa.Table) -> tuple[pa.Table, pa.Array, pa.Array]:
    """Consumer deliveries -> stored messages; also the consumer sequences and pending counts.

    Status messages (heartbeats, flow control, 404/408 ends of pulls) are dropped.
    """
    reply = raw["reply"].combine_chunks()
    keep = pc.fill_null(pc.starts_with(reply, "$JS.ACK."), False)
    t = raw.filter(keep)
    if t.num_rows == 0:
        return empty_history(), pa.array([], pa.int64()), pa.array([], pa.int64())
    seq, ns, cseq, pending = _ack_fields(t["reply"].combine_chunks())
    table = _build(t["subject"].combine_chunks(), t["headers"].combine_chunks(),
                   t["payload"].combine_chunks(), ns, seq)
    return table, cseq, pending


def _ack_fields(reply: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Stream seq, time (ns), consumer seq and pending out of ``$JS.ACK`` reply subjects."""
    first = reply[0].as_py()
    toks = first.split(".")
    v1 = len(toks) == 9
    prefix = ".".join(toks[:4 if v1 else 6]) + "."
    # Usually one consumer: cut its constant prefix, split the five numbers, cast them at once.
    if pc.all(pc.starts_with(reply, prefix)).as_py():
        tail = pc.utf8_slice_codeunits(reply, len(prefix))
        parts = pc.split_pattern(tail, ".")
        width = 5 if v1 else 6
        if pc.all(pc.equal(pc.list_value_length(parts), width)).as_py():
            try:
                nums = parts.flatten()
                if not v1:
                    nums = nums.take(pa.array(np.arange(len(reply) * width)
                                              .reshape(-1, width)[:, :5].ravel()))
                grid = nums.cast(pa.int64()).to_numpy().reshape(-1, 5)
                return (pa.array(grid[:, 1]), pa.array(grid[:, 3]), pa.array(grid[:, 2]),
                        pa.array(grid[:, 4]))
            except pa.ArrowInvalid:
                pass
    ex = pc.extract_regex(reply, _ACK_RE)
    sseq, ts, cseq, pending = (pc.struct_field(ex, f).cast(pa.int64())
                               for f in ("sseq", "ts", "cseq", "pending"))
    return sseq, ts, cseq, pending


def parse_history(raw: pa.Table, method: str) -> pa.Table:
    return parse_direct(raw) if method == "direct" else parse_acked(raw)[0]
