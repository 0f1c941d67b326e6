"""Object store against the real embedded nats-server, and interop with nats-py's object store
(the official client's chunking, meta subjects and digest, read back byte for byte both ways)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Iterator

import nats
import orjson
import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.errors import BadInputError, DigestMismatchError, NotFoundError
from natsbook.jetstream import _objstore


@pytest.fixture
def store(conn: natsbook.Connection, subject: str) -> Iterator[_objstore.ObjectStore]:
    o = conn.object_store(subject, create=True)
    yield o
    try:
        js.delete_stream(conn, o.stream)
    except natsbook.NatsbookError:
        pass


def _chunk_counts(conn: natsbook.Connection, store: _objstore.ObjectStore) -> dict[str, int]:
    frame = js.stream_subjects(conn, store.stream, f"$O.{store.bucket}.C.>")
    return dict(zip(frame.iloc[:, 0], frame.iloc[:, 1], strict=True))


def _meta_subject(store: _objstore.ObjectStore, name: str) -> str:
    return f"$O.{store.bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def test_round_trip_and_layout(conn, store):
    data = os.urandom(2 * _objstore.CHUNK_SIZE + 7)
    meta = store.put("dir/a.bin", data, description="three chunks", headers={"X": ["1"]})
    assert (meta["size"], meta["chunks"]) == (len(data), 3)
    assert meta["digest"] == "SHA-256=" + base64.urlsafe_b64encode(
        hashlib.sha256(data).digest()).decode()
    assert meta["options"]["max_chunk_size"] == 128 * 1024
    assert store.get("dir/a.bin") == data
    # The official layout: meta under base64url(name), rolled up; chunks under the nuid.
    last = conn.request(f"$JS.API.DIRECT.GET.{store.stream}",
                        {"last_by_subj": _meta_subject(store, "dir/a.bin")})
    assert orjson.loads(last.data)["nuid"] == meta["nuid"]
    assert last.headers.get("Nats-Rollup") == "sub"
    assert _chunk_counts(conn, store) == {f"$O.{store.bucket}.C.{meta['nuid']}": 3}
    frame = store.list()
    assert list(frame.columns) == ["name", "size", "chunks", "modified", "digest", "deleted",
                                   "description", "headers"]
    row = frame.iloc[0]
    assert (row["name"], row["size"], row["chunks"], row["deleted"], row["description"]) == (
        "dir/a.bin", len(data), 3, False, "three chunks")
    assert row["headers"] == {"X": ["1"]}
    assert str(frame["modified"].dtype) == "datetime64[ns, UTC]"
    assert store.info("dir/a.bin")["modified"] == row["modified"]
    # Header values are stored as lists of strings, as nats.go's http.Header reads them.
    assert store.put("h", b"x", headers={"A": "1", "B": [2, 3]})["headers"] == {
        "A": ["1"], "B": ["2", "3"]}


def test_chunk_boundaries(store):
    cs = _objstore.CHUNK_SIZE
    for size, chunks in ((0, 0), (1, 1), (cs, 1), (cs + 1, 2)):
        data = os.urandom(size)
        assert store.put(f"s{size}", data)["chunks"] == chunks
        assert store.get(f"s{size}") == data


def test_overwrite_purges_old_chunks_and_delete(conn, store):
    first = store.put("k", b"one" * 100_000)
    second = store.put("k", b"two")
    assert first["nuid"] != second["nuid"]
    assert _chunk_counts(conn, store) == {f"$O.{store.bucket}.C.{second['nuid']}": 1}
    assert store.get("k") == b"two"
    store.delete("k")
    assert _chunk_counts(conn, store) == {}
    with pytest.raises(NotFoundError, match="deleted"):
        store.get("k")
    assert store.list().empty
    gone = store.list(deleted=True)
    assert gone[["name", "size", "deleted"]].values.tolist() == [["k", 0, True]]
    assert store.info("k", deleted=True)["deleted"] is True
    with pytest.raises(NotFoundError, match="did you mean"):
        store.put("kk", b"x") and store.get("k2")


def test_files_stream_chunk_by_chunk(store, tmp_path, monkeypatch):
    # Small read batches: the reader holds two chunks at a time and must still reassemble
    # every chunk in order across many pulls.
    monkeypatch.setattr(_objstore, "READ_BYTES", 2 * 1024)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(50 * 1024 + 3))
    meta = store.put("f", src, chunk_size=1024)
    assert meta["chunks"] == 51
    out = store.get("f", tmp_path / "out.bin")
    assert out == tmp_path / "out.bin" and out.read_bytes() == src.read_bytes()
    with open(src, "rb") as fh:
        store.put("fh", fh)
    assert store.get("fh") == src.read_bytes()
    assert store.put("text", "héllo")["size"] == len("héllo".encode())
    with pytest.raises(BadInputError):
        store.put("bad", 12)  # type: ignore[arg-type]


def test_digest_mismatch_raises_and_writes_nothing(conn, store, tmp_path):
    meta = store.put("obj", b"payload" * 1000)
    forged = {k: v for k, v in meta.items() if k != "modified"}
    forged["digest"] = "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(b"x").digest()
                                                             ).decode()
    js.js_publish(conn, _meta_subject(store, "obj"), orjson.dumps(forged),
                  headers={"Nats-Rollup": "sub"})
    with pytest.raises(DigestMismatchError, match="corrupt") as err:
        store.get("obj")
    assert err.value.expected == forged["digest"]
    with pytest.raises(DigestMismatchError):
        store.get("obj", tmp_path / "o.bin")
    assert list(tmp_path.iterdir()) == []


def test_missing_bucket_suggests(conn, store):
    with pytest.raises(NotFoundError, match="did you mean"):
        conn.object_store(store.bucket[:-1] + "X")


# ------------------------------------------------------------------ interop with nats-py
def _nats_py(url: str, bucket: str, action):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        nc = await nats.connect(url)
        try:
            return await action(await nc.jetstream().object_store(bucket))
        finally:
            await nc.close()
    return asyncio.run(main())


def test_nats_py_writes_natsbook_reads(server, conn, store, tmp_path):
    data = os.urandom(3 * _objstore.CHUNK_SIZE + 12345)

    async def put(obs):  # type: ignore[no-untyped-def]
        await obs.put("from/py", data)
        await obs.put("empty", b"")
        info = await obs.put("gone", b"bye")
        await obs.delete("gone")
        return info
    _nats_py(server.url, store.bucket, put)
    assert store.get("from/py") == data
    assert store.get("from/py", tmp_path / "py.bin").read_bytes() == data
    assert store.get("empty") == b""
    frame = store.list(deleted=True).set_index("name")
    assert frame.loc["from/py", "size"] == len(data) and frame.loc["from/py", "chunks"] == 4
    assert bool(frame.loc["gone", "deleted"]) is True
    with pytest.raises(NotFoundError):
        store.get("gone")


def test_natsbook_writes_nats_py_reads(server, store):
    data = os.urandom(2 * _objstore.CHUNK_SIZE + 1)
    mine = store.put("from/nb", data, description="d")
    store.put("gone", b"bye")
    store.delete("gone")

    async def read(obs):  # type: ignore[no-untyped-def]
        res = await obs.get("from/nb")
        names = {i.name: i.deleted for i in await obs.list(ignore_deletes=False)}
        try:
            await obs.get("gone")
            gone = "found"
        except Exception as exc:  # nats-py's ObjectNotFound/ObjectDeleted family
            gone = type(exc).__name__
        return res.data, res.info.digest, res.info.description, names, gone
    got, digest, description, names, gone = _nats_py(server.url, store.bucket, read)
    assert got == data
    assert (digest, description) == (mine["digest"], "d")
    assert names == {"from/nb": False, "gone": True}
    assert gone != "found"


def test_large_files_stay_out_of_memory(store, tmp_path, monkeypatch):
    """A 24 MiB object goes to and from disk with Python allocations peaking far below its
    size: put reads one chunk at a time, get holds one read batch (1 MiB here)."""
    import tracemalloc

    monkeypatch.setattr(_objstore, "READ_BYTES", 1024 * 1024)
    size = 24 * 1024 * 1024
    src = tmp_path / "big.bin"
    with open(src, "wb") as fh:
        for _ in range(size // (1024 * 1024)):
            fh.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        store.put("big", src)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.get("big", tmp_path / "back.bin")
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert put_peak < size / 4 and get_peak < size / 4, (put_peak, get_peak)
    with open(src, "rb") as a, open(tmp_path / "back.bin", "rb") as b:
        assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest()


def test_progress_line_for_large_objects(store, capsys):
    store.put("p", os.urandom(300_000), progress=True)
    store.get("p", progress=True)
    err = capsys.readouterr().err
    assert "put p: " in err and "get p: " in err and "/300,000" in err


def test_create_true_opens_an_existing_store_as_it_is(conn, subject):
    """``conn.object_store(name, create=True)`` again must not reset the bucket's config
    (its max age here) to the defaults."""
    o = js.create_object_store(conn, subject, ttl=3600, storage="memory")
    try:
        conn.object_store(subject, create=True)
        assert js.stream_info(conn, o.stream)["config"]["max_age"] == 3600 * 10**9
    finally:
        js.delete_stream(conn, o.stream)
