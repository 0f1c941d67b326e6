"""The capture store: columnar, bounded, thread-safe; appended to in bulk by the reader thread.

Rows arrive as raw tuples ``(subject, reply, header_block, payload)`` and are sealed into Arrow
record batches every ``seal_rows`` rows, so memory stays close to the payload size. Bounds evict
the oldest rows first and count what they evict. With ``spill=DIR`` sealed rows go to Parquet
part files instead of being evicted, so a long capture keeps everything.

A storage error is this capture's alone: a part file that cannot be written (directory
removed, disk full, ...) turns spilling off for the rest of the capture, which then evicts as
any other capture does (counted), and is recorded (``spill_error``, ``stats.spill_errors``) and
handed to the subscription as a notice to report. The error never reaches the reader thread,
so the connection and every other subscription go on. The part files are ``_spill``'s.
"""

from __future__ import annotations

import os
import threading
import time as _time
import weakref
from collections import deque
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import BadInputError
from ..wire._protocol import HDR_LINE, RawMsg, header_block_error
from ..wire._runs import MsgRun, RunColumns
from ._binary import Decoder, declare, with_decoder
from ._spill import SpillParts, read_part, spill_files

__all__ = ["DEFAULT_BUDGET", "DEFAULT_MAX_BYTES", "SCHEMA", "CaptureBudget", "CaptureStore",
           "StoreStats", "read_spill_dir"]

#: Default bound per subscription: 256 MiB of captured data (payload + subject + headers).
#: Eight full captures fit in 2 GiB; raise it with subscribe(..., max_bytes=...).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: Default bound over every capture of one connection together (active and finished ones):
#: 1 GiB. Past it the oldest rows of any capture go first.
DEFAULT_BUDGET = 1024 * 1024 * 1024
SEAL_ROWS = 8192
SPILL_ROWS = 262_144

_COL0, _COL1, _COL2, _COL3 = (itemgetter(i) for i in range(4))

SCHEMA = pa.schema([
    ("time", pa.timestamp("ns", tz="UTC")),
    ("subject", pa.string()),
    ("reply", pa.string()),
    ("headers", pa.binary()),
    ("payload", pa.binary()),
])


@dataclass(slots=True, frozen=True)
class StoreStats:
    received: int
    stored: int
    in_memory: int
    spilled: int
    evicted: int
    bytes: int
    #: Rows whose header block is not NATS headers (kept, flagged by ``header_error``).
    bad_headers: int = 0
    #: Failed spill writes (spilling is then off for this capture) and spilled part files
    #: found missing; the rows lost with them are counted in ``evicted``.
    spill_errors: int = 0


def text_array(values: list[bytes | None]) -> pa.Array:
    """Subjects / replies as strings. The server forwards whatever bytes a publisher sent, so
    invalid UTF-8 is replaced (U+FFFD) rather than allowed to fail the seal."""
    arr = pa.array(values, pa.binary())
    try:
        return arr.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in values],
                        pa.string())


def _seal(rows: list[RawMsg], times: list[tuple[int, int]]) -> pa.RecordBatch:
    n = len(rows)
    # One C-level pass per column (cheaper than transposing with zip(*rows)).
    subjects = list(map(_COL0, rows))
    payloads = list(map(_COL3, rows))
    replies = list(map(_COL1, rows))
    hdrs = list(map(_COL2, rows))
    reply_arr = text_array(replies) if any(replies) else pa.nulls(n, pa.string())
    hdr_arr = pa.array(hdrs, pa.binary()) if any(hdrs) else pa.nulls(n, pa.binary())
    if len(times) == 1:
        t = np.full(n, times[0][0], dtype="int64")
    else:
        t = np.repeat(
            np.fromiter((x for x, _ in times), dtype="int64", count=len(times)),
            np.fromiter((c for _, c in times), dtype="int64", count=len(times)),
        )
    return pa.RecordBatch.from_arrays(
        [
            pa.array(t, pa.int64()).cast(SCHEMA.field("time").type),
            text_array(subjects),
            reply_arr,
            hdr_arr,
            pa.array(payloads, pa.binary()),
        ],
        schema=SCHEMA,
    )


