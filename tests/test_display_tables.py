"""Issue 26 item 2: every DataFrame natsbook shows follows the capture frames' display policy
(monitoring, JetStream, KV, services, SQL, ``%nats_subs``), one-record results are grouped
reports (varz, jsz), and the data behind the display stays lossless. A real server throughout;
the HTML is the one IPython's formatter produces."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pandas as pd
import pytest

import natsbook
from natsbook import Connection, LocalServer
from natsbook.capture import ATTR, CAPTURE, FOLD, REPORT, TABLE
from natsbook.notebook._display import frame_html, human_duration, install
from natsbook.notebook.widgets.live import mimebundle
from tests.conftest import TestingShell
from tests.faults.helpers import wait_for

NANOS = re.compile(r"\d\d:\d\d:\d\d\.\d{4,}")


@pytest.fixture
def shown() -> Iterator[object]:
    """What a notebook shows for an object: the text/html IPython's formatter makes."""
    shell = TestingShell()
    install(shell)
    try:
        yield lambda obj: shell.display_formatter.format(obj)[0]["text/html"]
    finally:
        shell.cleanup()


def _cells(html: str, row: int = 0) -> list[str]:
    body = html.split("<tbody>", 1)[1]
    tr = re.findall(r"<tr>(.*?)</tr>", body)[row]
    return [re.sub("<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>.*?</td>", tr)]


def _headers(html: str) -> list[str]:
    head = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    return [re.sub("<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>.*?</th>", head)][1:]


def _plain(html: str) -> str:
    return re.sub("<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", html, flags=re.S))


def test_human_durations() -> None:
    cases = {"0s": "0 s", "850ns": "850 ns", "22.311us": "22.3 µs", "1.5ms": "1.5 ms",
             "250ms": "250 ms", "12.5s": "12.5 s", "47m4s": "47m 04s",
             "1h2m3s": "1h 02m 03s", "51h4m": "2d 03h 04m", "-2s": "-2 s"}
    for text, want in cases.items():
        assert human_duration(pd.Timedelta(text)) == want, text
    assert human_duration(pd.NaT) == ""


def test_connz_is_shown_whole_readable_and_lossless(server: LocalServer, shown: object) -> None:
    clients = [natsbook.connect(server.url, name=f"disp-{i:02d}") for i in range(35)]
    try:
        for i, c in enumerate(clients):
            c.publish(f"disp.{uuid.uuid4().hex}", b"x" * 1000 * i)
            c.flush()
        mon = natsbook.monitor(server)
        with pd.option_context("display.max_columns", 5):  # pandas would cut at 5 columns
            connz = mon.connz()
            html = shown(connz)  # type: ignore[operator]
        assert connz.attrs[ATTR] == TABLE and "nb-frame" in html
        # lossless: every column, nanosecond times, Timedelta durations
        assert {"stop", "reason", "kind", "lang"} <= set(connz.columns)
        assert str(connz["start"].dtype) == "datetime64[ns, UTC]"
        assert pd.api.types.is_timedelta64_dtype(connz["rtt"])
        # shown whole: every row, every column but the empty and the folded ones
        assert html.count("<tr>") == len(connz) + 1 and len(connz) >= 35
        headers = _headers(html)
        assert "stop" not in headers and "reason" not in headers and "kind" not in headers
        assert {"cid", "name", "port", "start", "rtt", "uptime", "in_bytes", "subscriptions"
                } <= set(headers)
        assert "stop, reason: empty in every row" in html
        assert "in every row: kind Client, type nats, ip 127.0.0.1" in html
        text = _plain(html)
        assert not NANOS.search(text) and "0 days" not in text and "NaT" not in text
        assert not re.search(r"\bNone\b", text) and "..." not in text
        row = dict(zip(headers, _cells(html, len(connz) - 1), strict=True))
        assert re.fullmatch(r"\d\d:\d\d:\d\d", row["start"])  # a table's times: seconds
        assert re.fullmatch(r"\d+(\.\d+)? (ns|µs|ms|s)", row["rtt"]), row["rtt"]
        assert "," not in row["port"] and "," not in row["cid"]
        assert row["in_bytes"] == "34,000"
        assert 'white-space:nowrap' in html and "<wbr>" not in html
    finally:
        for c in clients:
            c.close()


def test_closed_connections_show_their_reason(server: LocalServer, shown: object) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    natsbook.connect(server.url, name=name).close()
    mon = natsbook.monitor(server)

    def listed() -> list[pd.DataFrame]:  # the server files a closed client when it sees EOF
        closed = mon.closed()
        mine = closed[closed["name"] == name]
        return [mine] if len(mine) else []

    mine = wait_for(listed, timeout=10)[0]
    html = shown(mine)  # type: ignore[operator]
    row = dict(zip(_headers(html), _cells(html), strict=True))
    assert row["reason"] == "Client Closed" and re.fullmatch(r"\d\d:\d\d:\d\d", row["stop"])


def test_varz_and_jsz_are_grouped_reports(server: LocalServer, shown: object) -> None:
    mon = natsbook.monitor(server)
    varz = mon.varz()
    # the embedded server's real monitoring port, not the -1 it was once started with
    assert varz["http_port"].iloc[0] == server.monitor_port > 0
    html = shown(varz)  # type: ignore[operator]
    assert varz.attrs[ATTR] == REPORT and "nb-report" in html
    assert f"<th>http_port</th><td title=\"{server.monitor_port}\">" in html
    uptime = re.search(r"<th>uptime</th><td[^>]*>([^<]*)<", html).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"\d+(\.\d+)? s|\d+m \d\ds|\d+h \d\dm \d\ds", uptime), uptime
    jsz = mon.jsz()
    html = shown(jsz)  # type: ignore[operator]
    assert jsz.attrs[ATTR] == REPORT and len(jsz.columns) > 15
    for caption in ("JetStream usage", "API", "Config"):
        assert f"<caption>{caption}</caption>" in html
    assert "<th>sync_interval</th><td title=\"2m 00s\">" in html
    assert "0 days" not in html


