"""Spill part files: the parts one capture writes (named, written aside and renamed, stopped
for good by the first failed write, checked for files gone from disk) and a spill directory's
parts found again in the order they were written.

A part's name is ``capture-<start ns, 19 digits>-<pid>-<id>-<part number>.parquet``: the
capture's start time first, so a plain name sort is chronological, and its part number last,
which ``spill_files`` reads as a number (older names held the process id first).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["DECODER_KEY", "SpillParts", "read_part", "spill_files"]

#: Schema metadata key naming a capture's declared decoder (``_binary`` writes and reads it).
DECODER_KEY = b"natsbook.decode"

#: A spill part's name: its capture's prefix, then ``-<part number>.parquet``.
_PART_NAME = re.compile(r"(.+)-(\d+)\.parquet")


class SpillParts:
    """The part files of one capture, in the order written. Not thread-safe: its store calls
    it under the store's lock."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.prefix = f"capture-{time.time_ns():019d}-{os.getpid()}-{id(self):x}"
        self.paths: list[Path] = []
        self.rows: list[int] = []  # rows of each part
        self._next = 0  # the next part's number (never reused)
        #: Why writing stopped (it never starts again), or None while it works.
        self.error: str | None = None
        #: (size, mtime) of each part when its footer last read whole.
        self._checked: dict[Path, tuple[int, int]] = {}

    def write(self, table: pa.Table) -> str | None:
        """Write `table` as the next part: None when it is on disk, else why not. The first
        failure stops writing for good. Not retried later: a disk that failed a write (full,
        removed, read-only) mostly fails the next one too, each try would cost a Parquet
        encode on the reader thread, and a directory that came back would hold the capture
        with a hole in it."""
        path = self.directory / f"{self.prefix}-{self._next:06d}.parquet"
        self._next += 1
        # Written aside and renamed: read_capture(dir) never sees half a part file.
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except OSError as exc:  # the directory is gone, the disk is full, ...
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            self.error = (f"writing spill part {path.name} to {os.fspath(self.directory)!r} "
                          f"failed ({why}); spilling is off for this capture, which now evicts "
                          "its oldest rows past its bounds (counted in stats.evicted)")
            return self.error
        self.paths.append(path)
        self.rows.append(table.num_rows)
        return None

    def drop_missing(self) -> tuple[int, int]:
        """Forget the parts whose file is gone (say, the directory was removed) or no longer
        a whole Parquet file of its rows (truncated, overwritten): (parts, rows) forgotten, so
        the store can count the rows and its readers read what is left. A part is checked
        again only when its size or time changed since it last passed (a footer read)."""
        paths, rows, lost = [], [], 0
        for path, n in zip(self.paths, self.rows, strict=True):
            if self._whole(path, n):
                paths.append(path)
                rows.append(n)
            else:
                lost += n
        gone = len(self.paths) - len(paths)
        if gone:
            self.paths, self.rows = paths, rows
        return gone, lost

    def forget(self, path: Path) -> int:
        """Forget one part a reader could not read; the rows it held (0 if not a part)."""
        if path not in self.paths:
            return 0
        i = self.paths.index(path)
        del self.paths[i]
        self._checked.pop(path, None)
        return self.rows.pop(i)

    def _whole(self, path: Path, rows: int) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        stamp = (st.st_size, st.st_mtime_ns)
        if self._checked.get(path) == stamp:
            return True
        try:
            ok = pq.read_metadata(path).num_rows == rows
        except (OSError, pa.ArrowException):
            ok = False
        if ok:
            self._checked[path] = stamp
        return ok


def spill_files(path: str | os.PathLike[str]) -> list[list[Path]]:
    """The Parquet files of a spill directory by capture, each capture's parts in the order
    they were written (by part number, whatever its width), the captures in name order (their
    start time, for the names natsbook writes now). A file of any other name is a capture of
    its own."""
    groups: dict[str, list[tuple[int, str, Path]]] = {}
    for f in Path(path).glob("*.parquet"):
        m = _PART_NAME.fullmatch(f.name)
        key, number = (m.group(1), int(m.group(2))) if m else (f.name, 0)
        groups.setdefault(key, []).append((number, f.name, f))
    return [[f for _, _, f in sorted(groups[key])] for key in sorted(groups)]


def read_part(path: Path, schema: pa.Schema) -> pa.Table | str:
    """A part file's table, or why it cannot be read (removed or damaged on disk)."""
    try:
        table = pq.read_table(path, schema=schema)
        if schema.metadata:
            return table
        # Keep the decoder the part declares (subscribe(decode=...)) for read_capture.
        meta = pq.read_schema(path).metadata
    except (OSError, pa.ArrowException) as exc:
        return f"{type(exc).__name__}: {exc}"
    if meta and DECODER_KEY in meta:
        return table.replace_schema_metadata({k: v for k, v in meta.items()
                                              if k.startswith(b"natsbook.")})
    return table
