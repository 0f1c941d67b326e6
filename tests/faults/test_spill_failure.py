"""A spill directory that fails under a running capture (removed, or replaced by a file: the
tests run as root, so a chmod would not stop a write). The storage error is that capture's
alone: reported, counted, spilling off and eviction instead, while the connection and every
other subscription go on, and the counts add up in every snapshot."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import natsbook
from natsbook.capture._store import SEAL_ROWS
from tests.support.waiting import wait_for

N_BEFORE = 40_000
N_AFTER = 40_000
PAYLOAD = b"x" * 200
#: Above one sealed batch (8,192 rows and what a read adds, ~3 MB), so one is always kept.
MAX_BYTES = 4_000_000


def _remove(d: Path) -> None:
    shutil.rmtree(d)


def _replace_by_file(d: Path) -> None:
    shutil.rmtree(d)
    d.write_bytes(b"not a directory")


@pytest.mark.parametrize("breakage", [_remove, _replace_by_file], ids=["removed", "file"])
def test_failed_spill_write_is_the_captures_error_not_the_connections(
        conn: natsbook.Connection, subject: str, tmp_path: Path,
        breakage: Callable[[Path], None]) -> None:
    spill = tmp_path / "spill"
    sub = conn.subscribe(f"{subject}.a", spill=spill, max_bytes=MAX_BYTES)
    other = conn.subscribe(f"{subject}.>")
    counted: list[int] = []
    lock = threading.Lock()

    def count(_m: natsbook.Msg) -> None:
        with lock:
            counted.append(1)

    cb = conn.subscribe(f"{subject}.>", callback=count, capture=False)

    # Every snapshot taken while traffic flows must add up and stay within the memory bound.
    snapshots: list[natsbook.SubStats] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            snapshots.append(sub.stats)
            stop.wait(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(N_BEFORE):
            conn.publish(f"{subject}.a", PAYLOAD)
        conn.flush(10)
        wait_for(lambda: sub.received == N_BEFORE, what="the first rows")
        assert sub.stats.spilled > 0 and sub.stats.spill_errors == 0  # parts were written
        breakage(spill)
        for _ in range(N_AFTER):
            conn.publish(f"{subject}.a", PAYLOAD)
        conn.flush(10)
        total = N_BEFORE + N_AFTER
        wait_for(lambda: sub.received == total and other.received == total
                 and len(counted) == total, what="every message")
    finally:
        stop.set()
        watcher.join()

    # The connection never dropped, and the other subscriptions have everything.
    assert conn.status == "connected" and conn.gaps().empty
    assert conn.stats["reconnects"] == 0
    assert other.stats.stored == total and other.stats.evicted == 0
    assert cb.stats.delivered == total and cb.stats.dropped == 0
    assert len(other.to_pandas("bytes")) == total

    # This capture: spill off, eviction instead, all of it counted.
    st = sub.stats
    assert st.spill_errors == 1 and st.spilled == 0  # the parts went with the directory
    assert st.received == total == st.stored + st.evicted + st.dropped
    assert st.evicted >= N_BEFORE
    bound = MAX_BYTES + SEAL_ROWS * (len(PAYLOAD) + len(f"{subject}.a"))
    assert snapshots and len(snapshots) > 10
    for s in [*snapshots, st]:
        assert s.received == s.stored + s.evicted + s.dropped, s
        assert s.bytes <= bound, s
    assert sub.store is not None and sub.store.spill_error is not None
    assert "spilling is off for this capture" in sub.store.spill_error
    assert any("spilling is off" in text and f"{subject}.a" in text for _, text in conn.errors)
    assert any("spilling is off" in text for text in sub.errors)

    # Every reader reads what is kept. (Reading seals the open tail, which the bound may then
    # trim: the counts are read after.)
    df = sub.to_pandas("bytes")
    st = sub.stats
    assert len(df) == st.stored > 0 and st.received == st.stored + st.evicted
    assert sub.sql("SELECT count(*) AS n FROM messages")["n"][0] == st.stored
    assert len(sub.messages(5)) == 5

    # Spilling stays off: the directory coming back changes nothing, nothing more is lost.
    if spill.is_file():
        spill.unlink()
    spill.mkdir()
    for _ in range(SEAL_ROWS * 2):
        conn.publish(f"{subject}.a", PAYLOAD)
    conn.flush(10)
    more = total + SEAL_ROWS * 2
    wait_for(lambda: sub.received == more, what="the rows after")
    sub.unsubscribe()
    st = sub.stats
    assert st.received == more == st.stored + st.evicted and st.spill_errors == 1
    assert list(spill.iterdir()) == []
    assert conn.stats["reconnects"] == 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "truncate-after-check"])
def test_a_damaged_spill_part_is_counted_not_fatal(server: natsbook.LocalServer,
                                                   subject: str, tmp_path: Path,
                                                   damage: str) -> None:
    """A part file truncated or overwritten on disk (a bad sector, a torn write, another
    program) is that capture's loss, counted: every reader of the capture, and of every other
    capture, keeps working, and the counts add up."""
    d = tmp_path / "spill"
    conn = natsbook.connect(server.url)
    try:
        sub = conn.subscribe(f"{subject}.a", spill=d, max_bytes=1_000_000)
        other = conn.subscribe(f"{subject}.b")
        for _ in range(30_000):
            conn.publish(f"{subject}.a", b"x" * 100)
        conn.publish(f"{subject}.b", b"fine")
        conn.flush(10)
        assert wait_for(lambda: sub.received == 30_000 and other.received == 1)
        assert sub.stats.spilled > 0
        if damage == "truncate-after-check":
            sub.to_pandas()  # the parts were checked whole once; damaged after that
        part = sorted(d.glob("*.parquet"))[0]
        if damage.startswith("truncate"):
            with open(part, "r+b") as f:
                f.truncate(100)
        else:
            size = part.stat().st_size
            part.write_bytes(b"\0" * size)  # same size: only a read can tell
        frame = sub.to_pandas(decode="bytes")
        st = sub.stats
        assert st.received == st.stored + st.evicted == 30_000
        assert len(frame) == st.stored < 30_000
        assert st.spill_errors >= 1
        assert any("spill part" in e for _, e in conn.errors)
        assert len(conn.to_pandas()) == st.stored + 1
        assert len(sub.messages(st.stored + 5)) == st.stored
        assert other.to_pandas()["data"].tolist() == ["fine"]
        with pytest.raises(natsbook.NatsbookError, match="move it out"):
            natsbook.read_capture(d)
        assert conn.stats["reconnects"] == 0
    finally:
        conn.close()