def test_jetstream_tables(conn: Connection, shown: object) -> None:
    name = f"DISP_{uuid.uuid4().hex[:8]}"
    kv_name = f"disp_{uuid.uuid4().hex[:8]}"
    natsbook.jetstream.add_stream(conn, name, [f"{name.lower()}.>"])
    try:
        for i in range(3):
            conn.js_publish(f"{name.lower()}.{i}", {"n": i})
        conn.add_consumer(name, "worker")
        streams = conn.streams()
        mine = streams[streams["name"] == name]
        html = shown(mine)  # type: ignore[operator]
        assert streams.attrs[ATTR] == TABLE and "storage" in streams.attrs[FOLD]
        assert "in every row: storage file, retention limits, replicas 1" in html
        assert not NANOS.search(_plain(html))
        for frame in (conn.stream_subjects(name), conn.consumers(name),
                      conn.consumer_lag(name, every=0.1, duration=0.1)):
            assert frame.attrs[ATTR] == TABLE
            html = shown(frame)  # type: ignore[operator]
            assert "nb-frame" in html and not NANOS.search(_plain(html))
        lag = shown(conn.consumer_lag(name, every=0.1, duration=0.2))  # type: ignore[operator]
        assert re.search(r">\d\d:\d\d:\d\d\.\d{3}<", lag)  # samples: milliseconds
        html = shown(conn.consumers(name))  # type: ignore[operator]
        created = _headers(html).index("created")
        assert re.fullmatch(r"\d\d:\d\d:\d\d", _cells(html)[created])  # other times: seconds
        bucket = conn.kv(kv_name, create=True)
        bucket.put("color", "blue")
        for frame in (bucket.to_pandas(), bucket.history("color")):
            assert frame.attrs[ATTR] == TABLE and "nb-frame" in shown(frame)  # type: ignore[operator]
    finally:
        natsbook.jetstream.delete_stream(conn, name)
        if kv_name in natsbook.jetstream.kv_buckets(conn):
            # other tests count on a server without buckets
            natsbook.jetstream.delete_stream(conn, f"KV_{kv_name}")


def test_services_show_durations_for_humans(conn: Connection, shown: object) -> None:
    name = f"disp{uuid.uuid4().hex[:6]}"
    svc = conn.add_service(name, "1.0.0")
    try:
        svc.endpoint("echo", lambda m: m.data, subject=f"{name}.echo")
        for _ in range(3):
            conn.request(f"{name}.echo", b"hi", timeout=5)
        frame = conn.services(name)
        assert frame.attrs[ATTR] == TABLE
        assert pd.api.types.is_timedelta64_dtype(frame["average_processing_time"])
        html = shown(frame)  # type: ignore[operator]
        row = dict(zip(_headers(html), _cells(html), strict=True))
        assert re.fullmatch(r"\d+(\.\d+)? (ns|µs|ms)", row["average_processing_time"])
        assert f"in every row: name {name}" in html and "0 days" not in html
        assert shown(svc.stats()).count("nb-frame") >= 1  # type: ignore[operator]
    finally:
        svc.stop()


def test_sql_results_and_live_views_use_the_policy(conn: Connection, subject: str,
                                                   shown: object) -> None:
    sub = conn.subscribe(f"{subject}.>")
    conn.publish(f"{subject}.a", {"n": 1})
    conn.flush()
    sub.wait_pending(5)
    counts = sub.sql("SELECT subject, count(*) AS n FROM messages GROUP BY 1")
    assert counts.attrs[ATTR] == TABLE and "nb-frame" in shown(counts)  # type: ignore[operator]
    rows = sub.sql("SELECT time, subject FROM messages")
    assert rows.attrs[ATTR] == CAPTURE  # message rows: times to the millisecond
    assert re.search(r">\d\d:\d\d:\d\d\.\d{3}<", shown(rows))  # type: ignore[operator]
    # a live view shows natsbook's display even where the extension was never loaded
    data, _ = mimebundle(counts)
    assert "nb-frame" in data["text/html"]


def test_magic_tables_are_tagged(nats: TestingShell, server: LocalServer) -> None:
    nats.run_cell("%nats_sub disp.magic.>")
    subs = nats.run_cell("%nats_subs").result
    assert subs.attrs[ATTR] == TABLE
    html = nats.display_formatter.format(subs)[0]["text/html"]
    assert "nb-frame" in html and "<th>sid</th>" in html  # the index keeps its name
    jsz = nats.run_cell(f"%nats_server jsz --url {server.monitor_url}").result
    assert jsz.attrs[ATTR] == REPORT
    assert "JetStream usage" in nats.display_formatter.format(jsz)[0]["text/html"]


def test_empty_means_nothing_in_any_row() -> None:
    frame = pd.DataFrame({"name": ["a", "b"], "tags": [[], []], "meta": [{}, {}],
                          "flag": [False, False], "json_error": [False, False],
                          "when": pd.Series([pd.NaT, pd.NaT], dtype="datetime64[ns, UTC]")})
    frame.attrs[ATTR] = TABLE
    html = frame_html(frame)
    assert "tags, meta, json_error, when: empty in every row" in html
    assert "flag" in _headers(html)  # False is a value, not nothing
    assert "empty in every row" not in frame_html(frame.iloc[:0])  # no rows: hide nothing
