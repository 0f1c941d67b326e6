"""The capture store's exact numbers: bounds at their boundary, counters, seal and spill
points, the time column, the budget's choice of victim (no server: rows are appended
directly, so every count is known in advance)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pytest

from natsbook.capture import _store
from natsbook.capture._spill import spill_files
from natsbook.capture._store import (
    DEFAULT_BUDGET,
    DEFAULT_MAX_BYTES,
    SCHEMA,
    CaptureBudget,
    CaptureStore,
    StoreStats,
)

T0 = 1_700_000_000_000_000_000


def rows(n: int, start: int = 0, subject: bytes = b"s") -> list:
    return [(subject, None, None, b"%d" % i) for i in range(start, start + n)]


def payloads(store: CaptureStore) -> list[int]:
    return [int(p) for p in store.table()["payload"].to_pylist()]


def sealed_nbytes(store: CaptureStore) -> int:
    _, batches, _ = store.snapshot()
    return sum(b.nbytes for b in batches)


def one_batch_nbytes(n: int) -> int:
    probe = CaptureStore(max_bytes=None, seal_rows=n)
    probe.append(rows(n), T0)
    return sealed_nbytes(probe)


def test_documented_constants_and_schema() -> None:
    assert DEFAULT_MAX_BYTES == 256 * 1024 * 1024
    assert DEFAULT_BUDGET == 1024 * 1024 * 1024
    assert _store.SEAL_ROWS == 8192 and _store.SPILL_ROWS == 262_144
    assert CaptureStore().seal_rows == 8192 and CaptureStore().max_rows is None
    assert CaptureBudget().max_bytes == DEFAULT_BUDGET
    assert SCHEMA.names == ["time", "subject", "reply", "headers", "payload"]
    assert SCHEMA.types == [pa.timestamp("ns", tz="UTC"), pa.string(), pa.string(),
                            pa.binary(), pa.binary()]


@pytest.mark.parametrize("kw", ["max_rows", "max_bytes"])
def test_bounds_below_one_refused_one_accepted(kw: str) -> None:
    with pytest.raises(ValueError, match=f"^{kw} must be >= 1 or None$"):
        CaptureStore(**{kw: 0})
    assert getattr(CaptureStore(**{kw: 1}), kw) == 1
    assert getattr(CaptureStore(**{kw: None}), kw) is None


def test_empty_store() -> None:
    store = CaptureStore()
    assert store.stats == StoreStats(received=0, stored=0, in_memory=0, spilled=0, evicted=0,
                                     bytes=0)
    assert len(store) == 0 and store._head_time() is None
    assert store.table().num_rows == 0 and store.table().schema == SCHEMA
    store.append([])
    assert store.stats.received == 0 and store.snapshot() == ([], [], 0)


def test_columns_of_a_sealed_batch() -> None:
    store = CaptureStore(max_bytes=None)
    store.append([(b"a", None, None, b"1"), (b"\xffb", b"r\xfe", b"NATS/1.0\r\n\r\n", b"")], T0)
    store.append([(b"c", None, None, b"3")], T0 + 5)
    t = store.table()
    assert t.schema == SCHEMA
    assert [x.value for x in t["time"]] == [T0, T0, T0 + 5]
    assert t["subject"].to_pylist() == ["a", "\ufffdb", "c"]
    assert t["reply"].to_pylist() == [None, "r\ufffd", None]
    assert t["headers"].to_pylist() == [None, b"NATS/1.0\r\n\r\n", None]
    assert t["payload"].to_pylist() == [b"1", b"", b"3"]


def test_columns_without_replies_or_headers_are_null() -> None:
    store = CaptureStore(max_bytes=None)
    store.append(rows(3), T0)
    t = store.table()
    assert t["reply"].null_count == 3 and t["headers"].null_count == 3
    assert t["reply"].type == pa.string() and t["headers"].type == pa.binary()
    assert [x.value for x in t["time"]] == [T0] * 3
    assert t["subject"].to_pylist() == ["s"] * 3


def test_time_defaults_to_now() -> None:
    import time

    store = CaptureStore()
    before = time.time_ns()
    store.append(rows(2))
    after = time.time_ns()
    times = [x.value for x in store.table()["time"]]
    assert times[0] == times[1] and before <= times[0] <= after


def test_seal_point_and_bytes_of_open_and_sealed_rows() -> None:
    store = CaptureStore(max_bytes=None, seal_rows=4)
    store.append(rows(3), T0)  # open: bytes are payload + subject lengths
    assert store.stats.bytes == 3 * (1 + 1)
    assert store._head_time() is None
    store.append(rows(1, 3), T0 + 1)  # 4 rows: sealed now
    nbytes = sealed_nbytes(store)
    assert store.stats == StoreStats(received=4, stored=4, in_memory=4, spilled=0, evicted=0,
                                     bytes=nbytes)
    assert nbytes != 8 and store._head_time() == T0
    assert [x.value for x in store.table()["time"]] == [T0] * 3 + [T0 + 1]
    store.append(rows(2, 4), T0 + 2)
    assert store.stats.bytes == nbytes + 2 * 2 and len(store) == 6


def test_snapshot_seals_nothing_and_returns_the_open_tail_last() -> None:
    store = CaptureStore(max_bytes=None, seal_rows=2)
    store.append(rows(2), T0)
    store.append(rows(1, 2), T0 + 1)
    before = store.stats
    parts, batches, received = store.snapshot()
    assert parts == [] and received == 3
    assert [b.num_rows for b in batches] == [2, 1]
    assert batches[1].column(4).to_pylist() == [b"2"]
    assert store.stats == before  # the tail is still open


def test_seal_and_table_seal_the_open_rows() -> None:
    store = CaptureStore(max_bytes=None)
    store.append(rows(2), T0)
    store.seal()
    assert store.stats.bytes == sealed_nbytes(store) and store._head_time() == T0
    store.append(rows(1, 2), T0 + 3)
    assert payloads(store) == [0, 1, 2]
    assert store.stats.bytes == sealed_nbytes(store)  # table() sealed the tail
    assert len(store.snapshot()[1]) == 2


def test_clear_counts_sealed_and_open_rows_as_evicted() -> None:
    store = CaptureStore(max_bytes=None, seal_rows=3)
    store.append(rows(3), T0)
    store.append(rows(2, 3), T0)
    store.clear()
    assert store.stats == StoreStats(received=5, stored=0, in_memory=0, spilled=0, evicted=5,
                                     bytes=0)
    assert len(store) == 0 and store.table().num_rows == 0
    store.append(rows(1, 9), T0)
    assert payloads(store) == [9]


def test_max_rows_at_the_bound_keeps_everything() -> None:
    store = CaptureStore(max_rows=6, max_bytes=None, seal_rows=3)
    store.append(rows(3), T0)
    store.append(rows(3, 3), T0)
    assert store.stats.evicted == 0 and payloads(store) == list(range(6))


def test_max_rows_trims_the_head_batch() -> None:
    store = CaptureStore(max_rows=5, max_bytes=None, seal_rows=3)
    store.append(rows(3), T0)
    store.append(rows(3, 3), T0 + 1)  # 6 rows > 5: one trimmed off the head batch
    st = store.stats
    assert (st.received, st.stored, st.in_memory, st.evicted) == (6, 5, 5, 1)
    assert payloads(store) == [1, 2, 3, 4, 5] and len(store) == 5
    assert st.bytes == sealed_nbytes(store)
    assert [b.num_rows for b in store.snapshot()[1]] == [2, 3]
    assert store._head_time() == T0


def test_max_rows_drops_a_whole_head_batch() -> None:
    store = CaptureStore(max_rows=3, max_bytes=None, seal_rows=3)
    store.append(rows(3), T0)
    store.append(rows(3, 3), T0 + 1)  # excess 3 == the head's rows: the head goes
    st = store.stats
    assert (st.stored, st.evicted) == (3, 3)
    assert payloads(store) == [3, 4, 5] and st.bytes == sealed_nbytes(store)
    assert store._head_time() == T0 + 1
    store.append(rows(6, 6), T0 + 2)  # excess 6 > the head's 3: two batches go
    assert (store.stats.stored, store.stats.evicted) == (3, 9)
    assert payloads(store) == [9, 10, 11]


def test_max_bytes_bound_is_inclusive() -> None:
    size = one_batch_nbytes(2)
    store = CaptureStore(max_bytes=2 * size, seal_rows=2)
    store.append(rows(2), T0)
    store.append(rows(2, 2), T0)
    assert store.stats.evicted == 0 and store.stats.bytes == 2 * size
    store.append(rows(2, 4), T0)  # one batch over: the oldest batch goes whole
    st = store.stats
    assert (st.stored, st.evicted, st.bytes) == (4, 2, 2 * size)
    assert payloads(store) == [2, 3, 4, 5]


def test_rows_and_bytes_both_over_drop_whole_batches() -> None:
    size = one_batch_nbytes(2)
    store = CaptureStore(max_rows=3, max_bytes=size, seal_rows=2)
    store.append(rows(2), T0)
    store.append(rows(2, 2), T0)
    st = store.stats
    assert (st.stored, st.evicted) == (2, 2)  # the head went whole, not trimmed by one row
    assert payloads(store) == [2, 3]


def test_spill_when_memory_passes_max_bytes(tmp_path: Path) -> None:
    size = one_batch_nbytes(2)
    store = CaptureStore(max_bytes=size, seal_rows=2, spill=tmp_path / "d")
    assert (tmp_path / "d").is_dir()
    store.append(rows(2), T0)  # exactly max_bytes: stays in memory
    assert store.stats.spilled == 0 and store.stats.bytes == size
    assert list((tmp_path / "d").iterdir()) == []
    store.append(rows(2, 2), T0)  # over: both batches go to one part file
    st = store.stats
    assert st == StoreStats(received=4, stored=4, in_memory=0, spilled=4, evicted=0, bytes=0)
    files = sorted(p.name for p in (tmp_path / "d").iterdir())
    # capture-<start ns, 19 digits>-<pid>-<id>-<part number, 6 digits>.parquet
    assert len(files) == 1 and files[0].endswith(
        f"-{os.getpid()}-{id(store._spill):x}-000000.parquet")
    start = files[0].split("-")[1]
    assert len(start) == 19 and abs(int(start) - time.time_ns()) < 60 * 10**9
    assert store.snapshot()[0] == [tmp_path / "d" / files[0]]
    store.append(rows(1, 4), T0)
    assert payloads(store) == [0, 1, 2, 3, 4]  # parts first, then memory
    assert len(store) == 5


def test_spill_every_spill_rows(tmp_path: Path) -> None:
    n = _store.SPILL_ROWS
    store = CaptureStore(max_bytes=None, seal_rows=n - 1, spill=tmp_path)
    store.append([(b"s", None, None, b"")] * (n - 1), T0)
    assert store.stats.spilled == 0 and store.stats.in_memory == n - 1
    store.append([(b"s", None, None, b"")], T0)
    store.seal()
    assert store.stats.spilled == n and store.stats.in_memory == 0


def test_finish_and_flush_spill_write_everything(tmp_path: Path) -> None:
    store = CaptureStore(seal_rows=10, spill=tmp_path)
    store.flush_spill()  # nothing to write: no part file
    assert list(tmp_path.iterdir()) == []
    store.append(rows(3), T0)
    store.finish()
    assert store.stats == StoreStats(received=3, stored=3, in_memory=0, spilled=3, evicted=0,
                                     bytes=0)
    store.append(rows(2, 3), T0)
    store.flush_spill()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n[-15:] for n in names] == ["-000000.parquet", "-000001.parquet"]
    assert not any(n.startswith(".") for n in names)
    assert payloads(store) == [0, 1, 2, 3, 4]


def test_flush_spill_without_spill_only_seals() -> None:
    store = CaptureStore(max_bytes=None)
    store.append(rows(2), T0)
    store.flush_spill()
    assert store.stats.spilled == 0 and store.stats.bytes == sealed_nbytes(store)


def test_finish_without_spill_seals_and_enforces_the_budget() -> None:
    budget = CaptureBudget(max_bytes=1)
    store = CaptureStore(max_bytes=None, budget=budget)
    store.append(rows(2), T0)
    assert store.stats.evicted == 0
    store.finish()
    assert store.stats.evicted == 2 and budget.used == 0


def test_budget_used_and_inclusive_bound() -> None:
    size = one_batch_nbytes(2)
    budget = CaptureBudget(max_bytes=2 * size)
    a = CaptureStore(max_bytes=None, seal_rows=2, budget=budget)
    b = CaptureStore(max_bytes=None, seal_rows=2, budget=budget)
    a.append(rows(2), T0)
    assert budget.used == size
    b.append(rows(2), T0 + 1)
    assert budget.used == 2 * size and a.stats.evicted == 0 == b.stats.evicted
    b.append(rows(1, 2), T0 + 2)  # open rows do not count
    assert budget.used == 2 * size


def test_budget_evicts_the_oldest_head_across_stores() -> None:
    size = one_batch_nbytes(2)
    budget = CaptureBudget(max_bytes=2 * size)
    a = CaptureStore(max_bytes=None, seal_rows=2, budget=budget)
    b = CaptureStore(max_bytes=None, seal_rows=2, budget=budget)
    b.append(rows(2), T0)  # b holds the oldest rows
    a.append(rows(2), T0 + 1)
    a.append(rows(2, 2), T0 + 2)  # over by one batch: b's goes
    assert (b.stats.evicted, a.stats.evicted) == (2, 0)
    assert b._head_time() is None and a._head_time() == T0 + 1
    assert budget.used == 2 * size
    b.append(rows(2, 4), T0 + 3)  # over again: a's oldest goes
    assert (b.stats.evicted, a.stats.evicted) == (2, 2)
    assert payloads(a) == [2, 3] and payloads(b) == [4, 5]


def test_budget_over_by_several_batches_evicts_until_it_fits() -> None:
    size = one_batch_nbytes(2)
    budget = CaptureBudget(max_bytes=size)
    a = CaptureStore(max_bytes=None, seal_rows=10, budget=budget)
    a.append(rows(2), T0)
    a.seal()
    a.append(rows(2, 2), T0 + 1)
    a.seal()
    a.append(rows(2, 4), T0 + 2)
    a.seal()
    assert a.stats.evicted == 4 and payloads(a) == [4, 5]


def test_budget_none_never_evicts() -> None:
    budget = CaptureBudget(max_bytes=None)
    a = CaptureStore(max_bytes=None, seal_rows=1, budget=budget)
    a.append(rows(5), T0)
    assert a.stats.evicted == 0 and budget.used == sealed_nbytes(a)


def test_budget_over_with_only_open_rows_evicts_nothing() -> None:
    budget = CaptureBudget(max_bytes=1)
    a = CaptureStore(max_bytes=None, seal_rows=10, budget=budget)
    a.append(rows(2), T0)
    budget.enforce()
    assert a.stats.evicted == 0 and a.stats.in_memory == 2


def test_budget_spills_a_spill_capture_instead_of_evicting(tmp_path: Path) -> None:
    budget = CaptureBudget(max_bytes=1)
    a = CaptureStore(max_bytes=None, seal_rows=2, budget=budget, spill=tmp_path)
    a.append(rows(2), T0)
    st = a.stats
    assert (st.spilled, st.evicted, st.in_memory) == (2, 0, 0)
    assert budget.used == 0 and payloads(a) == [0, 1]


def test_budget_forgets_collected_stores() -> None:
    import gc

    budget = CaptureBudget(max_bytes=None)
    a = CaptureStore(max_bytes=None, seal_rows=1, budget=budget)
    a.append(rows(1), T0)
    assert budget.used > 0
    del a
    gc.collect()
    assert budget.used == 0


def test_clear_adds_to_earlier_evictions() -> None:
    store = CaptureStore(max_rows=2, max_bytes=None, seal_rows=2)
    store.append(rows(2), T0)
    store.append(rows(2, 2), T0)
    assert store.stats.evicted == 2
    store.append(rows(1, 4), T0)
    store.clear()
    assert store.stats.evicted == 5 and store.stats.received == 5


def test_head_time_is_the_oldest_row_of_the_oldest_batch() -> None:
    store = CaptureStore(max_bytes=None, seal_rows=10)
    store.append(rows(1), T0 + 7)
    store.seal()
    assert store._head_time() == T0 + 7  # a one-row batch
    other = CaptureStore(max_bytes=None, seal_rows=10)
    other.append(rows(1), T0 + 3)
    other.append(rows(1, 1), T0 + 4)
    other.seal()
    assert other._head_time() == T0 + 3


def test_budget_evicts_the_oldest_one_row_batch_last() -> None:
    size = one_batch_nbytes(1)
    budget = CaptureBudget(max_bytes=2 * size)
    old = CaptureStore(max_bytes=None, seal_rows=1, budget=budget)
    new = CaptureStore(max_bytes=None, seal_rows=1, budget=budget)
    old.append(rows(1), T0)
    new.append(rows(1, 1), T0 + 1)
    old.append(rows(1, 2), T0 + 2)  # over by one batch: the row at T0 goes
    assert (old.stats.evicted, new.stats.evicted) == (1, 0)
    assert payloads(old) == [2] and payloads(new) == [1]


def test_spilled_counts_every_part_and_parts_are_zstd(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    store = CaptureStore(seal_rows=10, spill=tmp_path)
    store.append(rows(3), T0)
    store.flush_spill()
    store.append(rows(2, 3), T0)
    store.flush_spill()
    assert store.stats.spilled == 5 and len(store) == 5
    for part in store.snapshot()[0]:
        meta = pq.ParquetFile(part).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        assert pq.read_schema(part).remove_metadata() == SCHEMA


def test_spill_creates_missing_parent_directories(tmp_path: Path) -> None:
    store = CaptureStore(spill=tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    again = CaptureStore(spill=tmp_path / "a" / "b")  # an existing directory is fine
    again.append(rows(1), T0)
    again.finish()
    assert len(list((tmp_path / "a" / "b").iterdir())) == 1 and len(store) == 0


# ------------------------------------------------------------------ a failing spill directory
def _break(d: Path, how: str) -> None:
    shutil.rmtree(d)
    if how == "file":  # root writes through any chmod: a file in its place stops it
        d.write_bytes(b"")


@pytest.mark.parametrize("how", ["removed", "file"])
def test_failed_spill_write_turns_spill_off_and_evicts(tmp_path: Path, how: str) -> None:
    size = one_batch_nbytes(2)
    d = tmp_path / "d"
    store = CaptureStore(max_bytes=size, seal_rows=2, spill=d)
    store.append(rows(4), T0)  # over max_bytes: part 0 holds rows 0-3
    assert store.stats.spilled == 4 and len(list(d.iterdir())) == 1
    _break(d, how)
    store.append(rows(2, 4), T0)  # exactly max_bytes: stays in memory, nothing written
    assert store.take_notices() == [] and store.spill_error is None
    store.append(rows(2, 6), T0)  # over: the write fails; the bound evicts instead
    st = store.stats
    assert st == StoreStats(received=8, stored=2, in_memory=2, spilled=0, evicted=6,
                            bytes=size, spill_errors=1)
    assert payloads(store) == [6, 7]  # the lost part's rows are left out, not read
    notices = store.take_notices()
    assert len(notices) == 1 and notices[0] == store.spill_error
    assert notices[0].startswith("writing spill part capture-")
    assert f"-000001.parquet to {str(d)!r} failed (" in notices[0]
    assert notices[0].endswith(
        "spilling is off for this capture, which now evicts its oldest rows past its bounds "
        "(counted in stats.evicted); 4 rows spilled before were lost with their files "
        "(counted too)")
    assert store.take_notices() == []  # each notice once
    # Off for good: the directory coming back is not written to.
    if d.is_file():
        d.unlink()
    d.mkdir()
    store.append(rows(4, 8), T0)
    store.finish()
    st = store.stats
    assert st.received == 12 == st.stored + st.evicted and st.spill_errors == 1
    assert st.bytes <= size and list(d.iterdir()) == []
    assert store.take_notices() == []


def test_failed_spill_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    import pyarrow.parquet as pq

    def half_written(table: pa.Table, where: Path, **kw: object) -> None:
        Path(where).write_bytes(b"PAR1")
        raise OSError(28, "No space left on device")

    store = CaptureStore(max_bytes=1, seal_rows=2, spill=tmp_path)
    monkeypatch.setattr(pq, "write_table", half_written)
    store.append(rows(2), T0)
    assert list(tmp_path.iterdir()) == []
    assert "failed (No space left on device); spilling is off" in str(store.spill_error)
    st = store.stats
    assert (st.received, st.evicted, st.spill_errors) == (2, 2, 1)  # over max_bytes=1


def test_finish_with_a_failing_spill_keeps_the_rows_in_memory(tmp_path: Path) -> None:
    store = CaptureStore(seal_rows=10, spill=tmp_path / "d")
    store.append(rows(3), T0)
    shutil.rmtree(tmp_path / "d")
    store.finish()
    st = store.stats
    assert (st.received, st.stored, st.in_memory, st.evicted, st.spill_errors) == (3, 3, 3, 0, 1)
    assert payloads(store) == [0, 1, 2] and len(store.take_notices()) == 1


def test_budget_evicts_a_spill_capture_whose_spill_failed(tmp_path: Path) -> None:
    budget = CaptureBudget(max_bytes=1)
    a = CaptureStore(max_bytes=None, seal_rows=2, budget=budget, spill=tmp_path / "d")
    shutil.rmtree(tmp_path / "d")
    a.append(rows(2), T0)  # the budget asks for room: the write fails, the head goes
    st = a.stats
    assert (st.spilled, st.evicted, st.in_memory, st.spill_errors) == (0, 2, 0, 1)
    assert budget.used == 0
    a.append(rows(2, 2), T0)
    assert a.stats.evicted == 4 and a.stats.spill_errors == 1


def test_spill_parts_gone_from_disk_are_counted_not_read(tmp_path: Path) -> None:
    store = CaptureStore(seal_rows=10, spill=tmp_path)
    for start in (0, 2, 4):
        store.append(rows(2, start), T0)
        store.flush_spill()
    parts = store.snapshot()[0]
    parts[1].unlink()
    assert payloads(store) == [0, 1, 4, 5]
    st = store.stats
    assert (st.received, st.stored, st.spilled, st.evicted, st.spill_errors) == (6, 4, 4, 2, 1)
    assert store.take_notices() == [
        f"1 spill part files are missing or unreadable in {str(tmp_path)!r}: their 2 rows are "
        "gone (counted in stats.evicted)"]
    assert store.spill_error is None  # the directory still takes parts
    store.append(rows(1, 6), T0)
    store.flush_spill()
    names = sorted(p.name[-15:] for p in tmp_path.iterdir())
    assert names == ["-000000.parquet", "-000002.parquet", "-000003.parquet"]  # never reused
    assert payloads(store) == [0, 1, 4, 5, 6] and store.take_notices() == []


# ------------------------------------------------------------------ bad header blocks
def test_bad_header_blocks_are_counted_open_and_sealed() -> None:
    good = b"NATS/1.0\r\nK: v\r\n\r\n"
    blocks = [None, b"XYZ\r\n\r\n", good, b"", b"NATS/1.", b"\xffNATS/1.0\r\n\r\n"]
    store = CaptureStore(max_bytes=None, seal_rows=len(blocks) + 1)
    batch = [(b"s", None, h, b"%d" % i) for i, h in enumerate(blocks)]
    store.append(batch, T0)
    assert store.stats.bad_headers == 3 and store.take_notices() == []  # open: no notice yet
    store.seal()
    assert store.stats.bad_headers == 3
    assert store.take_notices() == [
        "captured a message whose header block does not start with NATS/1.0: 'XYZ' - kept as "
        "a row with headers=None and the reason in header_error (counted in "
        "stats.bad_headers)"]
    store.append(batch, T0)
    store.seal()
    assert store.stats.bad_headers == 6 and store.take_notices() == []  # reported once
    store.append(batch[:2], T0)
    store.clear()  # what was received stays counted, as `received` does
    assert store.stats.bad_headers == 7
    assert store.stats.received == 14 and store.stats.evicted == 14


# ------------------------------------------------------------------ spill directories read back
def _part(path: Path, start: int, n: int, t_ns: int) -> Path:
    import pyarrow.parquet as pq

    batch = _store._seal(rows(n, start), [(t_ns, n)])
    pq.write_table(pa.Table.from_batches([batch]), path)
    return path


def _read(path: Path, last: int | None = None) -> list[int]:
    import natsbook

    df = natsbook.read_capture(path, "bytes", last=last)
    return [int(p) for p in df["data"].tolist()]


def test_read_capture_orders_runs_by_receive_time_not_by_name(tmp_path: Path) -> None:
    """The old names start with the process id: a later run of a smaller pid sorted first,
    and last= gave the oldest rows."""
    old_run = "capture-99999-7f00aa-1700000000000000000"
    new_run = "capture-100-7f00bb-1700000000900000000"
    _part(tmp_path / f"{old_run}-00000.parquet", 0, 2, T0)
    _part(tmp_path / f"{old_run}-00001.parquet", 2, 2, T0 + 1)
    _part(tmp_path / f"{new_run}-00000.parquet", 4, 2, T0 + 10)
    _part(tmp_path / f"{new_run}-00001.parquet", 6, 2, T0 + 11)
    assert sorted(p.name for p in tmp_path.iterdir())[0].startswith(new_run)  # the old trap
    assert _read(tmp_path) == list(range(8))
    assert _read(tmp_path, last=3) == [5, 6, 7]


def test_read_capture_orders_parts_by_number_not_by_text(tmp_path: Path) -> None:
    """One capture's parts come in the order written, even where the numbers' text does not
    sort (past 99999 parts in the old names) and even if the clock stepped back between
    parts: one capture reads back as sub.to_pandas() gave it."""
    prefix = "capture-1700000000000000000-42-7f00cc"
    _part(tmp_path / f"{prefix}-99999.parquet", 0, 2, T0 + 5)
    _part(tmp_path / f"{prefix}-100000.parquet", 2, 2, T0)  # the clock went back
    _part(tmp_path / f"{prefix}-100001.parquet", 4, 1, T0 + 1)
    assert _read(tmp_path) == [0, 1, 2, 3, 4]
    assert _read(tmp_path, last=1) == [4]


def test_read_capture_merges_captures_sharing_a_directory_by_time(tmp_path: Path) -> None:
    first = CaptureStore(seal_rows=100, spill=tmp_path)
    second = CaptureStore(seal_rows=100, spill=tmp_path)
    first.append(rows(2), T0)
    second.append(rows(2, 2), T0 + 1)
    first.flush_spill()
    second.flush_spill()
    first.append(rows(2, 4), T0 + 2)  # the first capture's newest rows
    first.finish()
    second.finish()
    assert _read(tmp_path) == [0, 1, 2, 3, 4, 5]
    assert _read(tmp_path, last=2) == [4, 5]
    assert [len(parts) for parts in spill_files(tmp_path)] == [2, 1]
    # New names start with the capture's start time: a plain name sort is chronological too.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0].split("-")[1] <= names[-1].split("-")[1]
    assert all(len(n.split("-")[1]) == 19 for n in names)


def test_spill_files_groups_names_it_did_not_write_as_captures(tmp_path: Path) -> None:
    _part(tmp_path / "export.parquet", 0, 1, T0 + 3)
    _part(tmp_path / "capture-1700000000000000000-1-a-000000.parquet", 1, 1, T0)
    (tmp_path / ".capture-1700000000000000000-1-a-000001.parquet.tmp").write_bytes(b"half")
    assert [[p.name for p in g] for g in spill_files(tmp_path)] == [
        ["capture-1700000000000000000-1-a-000000.parquet"], ["export.parquet"]]
    assert _read(tmp_path) == [1, 0]  # by receive time
    assert _store.read_spill_dir(tmp_path / "nothing-here").num_rows == 0