def _bad_header_count(col: pa.Array) -> int:
    """How many non-empty header blocks of `col` do not start with NATS/1.0 (what
    ``header_block_error`` refuses)."""
    if col.null_count == len(col):
        return 0
    blocks = pc.sum(pc.greater(pc.binary_length(col), 0)).as_py() or 0
    good = pc.sum(pc.starts_with(col, HDR_LINE.decode())).as_py() or 0
    return int(blocks - good)


def _first_bad_header(col: pa.Array) -> str:
    for block in col.to_pylist():
        if block and (text := header_block_error(block)) is not None:
            return text
    return "header block does not start with NATS/1.0"


def _run_batch(cols: RunColumns, t_ns: int) -> pa.RecordBatch:
    """The batch of a bulk-parsed run, built from its offsets without a row in Python: an
    Arrow binary array over the receive buffer whose items are the run's segments, from which
    ``take`` copies the subjects, replies and payloads."""
    n, k = cols.n, cols.k
    segments = pa.Array.from_buffers(pa.binary(), k * n,
                                     [None, pa.py_buffer(cols.bounds), pa.py_buffer(cols.buf)])

    def column(j: int) -> pa.Array:
        return segments.take(pa.array(np.arange(j, k * n, k, dtype=np.int64)))

    def text(j: int) -> pa.Array:
        values = column(j)
        try:
            return values.cast(pa.string())
        except pa.ArrowInvalid:  # invalid UTF-8: replaced, as text_array does
            return text_array(values.to_pylist())

    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.full(n, t_ns, dtype="int64"), pa.int64()).cast(SCHEMA.field("time").type),
            text(1),
            text(3) if cols.has_reply else pa.nulls(n, pa.string()),
            pa.nulls(n, pa.binary()),
            column(k - 2),
        ],
        schema=SCHEMA,
    )


class CaptureBudget:
    """A byte bound shared by several stores (one connection's captures).

    When the stores together hold more than ``max_bytes``, the oldest sealed batch across all
    of them is evicted (and counted in that store's ``evicted``) until they fit. Enforced by
    the thread that sealed, after it released its own store's lock, and taking one store lock
    at a time, so two stores can never wait on each other.

    The set of stores is only read or changed under the budget's lock: stores are registered
    from the caller's thread (``subscribe``) while the I/O thread enforces the bound.
    """

    def __init__(self, max_bytes: int | None = DEFAULT_BUDGET) -> None:
        self.max_bytes = max_bytes
        self._stores: weakref.WeakSet[CaptureStore] = weakref.WeakSet()
        self._lock = threading.Lock()

    def register(self, store: CaptureStore) -> None:
        with self._lock:
            self._stores.add(store)

    def _members(self) -> list[CaptureStore]:
        with self._lock:
            return list(self._stores)

    @property
    def used(self) -> int:
        return sum(s._sealed_bytes for s in self._members())

    def enforce(self) -> None:
        if self.max_bytes is None or self.used <= self.max_bytes:
            return
        with self._lock:
            stores = list(self._stores)
            while sum(s._sealed_bytes for s in stores) > self.max_bytes:
                heads = [(s._head_time(), id(s), s) for s in stores]
                heads = [h for h in heads if h[0] is not None]
                if not heads:
                    return
                min(heads)[2]._evict_head()


