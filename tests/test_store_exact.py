"""The capture store's exact numbers: bounds at their boundary, counters, seal and spill
points, the time column, the budget's choice of victim (no server: rows are appended
directly, so every count is known in advance)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from natsbook.capture import _store
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
    assert len(files) == 1 and files[0].endswith("-00000.parquet")
    assert files[0].startswith(f"capture-{os.getpid()}-{id(store):x}-")
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
    assert [n[-14:] for n in names] == ["-00000.parquet", "-00001.parquet"]
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
