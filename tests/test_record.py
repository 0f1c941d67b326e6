"""``natsbook record`` against a real nats-server, and reading what it wrote.

Recorders run as subprocesses (``python -m natsbook.lab record``) stopped by the tests' own
handles; the dataset reader is also tested on parts written directly (duplicates, pruning).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import natsbook
from natsbook import jetstream as js
from natsbook.capture import DATASET_SCHEMA, PartWriter
from natsbook.errors import BadInputError, DatasetError, QueryError
from tests.faults.helpers import wait_for as _wait_for

HOUR = 3_600_000_000_000
T0 = pd.Timestamp("2026-03-01 10:00", tz="UTC").value


def wait_for(pred: Any, timeout: float = 20.0) -> Any:
    return _wait_for(pred, timeout=timeout, interval=0.05)


def _recording(rec: js.Recorder, stop: threading.Event,
               errors: list[BaseException]) -> threading.Thread:
    """`rec.run(stop)` on a thread of its own; what it raises goes to `errors`."""
    def run() -> None:
        try:
            rec.run(stop)
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    return th


def record_cmd(url: str, stream: str, out: Any, *extra: str) -> list[str]:
    return [sys.executable, "-m", "natsbook.lab", "record", "--url", url, "--stream", stream,
            "--out", str(out), *extra]


class Recorders:
    """Recorder subprocesses, each stopped (killed if need be) at the end of the test."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, cmd: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=20)


@pytest.fixture
def recorders() -> Iterator[Recorders]:
    r = Recorders()
    try:
        yield r
    finally:
        r.close()


def parts(out: Path) -> list[Path]:
    return sorted(out.glob("date=*/hour=*/part-*.parquet"))


def consumer(conn: natsbook.Connection, stream: str, durable: str) -> dict[str, Any]:
    return js.consumer_info(conn, stream, durable)


def ack_pending(conn: natsbook.Connection, stream: str, durable: str) -> int:
    """The consumer's unacked deliveries (-1 while the recorder has not created it yet)."""
    try:
        return int(consumer(conn, stream, durable)["num_ack_pending"])
    except natsbook.errors.NotFoundError:
        return -1


def rows(seqs: list[int], t: int, subject: str = "s.a") -> pa.Table:
    n = len(seqs)
    return pa.table({
        "time": pa.array([t + i for i in range(n)], pa.timestamp("ns", tz="UTC")),
        "subject": [subject] * n, "reply": pa.nulls(n, pa.string()),
        "headers": pa.nulls(n, pa.binary()),
        "payload": [b'{"v": %d}' % s for s in seqs], "stream_seq": pa.array(seqs, pa.int64()),
    }, schema=DATASET_SCHEMA)