class CaptureStore:
    """Thread-safe columnar message store with row/byte bounds and optional Parquet spill."""

    def __init__(self, *, max_rows: int | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES,
                 spill: str | os.PathLike[str] | None = None, seal_rows: int = SEAL_ROWS,
                 budget: CaptureBudget | None = None,
                 decode: str | Decoder | None = None) -> None:
        if max_rows is not None and max_rows < 1:
            raise ValueError("max_rows must be >= 1 or None")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1 or None")
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.seal_rows = seal_rows
        self.decoder = declare(decode)  # subscribe(decode=...): self.schema declares it
        self.schema = with_decoder(SCHEMA, self.decoder)
        self._lock = threading.Lock()
        self._open: list[RawMsg] = []
        self._open_times: list[tuple[int, int]] = []
        self._sealed: deque[pa.RecordBatch] = deque()
        self._sealed_rows = 0
        self._sealed_bytes = 0
        self._received = 0
        self._evicted = 0
        self._spilled = 0
        self._bad_headers = 0  # among sealed rows; the open ones are counted by `stats`
        self._spill = SpillParts(Path(spill)) if spill is not None else None
        self._spill_errors = 0
        # What the owner should report (taken with take_notices(), outside every lock).
        self._notices: list[str] = []
        self._budget = budget
        if budget is not None:
            budget.register(self)

    # -- writer side (reader thread) ---------------------------------------------------------
    def append(self, rows: list[RawMsg], t_ns: int | None = None) -> None:
        """Append raw rows received together at time ``t_ns`` (ns since epoch)."""
        if not rows:
            return
        if t_ns is None:
            t_ns = _time.time_ns()
        if type(rows) is MsgRun:
            self._append_run(rows, t_ns)
            return
        with self._lock:
            self._open.extend(rows)
            self._open_times.append((t_ns, len(rows)))
            self._received += len(rows)
            if len(self._open) < self.seal_rows:
                return
            self._seal_locked()
        if self._budget is not None:
            self._budget.enforce()

    def _append_run(self, run: MsgRun, t_ns: int) -> None:
        """A bulk-parsed run: its row lists join the open rows, its columns become batches
        (after the open rows before them, so order is kept)."""
        with self._lock:
            self._received += len(run)
            for part in run.parts:
                if isinstance(part, list):
                    self._open.extend(part)
                    self._open_times.append((t_ns, len(part)))
                    if len(self._open) >= self.seal_rows:
                        self._seal_locked()
                else:
                    self._seal_locked()
                    self._keep_locked(_run_batch(part, t_ns))
        if self._budget is not None:
            self._budget.enforce()

    def seal(self) -> None:
        """Seal the open rows now (a finished capture's tail then counts against budgets)."""
        with self._lock:
            self._seal_locked()
        if self._budget is not None:
            self._budget.enforce()

    def _head_time(self) -> int | None:
        """Receive time (ns) of the oldest sealed row held in memory, or None."""
        with self._lock:
            if not self._sealed:
                return None
            head = self._sealed[0]
            if head.num_rows == 0:
                return 0
            return int(head.column(0)[0].value)

    def _evict_head(self) -> None:
        """Make room for a budget: a spill capture writes its rows to disk (it keeps
        everything); any other (or one whose spill failed) drops its oldest sealed batch
        (counted)."""
        with self._lock:
            if self._spill_on and self._spill_locked():
                return
            if self._sealed:
                head = self._sealed.popleft()
                self._sealed_rows -= head.num_rows
                self._sealed_bytes -= head.nbytes
                self._evicted += head.num_rows

    def _seal_locked(self) -> None:
        if not self._open:
            return
        batch = _seal(self._open, self._open_times)
        self._open, self._open_times = [], []
        self._keep_locked(batch)

    def _keep_locked(self, batch: pa.RecordBatch) -> None:
        self._sealed.append(batch)
        self._sealed_rows += batch.num_rows
        self._sealed_bytes += batch.nbytes
        hdrs = batch.column(3)
        if hdrs.null_count < batch.num_rows:  # never for a batch without headers
            bad = _bad_header_count(hdrs)
            if bad:
                if not self._bad_headers:
                    self._notices.append(
                        f"captured a message whose {_first_bad_header(hdrs)} - kept as a row "
                        "with headers=None and the reason in header_error (counted in "
                        "stats.bad_headers)")
                self._bad_headers += bad
        if self._spill_on:
            # Spill before memory passes the capture's bound (or every SPILL_ROWS rows).
            if not (self._sealed_rows >= SPILL_ROWS or (
                    self.max_bytes is not None and self._sealed_bytes > self.max_bytes)):
                return
            if self._spill_locked():
                return
        # No spill, or it just failed: the bounds evict (counted).
        self._enforce_locked()

    def _enforce_locked(self) -> None:
        sealed = self._sealed
        while sealed:
            over_rows = self.max_rows is not None and self._sealed_rows > self.max_rows
            over_bytes = self.max_bytes is not None and self._sealed_bytes > self.max_bytes
            if not (over_rows or over_bytes):
                break
            head = sealed[0]
            if over_rows and not over_bytes:
                assert self.max_rows is not None
                excess = self._sealed_rows - self.max_rows
                if excess < head.num_rows:
                    # Trim the head in place; a fresh copy releases the trimmed rows' memory.
                    kept = pa.Table.from_batches([head.slice(excess)]).combine_chunks()
                    new_head = kept.to_batches()[0] if kept.num_rows else head.slice(0, 0)
                    sealed[0] = new_head
                    self._sealed_rows -= excess
                    self._sealed_bytes += new_head.nbytes - head.nbytes
                    self._evicted += excess
                    break
            sealed.popleft()
            self._sealed_rows -= head.num_rows
            self._sealed_bytes -= head.nbytes
            self._evicted += head.num_rows

    def _spill_locked(self) -> bool:
        """Write the sealed batches to the next part file. False when that failed: spilling
        is then off for good and the batches stay in memory for the bounds to evict."""
        assert self._spill is not None
        if not self._sealed:
            return True
        table = pa.Table.from_batches(list(self._sealed), self.schema)
        failed = self._spill.write(table)
        if failed is not None:
            self._spill_errors += 1
            lost = self._drop_missing_locked()[1]
            if lost:
                failed += f"; {lost} rows spilled before were lost with their files (counted too)"
                self._spill.error = failed
            self._notices.append(failed)
            return False
        self._spilled += table.num_rows
        self._sealed.clear()
        self._sealed_rows = self._sealed_bytes = 0
        return True

    def _drop_missing_locked(self) -> tuple[int, int]:
        """Parts gone from disk: their rows move from ``spilled`` to ``evicted``, so the counts
        still add up and the readers read what is left. Returns (parts, rows) lost."""
        if self._spill is None or not self._spill.paths:
            return 0, 0
        gone, lost = self._spill.drop_missing()
        self._spilled, self._evicted = self._spilled - lost, self._evicted + lost
        return gone, lost

    def _check_parts_locked(self) -> None:
        """Before the spill parts are read: leave out (and count) any that disappeared or
        are no longer whole."""
        gone, lost = self._drop_missing_locked()
        if gone and self._spill is not None:
            self._spill_errors += 1
            self._notices.append(f"{gone} spill part files are missing or unreadable in "
                                 f"{os.fspath(self._spill.directory)!r}: their {lost} rows are "
                                 "gone (counted in stats.evicted)")

    def read_parts(self, parts: list[Path]) -> list[pa.Table]:
        """The tables of `parts` (from :meth:`snapshot`), read outside the lock. A part that
        cannot be read (removed or damaged since the check) is left out, its rows counted as
        evicted and reported: one bad file never breaks a reader."""
        tables = []
        for path in parts:
            if not isinstance(got := read_part(path, self.schema), str):
                tables.append(got)
                continue
            with self._lock:
                lost = self._spill.forget(path) if self._spill is not None else 0
                self._spilled, self._evicted = self._spilled - lost, self._evicted + lost
                self._spill_errors += 1
                self._notices.append(f"spill part {path.name} could not be read ({got}): its "
                                     f"{lost} rows are gone (counted in stats.evicted)")
        return tables

    def take_notices(self) -> list[str]:
        """What happened to this store that its owner should report (spill failures, the
        first bad header block), each once."""
        if not self._notices:
            return []
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    @property
    def _spill_on(self) -> bool:  # until a part cannot be written (spill_error says why)
        return self._spill is not None and self._spill.error is None

    @property
    def spill_error(self) -> str | None:
        """Why spilling stopped, or None while it works (or without spill)."""
        return self._spill.error if self._spill is not None else None

    # -- reader side (any thread) ------------------------------------------------------------
    def flush_spill(self) -> None:
        """Write everything held in memory to the spill directory (no-op without spill)."""
        with self._lock:
            self._seal_locked()
            if self._spill_on and not self._spill_locked():
                self._enforce_locked()

    def finish(self) -> None:
        """The capture ended: seal its tail; a spill capture also writes every row it still
        holds in memory, so the spill directory alone holds the whole capture."""
        if not self._spill_on:
            self.seal()
        else:
            self.flush_spill()

    def table(self) -> pa.Table:
        """A consistent snapshot of every stored row (spilled parts first, oldest first)."""
        with self._lock:
            self._seal_locked()
            self._check_parts_locked()
            batches = list(self._sealed)
            parts = list(self._spill.paths) if self._spill is not None else []
        tables = self.read_parts(parts)
        tables.append(pa.Table.from_batches(batches, self.schema))
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def snapshot(self) -> tuple[list[Path], list[pa.RecordBatch], int]:
        """Spill parts, in-memory batches and the ``received`` count, taken together under the
        lock, so each stored row is in exactly one part or batch (for SQL over a live capture).

        The sealed batches are the store's own (no copy); the open tail rows come as one fresh
        batch at the end. Unlike :meth:`table` nothing is sealed early.
        """
        with self._lock:
            self._check_parts_locked()
            parts = list(self._spill.paths) if self._spill is not None else []
            batches = list(self._sealed)
            if self._open:
                batches.append(_seal(self._open, self._open_times))
            return parts, batches, self._received

    def clear(self) -> None:
        """Forget stored rows (counters of what was received and evicted stay)."""
        with self._lock:
            self._evicted += self._sealed_rows + len(self._open)
            self._bad_headers += self._open_bad_headers()
            self._open, self._open_times = [], []
            self._sealed.clear()
            self._sealed_rows = self._sealed_bytes = 0

    @property
    def stats(self) -> StoreStats:
        with self._lock:
            in_mem = self._sealed_rows + len(self._open)
            return StoreStats(
                received=self._received,
                stored=in_mem + self._spilled,
                in_memory=in_mem,
                spilled=self._spilled,
                evicted=self._evicted,
                bytes=self._sealed_bytes + sum(len(r[3]) + len(r[0]) for r in self._open),
                bad_headers=self._bad_headers + self._open_bad_headers(),
                spill_errors=self._spill_errors,
            )

    def _open_bad_headers(self) -> int:
        """Bad header blocks among the rows not sealed yet (counted when sealed)."""
        if not any(map(_COL2, self._open)):  # one C-level pass when no row has headers
            return 0
        return sum(1 for r in self._open if r[2] and r[2][:8] != HDR_LINE)

    def __len__(self) -> int:
        with self._lock:
            return self._sealed_rows + len(self._open) + self._spilled


def read_spill_dir(path: str | os.PathLike[str]) -> pa.Table:
    """Every row of a spill directory. One capture's rows come in the order they arrived (as
    ``sub.to_pandas()`` gives them); the rows of several captures (runs, or subscriptions
    sharing the directory) are merged by receive time, as ``conn.to_pandas()`` does, so
    ``last=`` takes the newest."""
    captures = spill_files(path)
    files = [f for parts in captures for f in parts]
    for f, got in zip(files, tables := [read_part(f, SCHEMA) for f in files], strict=True):
        if isinstance(got, str):
            raise BadInputError(f"spill part {os.fspath(f)!r} is not a readable capture part "
                                f"({got}) - move it out of the directory to read the rest")
    if not tables:
        return SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    return table.sort_by("time") if len(captures) > 1 else table  # a stable sort
