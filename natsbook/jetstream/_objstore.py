"""JetStream object store, laid out exactly like the official clients (nats.go ``object.go``,
nats.py ``js/object_store.py``), so objects written by either side read back on the other.

A bucket ``B`` is the stream ``OBJ_B`` with two subject spaces: ``$O.B.C.<nuid>`` holds an
object's chunks (128 KiB by default, a fresh nuid per put) and ``$O.B.M.<base64url(name)>``
its meta, a JSON document published with ``Nats-Rollup: sub`` so only the newest meta per
name is stored. The meta carries size, chunk count and ``SHA-256=<base64url>`` digest, checked
on every read. Deleting publishes a meta with ``deleted: true`` and purges the chunks.

Memory stays bounded for large objects: ``put`` reads a file one chunk at a time, and ``get``
pulls chunks in batches of about :data:`READ_BYTES` through an internal reader and writes
them to the target file as they arrive (to a temporary name, renamed once the digest checks).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import string
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
import pandas as pd

from .._progress import Progress
from ..capture import TABLE, mark
from ..errors import (
    BadInputError,
    DigestMismatchError,
    JetStreamError,
    NatsbookError,
    NotFoundError,
)
from ._jsapi import API, check_bucket, not_found_error, stream_call, stream_names
from ._jsread import Batches, delete_read_consumer
from ._streams import add_stream, js_publish, purge_stream, read_stream, stream_info

if TYPE_CHECKING:
    from ..core import Link

__all__ = ["CHUNK_SIZE", "ObjectStore", "create_object_store",
           "object_store", "object_stores"]

#: The official clients' default chunk size.
CHUNK_SIZE = 128 * 1024
#: Chunk bytes pulled per batch when reading (the bound on what a read holds in memory).
READ_BYTES = 8 * 1024 * 1024
#: Objects larger than this show a progress bar (when progress=None).
PROGRESS_MIN_BYTES = 16 * 1024 * 1024
_DIGEST = "SHA-256="
_COLUMNS = ["name", "size", "chunks", "modified", "digest", "deleted", "description", "headers"]
_NUID_ALPHABET = string.ascii_letters + string.digits


def _nuid() -> str:
    return "".join(secrets.choice(_NUID_ALPHABET) for _ in range(22))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _digest(h: Any) -> str:
    return _DIGEST + _b64(h.digest())


def _same_digest(recorded: str, actual: str) -> bool:
    """Digests compare as bytes: the prefix may be upper or lower case, padding optional."""
    def raw(d: str) -> bytes:
        d = d.split("=", 1)[1] if d.upper().startswith(_DIGEST) else d
        return base64.urlsafe_b64decode(d + "=" * (-len(d) % 4))
    try:
        return raw(recorded) == raw(actual)
    except ValueError:
        return False


def object_stores(conn: Link) -> list[str]:
    """Names of the object store buckets in the account."""
    return [n[4:] for n in stream_names(conn) if n.startswith("OBJ_")]


def create_object_store(conn: Link, bucket: str, *, description: str | None = None,
                        ttl: float | None = None, storage: str = "file", replicas: int = 1,
                        max_bytes: int = -1, timeout: float = 5.0) -> ObjectStore:
    """Create a bucket (or update a compatible one) configured like the official clients'."""
    check_bucket(bucket)
    cfg: dict[str, Any] = {"discard": "new", "allow_rollup_hdrs": True, "max_bytes": max_bytes,
                           "max_age": int((ttl or 0) * 1e9), "num_replicas": replicas}
    if description:
        cfg["description"] = description
    add_stream(conn, f"OBJ_{bucket}", [f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
               storage=storage, allow_direct=True, timeout=timeout, **cfg)
    return ObjectStore(conn, bucket, timeout=timeout)


def object_store(conn: Link, bucket: str, *, create: bool = False,
                 timeout: float = 5.0) -> ObjectStore:
    """An object store bucket (``create=True`` creates it when missing; an existing one is
    opened as it is, its config unchanged).

    Raises:
        NotFoundError: no such bucket and ``create=False`` ("did you mean" in the message).
    """
    try:
        return ObjectStore(conn, bucket, timeout=timeout)
    except NotFoundError:
        if not create:
            raise
    return create_object_store(conn, bucket, timeout=timeout)


class ObjectStore:
    """An object store bucket. Open with ``conn.object_store(bucket)``."""

    def __init__(self, conn: Link, bucket: str, *, timeout: float = 5.0) -> None:
        check_bucket(bucket)
        self.conn = conn
        self.bucket = bucket
        self.stream = f"OBJ_{bucket}"
        self.timeout = timeout
        try:
            stream_info(conn, self.stream, timeout=timeout)
        except NotFoundError:
            raise not_found_error("object store", bucket, object_stores(conn), "create it with "
                             f"conn.object_store({bucket!r}, create=True)") from None

    def _meta_subject(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise BadInputError(f"bad object name {name!r}: names are non-empty strings")
        return f"$O.{self.bucket}.M.{_b64(name.encode())}"

    # -- meta ------------------------------------------------------------------------------
    def info(self, name: str, *, deleted: bool = False) -> dict[str, Any]:
        """The object's meta (name, size, chunks, digest, nuid, ...) with ``modified`` (when
        the meta was stored).

        Raises:
            NotFoundError: no such object (or it was deleted and `deleted` is False).
        """
        subject = self._meta_subject(name)
        try:
            body = stream_call(self.conn, "STREAM.MSG.GET", self.stream,
                                {"last_by_subj": subject}, self.timeout)
        except JetStreamError as exc:
            if exc.code == 404 and not isinstance(exc, NotFoundError):
                raise self._missing(name) from None
            raise
        msg = body["message"]
        try:
            meta = orjson.loads(base64.b64decode(msg.get("data") or ""))
        except ValueError:
            raise JetStreamError(f"object {name!r} in bucket {self.bucket!r} has a meta that "
                                 "is not JSON") from None
        meta["modified"] = pd.Timestamp(msg["time"])
        if meta.get("deleted") and not deleted:
            raise self._missing(name, deleted=True)
        return meta

    def _missing(self, name: str, deleted: bool = False) -> NotFoundError:
        if deleted:
            err = NotFoundError("object", name, None)
            err.args = (f"natsbook: object {name!r} was deleted from bucket {self.bucket!r}",)
            return err
        try:
            names = list(self.list()["name"])
        except NatsbookError:
            names = []
        return not_found_error("object", name, names, None, f"bucket {self.bucket!r} is empty")

    def list(self, *, deleted: bool = False) -> pd.DataFrame:
        """Every object: name, size, chunks, modified, digest, deleted, description, headers
        (deleted objects only with ``deleted=True``)."""
        table = read_stream(self.conn, self.stream, subject=f"$O.{self.bucket}.M.>",
                            progress=False, timeout=self.timeout)
        rows = []
        for payload, ts in zip(table["payload"].to_pylist(), table["time"].to_pylist(),
                               strict=True):
            try:
                meta = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if meta.get("deleted") and not deleted:
                continue
            rows.append({"name": meta.get("name"), "size": int(meta.get("size") or 0),
                         "chunks": int(meta.get("chunks") or 0), "modified": ts,
                         "digest": meta.get("digest") or None,
                         "deleted": bool(meta.get("deleted")),
                         "description": meta.get("description") or None,
                         "headers": meta.get("headers") or None})
        frame = pd.DataFrame(rows, columns=_COLUMNS)
        frame["size"] = frame["size"].astype("int64")
        frame["chunks"] = frame["chunks"].astype("int64")
        frame["deleted"] = frame["deleted"].astype(bool)
        frame["modified"] = pd.to_datetime(frame["modified"], utc=True)
        return mark(frame.sort_values("name", kind="stable").reset_index(drop=True), TABLE)

    # -- write -----------------------------------------------------------------------------
    def put(self, name: str, data: bytes | str | os.PathLike[str] | IO[bytes], *,
            description: str | None = None, headers: dict[str, Any] | None = None,
            chunk_size: int = CHUNK_SIZE, progress: bool | None = None) -> dict[str, Any]:
        """Store an object and return its meta.

        Args:
            data: bytes, a ``pathlib.Path`` / path-like (read chunk by chunk: memory stays
                bounded for any size) or a binary file object. A ``str`` is text, not a path.
            chunk_size: bytes per chunk (the official clients' 128 KiB by default).
            progress: progress bar (None: for objects above 16 MiB in a kernel/terminal).
        """
        meta_subject = self._meta_subject(name)
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise BadInputError(f"chunk_size={chunk_size!r} must be a positive int")
        if isinstance(data, str):
            data = data.encode()
        try:
            old = self.info(name)
        except NotFoundError:
            old = None
        if isinstance(data, bytes | bytearray | memoryview):
            src: IO[bytes] = io.BytesIO(bytes(data))
            total, close = len(data), False
        elif isinstance(data, os.PathLike):
            src = open(os.fspath(data), "rb")  # noqa: SIM115 - closed in finally
            total, close = os.fstat(src.fileno()).st_size, True
        elif hasattr(data, "readinto") or hasattr(data, "read"):
            src, total, close = data, 0, False
        else:
            raise BadInputError(f"cannot store a {type(data).__name__}: give bytes, a path "
                                "(pathlib.Path) or a binary file object")
        nuid = _nuid()
        chunk_subject = f"$O.{self.bucket}.C.{nuid}"
        bar = Progress(total, f"put {name}", _show(progress, total), transient=True)
        h = hashlib.sha256()
        size = chunks = 0
        try:
            while True:
                block = src.read(chunk_size)
                if not block:
                    break
                h.update(block)
                js_publish(self.conn, chunk_subject, block, timeout=self.timeout)
                size += len(block)
                chunks += 1
                bar.update(size)
            meta: dict[str, Any] = {
                "name": name, "description": description or "", "headers": _headers(headers),
                "options": {"max_chunk_size": chunk_size}, "bucket": self.bucket,
                "nuid": nuid, "size": size, "chunks": chunks, "digest": _digest(h),
                "mtime": pd.Timestamp.now(tz="UTC").isoformat()}
            if not description:
                del meta["description"]
            if not headers:
                del meta["headers"]
            js_publish(self.conn, meta_subject, orjson.dumps(meta),
                       headers={"Nats-Rollup": "sub"}, timeout=self.timeout)
        except Exception:
            try:
                purge_stream(self.conn, self.stream, subject=chunk_subject, timeout=self.timeout)
            except NatsbookError:
                pass  # the chunks stay orphaned, unreachable from any meta
            raise
        except BaseException:  # Ctrl-C: only send the purge, never wait on the server here
            self.conn.publish(f"{API}STREAM.PURGE.{self.stream}", {"filter": chunk_subject},
                              reply=self.conn.new_inbox())
            raise
        finally:
            bar.close(size)
            if close:
                src.close()
        if old is not None and old.get("nuid") and old["nuid"] != nuid:
            purge_stream(self.conn, self.stream, subject=f"$O.{self.bucket}.C.{old['nuid']}",
                         timeout=self.timeout)
        return self.info(name)

    def delete(self, name: str) -> None:
        """Delete an object: a ``deleted`` meta replaces its meta, its chunks are purged.

        Raises:
            NotFoundError: no such object.
        """
        meta = self.info(name)
        gone = {k: v for k, v in meta.items() if k != "modified"}
        gone.update(deleted=True, size=0, chunks=0, digest="",
                    mtime=pd.Timestamp.now(tz="UTC").isoformat())
        js_publish(self.conn, self._meta_subject(name), orjson.dumps(gone),
                   headers={"Nats-Rollup": "sub"}, timeout=self.timeout)
        if meta.get("nuid"):
            purge_stream(self.conn, self.stream, subject=f"$O.{self.bucket}.C.{meta['nuid']}",
                         timeout=self.timeout)

    # -- read ------------------------------------------------------------------------------
    def get(self, name: str, path: str | os.PathLike[str] | None = None, *,
            progress: bool | None = None) -> Any:
        """The object's bytes, or with `path`, the object written to that file (returns the
        ``Path``); the digest is checked before anything is returned or the file appears.

        Raises:
            NotFoundError: no such object.
            DigestMismatchError: the stored chunks do not match the recorded digest.
        """
        meta = self.info(name)
        link = (meta.get("options") or {}).get("link")
        if link:
            if not link.get("name"):
                raise BadInputError(f"object {name!r} links to a whole bucket, not an object")
            other = ObjectStore(self.conn, link["bucket"], timeout=self.timeout)
            return other.get(link["name"], path, progress=progress)
        if path is None:
            buf = io.BytesIO()
            self._read(meta, buf, progress)
            return buf.getvalue()
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "wb") as out:
                self._read(meta, out, progress)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def _read(self, meta: dict[str, Any], out: IO[bytes], progress: bool | None) -> None:
        name, size, chunks = meta["name"], int(meta.get("size") or 0), int(meta.get("chunks")
                                                                           or 0)
        h = hashlib.sha256()
        got = 0
        if chunks:
            chunk = int((meta.get("options") or {}).get("max_chunk_size") or CHUNK_SIZE)
            bar = Progress(size, f"get {name}", _show(progress, size), transient=True)
            try:
                for block in _chunks(self.conn, self.stream,
                                     f"$O.{self.bucket}.C.{meta['nuid']}", chunks, chunk,
                                     self.timeout):
                    h.update(block)
                    out.write(block)
                    got += len(block)
                    bar.update(got)
            finally:
                bar.close(got)
        actual = _digest(h)
        if got != size or not _same_digest(meta.get("digest") or "", actual):
            raise DigestMismatchError(
                f"object {name!r} in bucket {self.bucket!r} is corrupt: {got} bytes hash to "
                f"{actual}, the meta records {size} bytes with {meta.get('digest')!r} - "
                "nothing was returned; put it again", meta.get("digest") or "", actual)

    def __repr__(self) -> str:
        return f"<natsbook.ObjectStore {self.bucket!r}>"


def _headers(headers: dict[str, Any] | None) -> dict[str, list[str]]:
    """Headers as the official clients store them: every value a list of strings (Go's
    ``http.Header``), so nats.go can read the meta back."""
    out: dict[str, list[str]] = {}
    for key, value in (headers or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        out[str(key)] = [str(v) for v in values]
    return out


def _show(progress: bool | None, size: int) -> bool | None:
    return False if progress is None and size < PROGRESS_MIN_BYTES else progress


def _chunks(conn: Link, stream: str, subject: str, count: int, chunk: int,
            timeout: float) -> Any:
    """Yield the `count` chunks stored on `subject`, in order, pulled about READ_BYTES at a
    time by an ephemeral consumer; at most one batch is held at once."""
    batch = max(1, READ_BYTES // max(chunk, 1))
    cfg = {"ack_policy": "none", "mem_storage": True, "num_replicas": 1,
           "inactive_threshold": 30_000_000_000, "deliver_policy": "all",
           "filter_subject": subject, "max_batch": batch}
    info = stream_call(conn, "CONSUMER.CREATE", stream, {"stream_name": stream, "config": cfg},
                        timeout)
    consumer = info["name"]
    if int(info.get("num_pending", 0)) < count:
        delete_read_consumer(conn, stream, consumer, timeout, wait=True)
        raise JetStreamError(f"stream {stream!r} holds {info.get('num_pending', 0)} of the "
                             f"{count} chunks on {subject!r} - the object is incomplete")
    # Room for one batch twice over (a chunk larger than the meta says still fits once).
    reader = Batches(conn, timeout, max_buffer=2 * batch * max(chunk, CHUNK_SIZE) + READ_BYTES)
    done = False
    try:
        got = 0
        while got < count:
            want = min(batch, count - got)
            reader.request(f"{API}CONSUMER.MSG.NEXT.{stream}.{consumer}",
                           {"batch": want, "no_wait": True}, want=want)
            table = reader.table()
            reader._chunks.clear()
            if reader.received <= got:
                raise JetStreamError(f"stream {stream!r} stopped delivering chunks of "
                                     f"{subject!r} after {got} of {count}")
            got = reader.received
            yield from table["payload"].to_pylist()
        done = True
    finally:
        reader.close()
        delete_read_consumer(conn, stream, consumer, timeout, wait=done)