# ------------------------------------------------------------------- reading (no server)
def test_duplicates_are_read_once(tmp_path: Path) -> None:
    a = PartWriter(tmp_path, stream="S")
    b = PartWriter(tmp_path, stream="S")
    a.write(rows([1, 2, 3, 4], T0))
    b.write(rows([3, 4, 5, 6], T0 + 10))  # 3 and 4 written by a crashed recorder, again here
    b.write(rows([7, 8], T0 + 20))
    assert len(parts(tmp_path)) == 3
    frame = natsbook.read_capture(tmp_path)
    assert frame["stream_seq"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert frame["v"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # the declared decode: auto -> json
    got = natsbook.sql("SELECT count(*) AS n, count(DISTINCT stream_seq) AS d, sum(size) AS b "
                       "FROM messages", tmp_path)
    assert got["n"][0] == got["d"][0] == 8


def test_hours_outside_since_until_are_not_opened(tmp_path: Path) -> None:
    w = PartWriter(tmp_path, stream="S", decode="json")
    w.write(rows([1, 2], T0))                 # 10:00
    w.write(rows([3, 4], T0 + HOUR))          # 11:00
    w.write(rows([5, 6], T0 + 26 * HOUR))     # next day 12:00
    assert [p.parent.name for p in parts(tmp_path)] == ["hour=10", "hour=11", "hour=12"]
    # Damage the 10:00 and next-day parts: a read that opened them would fail.
    for p in parts(tmp_path):
        if p.parent.name != "hour=11":
            p.write_bytes(b"not parquet")
    since, until = pd.Timestamp(T0 + HOUR, tz="UTC"), pd.Timestamp(T0 + 2 * HOUR, tz="UTC")
    frame = natsbook.read_capture(tmp_path, since=since, until=until)
    assert frame["stream_seq"].tolist() == [3, 4]
    assert natsbook.sql("SELECT list(stream_seq ORDER BY stream_seq) AS s FROM messages",
                        tmp_path, since=since, until=until)["s"][0].tolist() == [3, 4]
    with pytest.raises(DatasetError, match="cannot read part"):
        natsbook.read_capture(tmp_path)
    # natsbook.sql says the same (it used to be a QueryError: "SQL query failed")
    with pytest.raises(DatasetError, match=r"cannot read part.*moved aside"):
        natsbook.sql("SELECT count(*) AS n FROM messages", tmp_path)


def test_time_edges_subject_and_decode(tmp_path: Path) -> None:
    w = PartWriter(tmp_path, stream="S", decode="text")
    w.write(rows([1, 2, 3], T0, "s.a"))
    w.write(rows([4, 5], T0 + 100, "s.b.c"))
    frame = natsbook.read_capture(tmp_path, since=pd.Timestamp(T0 + 1, tz="UTC"),
                                  until=pd.Timestamp(T0 + 101, tz="UTC"))
    assert frame["stream_seq"].tolist() == [2, 3, 4]
    assert frame["data"].tolist() == ['{"v": 2}', '{"v": 3}', '{"v": 4}']  # declared: text
    assert natsbook.read_capture(tmp_path, subject="s.>")["stream_seq"].tolist() == \
        [1, 2, 3, 4, 5]
    assert natsbook.read_capture(tmp_path, subject="s.b.c")["stream_seq"].tolist() == [4, 5]
    assert natsbook.read_capture(tmp_path, subject="s.*")["stream_seq"].tolist() == [1, 2, 3]
    assert "v" in natsbook.read_capture(tmp_path, decode="json").columns
    assert natsbook.read_capture(tmp_path, last=1)["stream_seq"].tolist() == [5]
    with pytest.raises(QueryError):
        natsbook.sql("SELECT nope FROM messages", tmp_path)


def test_a_dataset_of_another_stream_is_refused(tmp_path: Path) -> None:
    PartWriter(tmp_path, stream="S")
    with pytest.raises(DatasetError, match="holds stream 'S'"):
        PartWriter(tmp_path, stream="OTHER")


# ------------------------------------------------------------------- recording
def test_once_records_every_message_and_acks(server: natsbook.LocalServer, subject: str,
                                             tmp_path: Path, recorders: Recorders) -> None:
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            for i in range(2500):
                conn.publish(f"{subject}.d{i % 5}", {"i": i}, headers={"k": str(i)}
                             if i % 100 == 0 else None)
            conn.flush()
            out = tmp_path / "ds"
            proc = recorders.start(record_cmd(server.url, subject, out, "--once",
                                              "--part-rows", "1000", "--decode", "json"))
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert "2500 written" in err and "2500 acked" in err
            assert len(parts(out)) == 3
            frame = natsbook.read_capture(out)
            assert frame["stream_seq"].tolist() == list(range(1, 2501))
            assert frame["i"].tolist() == list(range(2500))
            assert frame["headers"][100] == {"k": ["100"]}
            info = consumer(conn, subject, "natsbook-record")
            assert info["num_pending"] == 0 and info["num_ack_pending"] == 0
            assert info["config"]["ack_policy"] == "explicit"
            # Run again: the consumer stands at the end, nothing is written twice.
            for i in range(2500, 2600):
                conn.publish(f"{subject}.d0", {"i": i})
            conn.flush()
            proc = recorders.start(record_cmd(server.url, subject, out, "--once"))
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert "100 written" in err
            frame = natsbook.read_capture(out)
            assert frame["stream_seq"].tolist() == list(range(1, 2601))
        finally:
            js.delete_stream(conn, subject)


def test_sigterm_writes_the_open_part_then_acks(server: natsbook.LocalServer, subject: str,
                                               tmp_path: Path, recorders: Recorders) -> None:
    out = tmp_path / "ds"
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            proc = recorders.start(record_cmd(server.url, subject, out, "--part-seconds",
                                              "300", "--progress", "0.2"))
            for i in range(500):
                conn.publish(f"{subject}.x", {"i": i})
            conn.flush()
            # Delivered, held in the open part: no part on disk, so nothing acked yet.
            wait_for(lambda: ack_pending(conn, subject, "natsbook-record") == 500)
            time.sleep(1.5)  # longer than a pull waits: the rows are in the open part
            assert parts(out) == []
            assert consumer(conn, subject, "natsbook-record")["num_ack_pending"] == 500
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert "lag 0" in err
            assert len(parts(out)) == 1 and not list(out.rglob("*.tmp"))
            assert natsbook.read_capture(out)["stream_seq"].tolist() == list(range(1, 501))
            info = consumer(conn, subject, "natsbook-record")
            assert info["num_ack_pending"] == 0 and info["num_pending"] == 0
        finally:
            js.delete_stream(conn, subject)


def test_unwritable_output_stops_and_acks_nothing_unwritten(
        server: natsbook.LocalServer, subject: str, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    stop = threading.Event()
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            for i in range(100):
                conn.publish(f"{subject}.x", {"i": i})
            conn.flush()
            rec = js.Recorder(conn, subject, str(out), durable="d", ack_wait=1.0)
            assert rec.run(stop, once=True).acked == 100
            for i in range(100, 150):
                conn.publish(f"{subject}.x", {"i": i})
            conn.flush()
            before = parts(out)
            moved = tmp_path / "moved"
            out.rename(moved)
            out.write_text("")  # the output is now a file: every part write fails
            with pytest.raises(DatasetError, match="nothing of it was acked"):
                rec.run(stop, once=True)
            info = consumer(conn, subject, "d")
            assert info["num_ack_pending"] == 50 and info["num_pending"] == 0
            out.unlink()
            moved.rename(out)
            assert parts(out) == before
            # Once writable, the next recorder gets the 50 again (after ack_wait) and writes them.
            time.sleep(1.2)
            got = js.Recorder(conn, subject, str(out), durable="d").run(stop, once=True)
            assert got.written == 50
            assert natsbook.read_capture(out)["i"].tolist() == list(range(150))
        finally:
            js.delete_stream(conn, subject)


def test_cli_errors_name_the_problem(server: natsbook.LocalServer, subject: str,
                                     tmp_path: Path, recorders: Recorders) -> None:
    (tmp_path / "file").write_text("")
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            proc = recorders.start(record_cmd(server.url, subject, tmp_path / "file" / "ds",
                                              "--once"))
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 1
            assert "make the output writable" in err
            with pytest.raises(natsbook.errors.NotFoundError):
                consumer(conn, subject, "natsbook-record")  # nothing was consumed
            proc = recorders.start(record_cmd(server.url, subject, tmp_path / "ds", "--once",
                                              "--decode", "yaml"))
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 1 and "decode='yaml'" in err
            proc = recorders.start(record_cmd(server.url, subject + "x", tmp_path / "ds",
                                              "--once"))
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 1 and "not found" in err
        finally:
            js.delete_stream(conn, subject)
    with pytest.raises(BadInputError, match="no capture"):
        natsbook.read_capture(tmp_path / "nothing-here")


def test_a_deleted_consumer_stops_the_recorder(server: natsbook.LocalServer, subject: str,
                                               tmp_path: Path) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        rec = js.Recorder(conn, subject, str(tmp_path / "ds"), durable="d", pull_wait=0.2)

        th = _recording(rec, stop, errors)
        try:
            wait_for(lambda: ack_pending(conn, subject, "d") == 0)
            js.delete_consumer(conn, subject, "d")
            th.join(30)
            assert not th.is_alive()
            assert len(errors) == 1 and isinstance(errors[0], natsbook.errors.JetStreamError)
            assert "start the recorder again" in str(errors[0])
        finally:
            stop.set()
            th.join(30)
            js.delete_stream(conn, subject)


def test_recorders_starting_together_on_a_new_folder(tmp_path: Path) -> None:
    """Each writes the dataset's _natsbook.json through a temporary file of its own."""
    errors: list[BaseException] = []
    for k in range(15):
        out = tmp_path / f"ds{k}"
        barrier = threading.Barrier(4)

        def start(out: Path = out, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(10)
            try:
                PartWriter(out, stream="S", decode="json")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []


def test_a_part_open_longer_than_ack_wait_is_kept_with_progress_acks(
        server: natsbook.LocalServer, subject: str, tmp_path: Path) -> None:
    stop = threading.Event()
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            rec = js.Recorder(conn, subject, str(tmp_path / "ds"), durable="d", ack_wait=1.0,
                              part_age=3.5)
            th = threading.Thread(target=rec.run, args=(stop,))
            th.start()
            try:
                for i in range(100):
                    conn.publish(f"{subject}.x", {"i": i})
                conn.flush()
                wait_for(lambda: rec.stats.received == 100)
                time.sleep(2.5)  # past the 1 s ack wait, the part still open
                info = consumer(conn, subject, "d")
                assert info["num_redelivered"] == 0 and info["num_ack_pending"] == 100
                assert rec.stats.received == 100 and rec.stats.written == 0
            finally:
                stop.set()
                th.join(30)
            assert rec.stats.written == 100 and rec.stats.acked == 100
            assert consumer(conn, subject, "d")["num_ack_pending"] == 0
        finally:
            js.delete_stream(conn, subject)


def test_subjects_outside_the_stream_are_refused(server: natsbook.LocalServer, subject: str,
                                                 tmp_path: Path) -> None:
    """A filter no subject of the stream can match would record nothing forever (and
    ``--once`` would exit 0 with an empty dataset): refused before a consumer is made."""
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.a.>", f"{subject}.b"])
        try:
            for bad in (f"{subject}.c.>", "other.>", f"{subject}.b.x", f"{subject}.a"):
                with pytest.raises(natsbook.errors.BadInputError, match="would never deliver"):
                    js.Recorder(conn, subject, str(tmp_path / "ds"), subjects=bad)
            with pytest.raises(natsbook.errors.BadSubjectError):
                js.Recorder(conn, subject, str(tmp_path / "ds"), subjects=f"{subject} a")
            for good in (f"{subject}.a.x", f"{subject}.*", f"{subject}.>", ">", "*.b"):
                js.Recorder(conn, subject, str(tmp_path / "ds"), subjects=good)
            with pytest.raises(natsbook.errors.NotFoundError):
                consumer(conn, subject, "natsbook-record")  # nothing was created
        finally:
            js.delete_stream(conn, subject)


def test_a_deleted_stream_keeps_what_the_recorder_received(server: natsbook.LocalServer,
                                                          subject: str, tmp_path: Path) -> None:
    """The stream is deleted while the open part holds messages: they exist nowhere else any
    more, so the recorder writes them (acking nothing) before it stops."""
    errors: list[BaseException] = []
    stop = threading.Event()
    out = tmp_path / "ds"
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            rec = js.Recorder(conn, subject, str(out), durable="d", part_age=600, pull_wait=0.2)

            th = _recording(rec, stop, errors)
            for i in range(30):
                conn.publish(f"{subject}.x", {"i": i})
            conn.flush()
            wait_for(lambda: rec.stats.received == 30)
        finally:
            js.delete_stream(conn, subject)
            th.join(30)
            stop.set()
            th.join(30)
    assert not th.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], natsbook.errors.JetStreamError)
    assert "deleted" in str(errors[0])
    assert rec.stats.written == 30 and rec.stats.acked == 0
    assert natsbook.read_capture(out)["i"].tolist() == list(range(30))


def test_until_not_after_since_and_bad_times_are_refused(tmp_path: Path) -> None:
    """An empty window is a mistake (swapped bounds), not an empty answer; a time without a
    zone is UTC, as the partitions are."""
    w = PartWriter(tmp_path, stream="S")
    w.write(rows([1, 2], T0))
    t = pd.Timestamp(T0, tz="UTC")
    for since, until in ((t + pd.Timedelta("1h"), t), (t, t), ("2026-03-01 11:00", t)):
        with pytest.raises(BadInputError, match="not after since"):
            natsbook.read_capture(tmp_path, since=since, until=until)
        with pytest.raises(BadInputError, match="not after since"):
            natsbook.sql("SELECT count(*) AS n FROM messages", tmp_path, since=since,
                         until=until)
    for bad in ("NaT", "soon"):
        with pytest.raises(BadInputError, match="is not a time"):
            natsbook.read_capture(tmp_path, since=bad)
    naive = natsbook.read_capture(tmp_path, since="2026-03-01 10:00", until="2026-03-01 10:01")
    tokyo = natsbook.read_capture(tmp_path, since=t.tz_convert("Asia/Tokyo"),
                                  until=(t + pd.Timedelta("1min")).tz_convert("Asia/Tokyo"))
    assert naive["stream_seq"].tolist() == tokyo["stream_seq"].tolist() == [1, 2]


def test_an_existing_consumer_with_several_filters(server: natsbook.LocalServer, subject: str,
                                                   tmp_path: Path) -> None:
    """A consumer made elsewhere with filter_subjects (2.10+): --subjects '>' used to be
    taken as matching it (it records only part of the stream), and the refusal of another
    filter said it filters None."""
    out = str(tmp_path / "ds")
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            js.add_consumer(conn, subject, "multi", filter_subject=[f"{subject}.a",
                                                                    f"{subject}.b"])
            js.add_consumer(conn, subject, "one", filter_subject=[f"{subject}.a"])
            js.add_consumer(conn, subject, "all")
            for subjects in (">", f"{subject}.a"):
                with pytest.raises(natsbook.errors.JetStreamError,
                                   match=rf"filters \['{subject}.a', '{subject}.b'\]"):
                    js.Recorder(conn, subject, out, durable="multi",
                                subjects=subjects).ensure_consumer()
            js.Recorder(conn, subject, out, durable="one",
                        subjects=f"{subject}.a").ensure_consumer()
            js.Recorder(conn, subject, out, durable="all", subjects=">").ensure_consumer()
            with pytest.raises(natsbook.errors.JetStreamError, match="filters '>'"):
                js.Recorder(conn, subject, out, durable="all",
                            subjects=f"{subject}.a").ensure_consumer()
            js.Recorder(conn, subject, out, durable="multi").ensure_consumer()  # its own
        finally:
            js.delete_stream(conn, subject)


def test_once_through_a_small_max_ack_pending(server: natsbook.LocalServer, subject: str,
                                              tmp_path: Path) -> None:
    """A consumer made elsewhere with max_ack_pending 10: the server holds the rest back
    until the open part is acked. --once used to take that pause for the end and exit 0 with
    10 of 100 messages recorded; it now writes and acks the part and asks again."""
    out = tmp_path / "ds"
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        try:
            for i in range(100):
                conn.publish(f"{subject}.x", {"i": i})
            conn.flush()
            js.add_consumer(conn, subject, "d", max_ack_pending=10)
            st = js.Recorder(conn, subject, str(out), durable="d").run(threading.Event(),
                                                                        once=True)
            assert (st.written, st.acked) == (100, 100)
            info = consumer(conn, subject, "d")
            assert info["num_pending"] == 0 and info["num_ack_pending"] == 0
        finally:
            js.delete_stream(conn, subject)
    assert natsbook.read_capture(out)["i"].tolist() == list(range(100))


def test_a_part_holding_the_whole_ack_window_is_written_at_once(
        server: natsbook.LocalServer, subject: str, tmp_path: Path) -> None:
    """With max_ack_pending 10 (a consumer made elsewhere) the server delivers nothing more
    until the part is acked: the part used to wait for part_age (here 600 s) with the stream
    standing still; it is written when it holds the whole window."""
    errors: list[BaseException] = []
    stop = threading.Event()
    with natsbook.connect(server.url) as conn:
        js.add_stream(conn, subject, [f"{subject}.>"])
        js.add_consumer(conn, subject, "d", max_ack_pending=10)
        rec = js.Recorder(conn, subject, str(tmp_path / "ds"), durable="d", part_age=600,
                          pull_wait=0.2)

        th = _recording(rec, stop, errors)
        try:
            for i in range(30):
                conn.publish(f"{subject}.x", {"i": i})
            conn.flush()
            wait_for(lambda: rec.stats.acked == 30, timeout=15)
            assert rec.stats.parts == 3
        finally:
            stop.set()
            th.join(30)
            js.delete_stream(conn, subject)
    assert not errors and not th.is_alive()
