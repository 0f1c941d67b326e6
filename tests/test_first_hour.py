"""What a new user sees: readable frame and report displays (display only, data lossless),
no duplicate magic output, a dashboard that leaves no-responders alone, the explorer's default
field and smoothed rates, captures made in code in the Subscribe tab."""

from __future__ import annotations

import time

import pandas as pd
import pytest

import natsbook
from natsbook import Connection, LocalServer
from natsbook.errors import NoRespondersError, RequestTimeout
from natsbook.lab.simulator import Simulator
from natsbook.notebook._display import ATTR, CAPTURE, REPORT, capture_html, plural, report_html
from natsbook.notebook.widgets import SubscribePanel, dashboard
from natsbook.notebook.widgets._base import RateMeter
from natsbook.notebook.widgets.explorer import default_field
from tests.conftest import TestingShell
from tests.support.waiting import wait_for


# -- capture frames ---------------------------------------------------------------------------
def test_capture_frame_displays_readably_and_stays_lossless(conn: Connection,
                                                            subject: str) -> None:
    sub = conn.subscribe(f"{subject}.>")
    conn.publish(f"{subject}.dev.one", {"temperature": 21.25, "ts": 1795952123.456, "seq": 1})
    conn.publish(f"{subject}.dev.two", {"temperature": 19.5, "ts": 1795952124.5, "seq": 2})
    conn.flush()
    sub.wait_pending(5)
    df = sub.to_pandas()
    assert df.attrs[ATTR] == CAPTURE and df[["time", "subject"]].attrs[ATTR] == CAPTURE
    # the data itself: nanosecond UTC times, every metadata column, raw floats
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert {"reply", "headers", "json_error"} <= set(df.columns)
    assert df["ts"].iloc[0] == 1795952123.456
    html = capture_html(df)
    stamp = df["time"].iloc[0]
    assert stamp.strftime("%H:%M:%S.%f")[:-3] in html  # milliseconds
    assert stamp.strftime("%H:%M:%S.%f") not in html  # not micro/nanoseconds
    assert "+00:00" not in html and "e+09" not in html
    ts = pd.Timestamp(1795952123.456, unit="s", tz="UTC").strftime("%H:%M:%S.%f")[:-3]
    assert f">{ts}<" in html and "ts: epoch seconds, shown as UTC time" in html
    assert ">21.25<" in html  # floats in plain notation
    assert "reply, headers, json_error: empty in every row" in html
    assert "<th class=\"\">reply</th>" not in html
    assert "white-space:nowrap" in html
    assert "2 rows x " in html
    # IPython shows it through the formatter; an untagged frame keeps pandas' display
    shell = TestingShell()
    try:
        natsbook.notebook._display.install(shell)
        fmt = shell.display_formatter.format
        assert "nb-frame" in fmt(df)[0]["text/html"]
        plain = pd.DataFrame({"a": [1]})
        assert "nb-frame" not in fmt(plain)[0]["text/html"]
        assert fmt(df)[0]["text/plain"] == repr(df)
    finally:
        shell.cleanup()


def test_report_is_vertical_and_grouped() -> None:
    frame = pd.DataFrame([{"server_id": "N1", "version": "2.11", "in_msgs": 5,
                           "in_bytes": 5 * 1024 * 1024, "max_connections": 65536,
                           "jetstream.config.max_memory": 1 << 30,
                           "uptime": pd.Timedelta(seconds=125)}])
    html = report_html(frame)
    for group in ("Server", "Traffic", "Limits", "JetStream"):
        assert f"<caption>{group}</caption>" in html
    assert "5.0 MiB (5,242,880)" in html and "2m 05s" in html and "65,536" in html


def test_plural() -> None:
    assert plural(1, "msg") == "1 msg" and plural(2, "msg") == "2 msgs"
    assert plural(1, "message") == "1 message" and plural(1000, "point") == "1,000 points"


# -- magics -----------------------------------------------------------------------------------
def test_server_varz_is_a_report_and_o_binds_the_frame(nats: TestingShell,
                                                       server: LocalServer,
                                                       magics: object) -> None:
    magics.monitor_url = server.monitor_url  # type: ignore[attr-defined]
    varz = nats.run_cell("%nats_server varz -o v").result
    assert isinstance(varz, pd.DataFrame) and nats.user_ns["v"] is varz
    assert varz.attrs[ATTR] == REPORT and len(varz.columns) > 50
    html = nats.display_formatter.format(varz)[0]["text/html"]
    assert "nb-report" in html and "<caption>Traffic</caption>" in html
    health = nats.run_cell("%nats_server healthz").result
    assert health["status"] == "ok" and "nb-report" in health._repr_html_()


