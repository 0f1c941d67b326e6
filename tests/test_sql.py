"""SQL over captures (DuckDB) against the real embedded nats-server: the answers must equal
what pandas computes from ``to_pandas()`` on the same capture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook import jetstream as js
from natsbook.capture._store import SEAL_ROWS
from natsbook.errors import BadInputError, NatsbookError, QueryError
from natsbook.jetstream import _kv as natskv
from tests.support.waiting import wait_for

# Per subject: JSON objects, malformed JSON, an empty payload, a JSON non-object, bytes that
# are not UTF-8, a message with headers.
PAYLOADS = [
    {"temp": 20.5, "site": "a", "nested": {"x": 1}},
    {"temp": 21.0, "site": "b"},
    b'{"temp": 99',              # malformed
    b"",                          # empty
    b"17",                        # JSON, but not an object
    b"\xff\xfe\x00garbage",       # not UTF-8
    {"temp": -3.25, "site": "a", "ok": True},
    {"site": "c"},                # no temp
]


def _publish_mix(conn: natsbook.Connection, root: str, rounds: int = 5) -> int:
    n = 0
    for r in range(rounds):
        for i, p in enumerate(PAYLOADS):
            subj = f"{root}.dev{(r + i) % 3}"
            headers = {"X-Round": r} if i == 1 else None
            conn.publish(subj, p, headers=headers)
            n += 1
    conn.flush()
    return n


def _captured(sub: natsbook.Subscription, n: int) -> None:
    wait_for(lambda: sub.received >= n, what=f"{n} messages")


def test_sql_equals_pandas_counts_sums_and_json_fields(conn, subject):
    sub = conn.subscribe(f"{subject}.>")
    n = _publish_mix(conn, subject)
    _captured(sub, n)
    df = sub.to_pandas(decode="json")
    raw = sub.to_pandas(decode="bytes")

    got = sub.sql("""
        SELECT subject,
               count(*) AS n,
               sum(size) AS bytes,
               sum((TRY_CAST(data AS JSON) ->> 'temp')::DOUBLE) AS temp_sum,
               avg((TRY_CAST(data AS JSON) ->> 'temp')::DOUBLE) AS temp_mean,
               count(*) FILTER (WHERE size > 0 AND TRY_CAST(data AS JSON) IS NULL) AS bad,
               count(headers) AS with_headers,
               count(*) FILTER (WHERE (TRY_CAST(data AS JSON) ->> 'site') = 'a') AS site_a
        FROM messages GROUP BY subject ORDER BY subject""").set_index("subject")

    g = df.groupby("subject")
    want = pd.DataFrame({
        "n": g.size(),
        "bytes": g["size"].sum(),
        "temp_sum": g["temp"].sum(min_count=1),
        "temp_mean": g["temp"].mean(),
        "bad": g["json_error"].sum(),
        "with_headers": g["headers"].count(),
        "site_a": df["site"].eq("a").groupby(df["subject"]).sum(),
    })
    assert got.index.tolist() == want.index.tolist()
    for col in want.columns:
        np.testing.assert_allclose(got[col].astype(float), want[col].astype(float),
                                   err_msg=col)
    assert int(got["n"].sum()) == n == len(df)
    assert int(got["bad"].sum()) == int(df["json_error"].sum()) == 10  # malformed + not UTF-8

    # Every row, in order, with the same times, subjects and raw payloads.
    # (DuckDB keeps a scan's order unless asked otherwise.)
    rows = sub.sql("SELECT time, sub, subject, size, payload FROM messages")
    assert rows["time"].dtype == df["time"].dtype  # datetime64[ns, UTC]
    assert (rows["time"].to_numpy() == raw["time"].to_numpy()).all()
    assert rows["subject"].tolist() == raw["subject"].tolist()
    assert [bytes(p) for p in rows["payload"]] == [bytes(p) for p in raw["data"]]
    assert set(rows["sub"]) == {f"{subject}.>"}
    # A nested JSON field, as the flattened pandas column.
    nested = sub.sql("SELECT sum((TRY_CAST(data AS JSON) ->> '$.nested.x')::INT) AS s "
                     "FROM messages")
    assert int(nested["s"][0]) == int(df["nested.x"].sum())


def test_plain_json_cast_fails_on_malformed_rows_with_a_query_error(conn, subject):
    sub = conn.subscribe(f"{subject}.>")
    n = _publish_mix(conn, subject, rounds=1)
    _captured(sub, n)
    with pytest.raises(QueryError) as info:
        sub.sql("SELECT data::JSON ->> 'temp' FROM messages")
    err = info.value
    assert isinstance(err, NatsbookError)
    assert "JSON" in err.detail and err.detail in str(err)
    assert err.query.startswith("SELECT data::JSON")
    with pytest.raises(QueryError, match="nope"):
        sub.sql("SELECT nope FROM messages")
    with pytest.raises(BadInputError):
        sub.sql("   ")


def test_open_tail_rows_are_seen_without_sealing(conn, subject):
    sub = conn.subscribe(f"{subject}.x")
    for i in range(10):
        conn.publish(f"{subject}.x", {"i": i})
    conn.flush()
    _captured(sub, 10)
    assert sub.sql("SELECT count(*) AS n, sum((data::JSON ->> 'i')::INT) AS s "
                   "FROM messages").to_dict("records") == [{"n": 10, "s": 45}]
    assert sub.store is not None and len(sub.store._open) == 10  # nothing was sealed early


def test_spilled_and_in_memory_rows_are_counted_exactly_once(conn, subject, tmp_path: Path):
    spill = tmp_path / "spill"
    # A tiny byte bound: every sealed batch goes to disk; the open tail stays in memory.
    sub = conn.subscribe(f"{subject}.>", spill=spill, max_bytes=1000)
    total = 0

    def send(k: int) -> None:
        nonlocal total
        for i in range(total, total + k):
            conn.publish(f"{subject}.s{i % 4}", b'{"seq":%d}' % i)
        total += k
        conn.flush()
        _captured(sub, total)

    send(2 * SEAL_ROWS + 1234)
    for _ in range(100):  # until some rows wait in memory, after the last spill
        if sub.store is not None and sub.store.stats.in_memory:
            break
        send(10)
    st = sub.stats
    assert 0 < st.spilled < total and st.stored == total  # both kinds are present
    q = ("SELECT count(*) AS n, count(DISTINCT data::JSON ->> 'seq') AS distinct_seq, "
         "sum((data::JSON ->> 'seq')::BIGINT) AS s FROM messages")
    want = {"n": total, "distinct_seq": total, "s": total * (total - 1) // 2}
    assert sub.sql(q).to_dict("records") == [want]
    assert conn.sql(q).to_dict("records") == [want]
    # The spill directory alone, without a connection, holds the spilled part only ...
    on_disk = natsbook.sql("SELECT count(*) AS n FROM messages", spill)
    assert int(on_disk["n"][0]) == st.spilled
    # ... until the rest is flushed to it; still one row per message.
    sub.unsubscribe()
    assert sub.store is not None
    sub.store.flush_spill()
    assert natsbook.sql(q, spill).to_dict("records") == [want]
    assert sub.sql(q).to_dict("records") == [want]
    per_subject = natsbook.sql("SELECT subject, count(*) AS n FROM messages GROUP BY 1 "
                               "ORDER BY 1", spill)
    pdf = natsbook.read_capture(spill).groupby("subject").size()
    assert per_subject.set_index("subject")["n"].tolist() == pdf.tolist()


def test_to_parquet_file_and_missing_path(conn, subject, tmp_path: Path):
    sub = conn.subscribe(f"{subject}.>")
    n = _publish_mix(conn, subject, rounds=2)
    _captured(sub, n)
    path = tmp_path / "cap.parquet"
    sub.to_parquet(path)
    q = "SELECT subject, count(*) AS n, sum(size) AS b FROM messages GROUP BY 1 ORDER BY 1"
    assert natsbook.sql(q, path).equals(sub.sql(q))
    assert natsbook.sql("SELECT DISTINCT sub FROM messages", path)["sub"].isna().all()
    with pytest.raises(BadInputError, match="no capture"):
        natsbook.sql(q, tmp_path / "missing")


def test_named_captures_and_connection_table(conn, subject):
    readings = conn.subscribe(f"{subject}.readings.>", name="readings")
    alerts = conn.subscribe(f"{subject}.alerts", name="alerts")
    plain = conn.subscribe(f"{subject}.other")
    for i in range(6):
        conn.publish(f"{subject}.readings.d{i % 2}", {"v": i})
    for i in range(3):
        conn.publish(f"{subject}.alerts", {"level": i})
    conn.publish(f"{subject}.other", b"x")
    conn.flush()
    _captured(readings, 6)
    _captured(alerts, 3)
    _captured(plain, 1)
    assert readings.name == "readings" and plain.name is None
    assert int(conn.sql("SELECT count(*) n FROM readings")["n"][0]) == 6
    assert int(conn.sql("SELECT sum((data::JSON->>'level')::INT) s FROM alerts")["s"][0]) == 3
    by_sub = conn.sql("SELECT sub, count(*) AS n FROM messages GROUP BY sub ORDER BY sub")
    assert dict(zip(by_sub["sub"], by_sub["n"], strict=True)) == {
        f"{subject}.alerts": 3, f"{subject}.other": 1, f"{subject}.readings.>": 6}
    # A join between two named captures.
    joined = conn.sql("SELECT count(*) n FROM readings r JOIN alerts a "
                      "ON (r.data::JSON->>'v')::INT = (a.data::JSON->>'level')::INT")
    assert int(joined["n"][0]) == 3
    # sub.sql: messages is that capture alone, and its name works there too.
    assert int(readings.sql("SELECT count(*) n FROM messages")["n"][0]) == 6
    assert int(readings.sql("SELECT count(*) n FROM readings")["n"][0]) == 6
    with pytest.raises(QueryError):
        readings.sql("SELECT * FROM alerts")
    # A later capture with the same name takes it over (re-running a notebook cell).
    again = conn.subscribe(f"{subject}.readings.>", name="readings")
    assert int(conn.sql("SELECT count(*) n FROM readings")["n"][0]) == 0
    assert int(conn.sql("SELECT count(*) n FROM messages")["n"][0]) == 10
    again.unsubscribe()
    for bad in ("messages", "two words", "1st", "_natsbook_x", "Messages"):
        with pytest.raises(BadInputError):
            conn.subscribe(f"{subject}.z", name=bad)


def test_internal_subscriptions_are_left_out(conn, subject):
    bucket = natskv.create_kv(conn, subject, history=1, storage="memory")
    try:
        bucket.put("k", {"v": 1})
        sub = conn.subscribe(f"{subject}.mine")
        conn.publish(f"{subject}.mine", b"1")
        conn.flush()
        _captured(sub, 1)
        assert len(bucket.to_pandas()) == 1  # reads the bucket through an internal reader
        watch = bucket.watch()  # an internal reader that stays open during the query
        try:
            # A capture the user makes on one of the connection's own inboxes is theirs.
            inbox = conn.new_inbox()
            mine = conn.subscribe(inbox)
            conn.publish(inbox, b"2")
            conn.flush()
            _captured(mine, 1)
            out = conn.sql("SELECT sub, count(*) AS n FROM messages GROUP BY sub ORDER BY sub")
        finally:
            watch.stop()
        assert out.to_dict("records") == sorted(
            [{"sub": f"{subject}.mine", "n": 1}, {"sub": inbox, "n": 1}], key=lambda r: r["sub"])
    finally:
        js.delete_stream(conn, bucket.stream)


def test_no_captures_gives_an_empty_typed_table(server):
    with natsbook.connect(server.url) as c:
        out = c.sql("SELECT * FROM messages")
        assert out.empty
        assert out.columns.tolist() == ["time", "sub", "subject", "reply", "headers", "size",
                                        "data", "payload"]
        no_capture = c.subscribe("nothing.here", capture=False)
        with pytest.raises(BadInputError, match="capture=False"):
            no_capture.sql("SELECT 1")


def test_nats_sql_cell_magic(nats, magics, subject):
    conn = magics.conn
    sub = conn.subscribe(f"{subject}.>", name="cells")
    for i in range(4):
        conn.publish(f"{subject}.d{i % 2}", {"t": i})
    conn.flush()
    _captured(sub, 4)
    nats.run_cell("%%nats_sql -o out\nSELECT subject, sum((data::JSON->>'t')::INT) AS s\n"
                  "FROM cells GROUP BY 1 ORDER BY 1")
    out = nats.user_ns["out"]
    assert out.to_dict("records") == [{"subject": f"{subject}.d0", "s": 2},
                                      {"subject": f"{subject}.d1", "s": 4}]
    result = nats.run_cell("%%nats_sql\nSELECT count(*) AS n FROM messages WHERE sub = "
                           f"'{subject}.>'").result
    assert int(result["n"][0]) == 4
    with pytest.raises(natsbook.errors.QueryError, match="SQL query failed"):
        nats.run_cell("%%nats_sql\nSELECT nope FROM cells")
    with pytest.raises(UsageError, match="the cell is the query"):
        nats.run_cell("%%nats_sql -o x\n  \n")
    with pytest.raises(UsageError, match="not a valid Python variable"):
        nats.run_cell("%%nats_sql -o 1x\nSELECT 1")
