"""A recorded dataset on disk or in object storage: where it is, how its parts are named and
how one is written so that a reader never sees half of it.

Layout (hive partitioning by the messages' stream time, UTC)::

    <root>/_natsbook.json                       what the dataset is (stream, default decode)
    <root>/date=YYYY-MM-DD/hour=HH/part-<first seq>-<last seq>-<writer>.parquet

Sequences are zero-padded to 12 digits, so a plain name sort is a sequence sort. ``writer``
is a random token per recorder process: two recorders never write the same name, so no part
ever replaces another (a sequence written by both, after a crash, is removed when reading).

Columns: the capture's (``time`` = the time the stream stored the message, ``subject``,
``reply`` (always null), ``headers``, ``payload``: the raw bytes, decoded only when reading)
plus ``stream_seq``. zstd. A local part is written to ``.<name>.<writer>.tmp`` in its final
folder, fsynced, renamed and the folder fsynced; an object-store part is one PUT of the whole file
under its final name (a PUT, or a completed multipart upload, is atomic; S3 has no rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import DatasetError
from ._store import SCHEMA

__all__ = ["DATASET_SCHEMA", "META_NAME", "Location", "PartWriter", "locate"]

META_NAME = "_natsbook.json"
DATASET_SCHEMA = SCHEMA.append(pa.field("stream_seq", pa.int64()))
FORMAT = 1


@dataclass(slots=True)
class Location:
    """A dataset root: the filesystem and the path on it (no scheme)."""

    #: The location as given, credentials shown as ``***`` (for messages).
    url: str
    fs: pafs.FileSystem
    root: str

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])


def redact(url: str) -> str:
    """An object-store URL as it may be printed: credentials in it (``s3://key:secret@bucket``)
    shown as ``***``. Everything between the scheme and the last "@" before the query is
    hidden, so a secret holding "/" or ":" is covered too."""
    scheme, sep, rest = url.partition("://")
    head, q, query = rest.partition("?")
    if sep and "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    return scheme + sep + head + q + query


def locate(url: str | os.PathLike[str]) -> Location:
    """A local folder (a path or ``file://``) or object storage (``s3://bucket/prefix``,
    ``gs://...``: anything ``pyarrow.fs.FileSystem.from_uri`` knows; S3 options such as
    ``?endpoint_override=host:port&scheme=http`` go in the query, credentials come from the
    usual ``AWS_*`` variables)."""
    text = os.fspath(url)
    if "://" in text and not text.startswith("file://"):
        shown = redact(text)
        try:
            fs, root = pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise DatasetError(f"cannot use {shown!r} as a dataset location: "
                               f"{str(exc).replace(text, shown)} - give a local folder or an "
                               "s3://bucket/prefix URL", url=shown) from None
        return Location(shown, fs, root.rstrip("/"))
    if text.startswith("file://"):
        text = text[len("file://"):]
    return Location(text, pafs.LocalFileSystem(), os.path.abspath(text))


def read_meta(loc: Location) -> dict[str, Any] | None:
    """The dataset's ``_natsbook.json`` (None when there is none)."""
    try:
        with loc.fs.open_input_stream(loc.join(META_NAME)) as f:
            meta = json.loads(f.read())
    except (FileNotFoundError, pa.ArrowException, OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _hours(table: pa.Table) -> list[tuple[str, str, pa.Table]]:
    """(date, hour, rows) for each UTC hour the table's times fall in."""
    ns = table["time"].combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    hour = ns // 3_600_000_000_000
    out = []
    for h in np.unique(hour):
        rows = table.filter(pa.array(hour == h))
        stamp = np.datetime64(int(h), "h").astype("datetime64[s]").item()
        out.append((f"{stamp:%Y-%m-%d}", f"{stamp:%H}", rows))
    return out


class PartWriter:
    """Writes one recorder's parts into a dataset. Every failure is a DatasetError naming the
    part and the fix; the caller then acks nothing of that part."""

    def __init__(self, url: str | os.PathLike[str], *, stream: str,
                 decode: str | None = None) -> None:
        self.loc = locate(url)
        self.writer = secrets.token_hex(4)
        self.stream = stream
        self.decode = decode
        #: Every part written, as paths on the dataset's filesystem.
        self.written: list[str] = []
        self._check()

    def _fail(self, what: str, exc: BaseException) -> DatasetError:
        why = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        return DatasetError(f"{what} in {self.loc.url!r} failed ({why}); nothing of it was "
                            "acked - make the output writable (space, permissions, bucket) "
                            "and start the recorder again: it resumes where the consumer "
                            "stands", url=self.loc.url)

    def _check(self) -> None:
        """Fail before reading anything when the output is not writable; write the dataset's
        ``_natsbook.json`` when it has none, and refuse one that records another stream."""
        meta = read_meta(self.loc)
        if meta is not None:
            if meta.get("stream") not in (None, self.stream):
                raise DatasetError(f"{self.loc.url!r} holds stream {meta.get('stream')!r}, not "
                                   f"{self.stream!r} - record each stream into its own folder",
                                   url=self.loc.url)
            if self.decode is None:
                self.decode = meta.get("decode")
        probe = self.loc.join(f".probe-{self.writer}")
        try:
            if self.loc.local:
                os.makedirs(self.loc.root, exist_ok=True)
            self._put(probe, b"")
            self.loc.fs.delete_file(probe)
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("writing a probe file", exc) from None
        if meta is None or (self.decode and meta.get("decode") != self.decode):
            body = {"format": FORMAT, "stream": self.stream, "decode": self.decode or "auto",
                    "partitioning": "hive: date=YYYY-MM-DD/hour=HH (stream time, UTC)",
                    "dedup": "stream_seq"}
            try:
                self._put(self.loc.join(META_NAME), json.dumps(body, indent=1).encode())
            except (OSError, pa.ArrowException) as exc:
                raise self._fail(f"writing {META_NAME}", exc) from None

    def _put(self, path: str, data: bytes | pa.Buffer) -> None:
        """`data` at `path`, all or nothing."""
        if not self.loc.local:
            with self.loc.fs.open_output_stream(path) as f:
                f.write(data)
            return
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".{name}.{self.writer}.tmp")  # never shared
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def write(self, table: pa.Table) -> list[str]:
        """Write `table` (DATASET_SCHEMA, any order) as one part per UTC hour; returns the
        paths. Rows are sorted by stream_seq and a sequence met twice is written once."""
        if table.num_rows == 0:
            return []
        table = table.sort_by("stream_seq")
        seq = table["stream_seq"].combine_chunks().to_numpy()
        if len(seq) > 1 and (seq[1:] == seq[:-1]).any():
            keep = np.ones(len(seq), dtype=bool)
            keep[1:] = seq[1:] != seq[:-1]
            table = table.filter(pa.array(keep))
        paths = []
        for date, hour, rows in _hours(table):
            first = pc.min(rows["stream_seq"]).as_py()
            last = pc.max(rows["stream_seq"]).as_py()
            folder = self.loc.join(f"date={date}", f"hour={hour}")
            path = f"{folder}/part-{first:012d}-{last:012d}-{self.writer}.parquet"
            sink = pa.BufferOutputStream()
            pq.write_table(rows, sink, compression="zstd")
            try:
                if self.loc.local:
                    os.makedirs(folder, exist_ok=True)
                self._put(path, sink.getvalue())
            except (OSError, pa.ArrowException) as exc:
                raise self._fail(f"writing part {path.rsplit('/', 1)[-1]}", exc) from None
            paths.append(path)
        self.written.extend(paths)
        return paths