def test_sub_and_req_show_once(nats: TestingShell, subject: str, conn: Connection,
                               capsys: pytest.CaptureFixture[str]) -> None:
    nats.run_cell("%config NatsMagics.live_status = 'widget'")
    capsys.readouterr()
    result = nats.run_cell(f"%nats_sub {subject}.> -o s").result
    # the live line stands for it in its own cell: no frozen repr as the cell's result
    assert "<Subscription" not in capsys.readouterr().out
    assert nats.user_ns["s"] is result and nats.user_ns["_"] is result
    nats.run_cell("s")  # later cells show it as usual
    assert "<Subscription" in capsys.readouterr().out

    conn.serve(f"{subject}.svc", lambda m: {"ok": True})
    reply = nats.run_cell(f"%nats_req {subject}.svc hi").result
    out = capsys.readouterr().out
    assert isinstance(reply, natsbook.Msg) and reply.json() == {"ok": True}
    assert '"ok": true' in out and "Msg(" not in out  # pretty once, no raw Msg(...) under it
    assert nats.user_ns["_"] is reply
    nats.run_cell("_")
    assert "Msg(" in capsys.readouterr().out


def test_streams_none_says_so(nats: TestingShell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    result = nats.run_cell("%nats_streams").result
    out = capsys.readouterr().out
    if result is None:  # the session's server may hold streams made by other tests
        assert "no streams" in out and "add_stream" in out


# -- dashboard and explorer -------------------------------------------------------------------
def test_open_dashboard_keeps_no_responders(conn: Connection, server: LocalServer,
                                            subject: str) -> None:
    d = dashboard(conn)
    try:
        assert d.explorer.sub is None  # no wire-tap until the user starts one
        with natsbook.connect(server.url) as other:
            start = time.monotonic()
            with pytest.raises(NoRespondersError):
                other.request(f"{subject}.nobody", timeout=5)
            assert time.monotonic() - start < 1.0
            d.explorer.watch(">")  # the user starts a wildcard watch: now it times out...
            with pytest.raises(RequestTimeout, match="wire-tap") as exc:
                other.request(f"{subject}.nobody", timeout=0.3)
            assert "'>'" in str(exc.value)
    finally:
        d.close()
    assert d.explorer.sub is None  # ...and the watch ends with the dashboard


def test_default_field_skips_counters_and_clocks() -> None:
    fields = ["seq", "ts", "temperature", "humidity"]
    few = [{"seq": 1, "ts": 1.7e9, "temperature": 20.1, "humidity": 50.0},
           {"seq": 2, "ts": 1.7e9 + 1, "temperature": 20.4, "humidity": 50.0}]
    assert default_field(fields, few) == "temperature"
    more = [*few, {"seq": 3, "ts": 1.7e9 + 2, "temperature": 20.6, "humidity": 49.0}]
    assert default_field(fields, more) == "humidity"  # the first that went down
    assert default_field(["seq"], [{"seq": 1}, {"seq": 2}]) == "seq"
    assert default_field([], []) is None


def test_rate_meter_is_smooth_at_1hz() -> None:
    meter = RateMeter(0, window=5.0, now=0.0)
    rates = []
    count = 0
    for tick in range(1, 201):  # 10 Hz timer, one message per second
        t = tick / 10
        if tick % 10 == 3:
            count += 1
        rates.append(meter.update(count, t))
    steady = rates[60:]
    assert min(steady) > 0.75 and max(steady) < 1.25
    assert meter.update(count, 30.0) == 0.0  # idle for a whole window


def test_subscribe_tab_lists_code_captures_and_keeps_user_variables(
        conn: Connection, subject: str) -> None:
    mine = pd.DataFrame({"x": [1]})
    ns: dict[str, object] = {"df": mine}
    p = SubscribePanel(conn, namespace=ns)
    code_sub = conn.subscribe(f"{subject}.code")
    try:
        conn.publish(f"{subject}.code", "hi")
        conn.flush()
        wait_for(lambda: f"{subject}.code" in p.stats.value, what="the code capture")
        wait_for(lambda: code_sub.sid in dict(p.capture.options).values(), what="the option")
        p.capture.value = code_sub.sid
        p.frame_button.click()
        assert ns["df"] is mine and "df_2" in ns and "df already exists" in p.status.value
        p.frame_button.click()  # its own variable: updated in place
        assert "df_2" in p.status.value and "df_3" not in ns
    finally:
        p.close()
        code_sub.unsubscribe()


def test_simulator_injects_within_a_short_capture(conn: Connection) -> None:
    prefix = f"sim{time.monotonic_ns()}"
    sub = conn.subscribe(f"{prefix}.>")
    sim = Simulator(conn, devices=4, rate=5, anomaly_rate=0.0, malformed_rate=0.0,
                    services=False, workers=0, job_rate=0, prefix=prefix,
                    inject_every=1.0).start()
    try:
        wait_for(lambda: sim.stats["anomalies"] >= 2 and sim.stats["malformed"] >= 2,
                 timeout=10, what="injected readings")
    finally:
        sim.stop()
    df = sub.to_pandas()
    assert df["json_error"].sum() >= 2
