"""The first hour, round two (issue 26): what a new user still tripped over.

Errors that name public API only and say whether the line or the run failed; the request load
test's frame and summary; an Explorer that cannot silently break other notebooks; small display
fixes (ids without separators, nice plot ticks).
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook import Connection, LocalServer
from natsbook.errors import NoRespondersError, NotFoundError, QueryError, RequestTimeout
from tests.conftest import TestingShell


# -- item 6: errors ----------------------------------------------------------------------------
def test_magic_runtime_failure_is_the_natsbook_error_in_one_line(
        nats: TestingShell, subject: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    # Failed at run time: the natsbook error itself (not UsageError), shown as one line.
    with pytest.raises(NoRespondersError) as exc:
        nats.run_cell(f"%nats_req {subject}.nobody hi --timeout 2")
    assert not isinstance(exc.value, UsageError)
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [
        f"\x1b[0;31mNoRespondersError\x1b[0m: natsbook: no responders on '{subject}.nobody' - "
        "start one (conn.serve(...)) or check the subject"]
    assert "Traceback" not in out
    with pytest.raises(natsbook.errors.ConnectError):
        nats.run_cell("%nats_connect nats://127.0.0.1:1")
    out = capsys.readouterr().out
    assert "ConnectError\x1b[0m: natsbook: cannot reach nats://127.0.0.1:1" in out
    assert len(out.strip().splitlines()) == 1
    # The line itself was wrong: still a UsageError.
    with pytest.raises(UsageError, match="bad subject"):
        nats.run_cell("%nats_req 'a b' hi")
    with pytest.raises(UsageError, match="must be > 0"):
        nats.run_cell(f"%nats_req {subject} hi --timeout 0")
    # A natsbook error from the user's own code keeps its full traceback.
    capsys.readouterr()
    with pytest.raises(NoRespondersError):
        nats.run_cell(f"_c = %nats_info\nimport natsbook\n"
                      f"natsbook.connect(_c['connected_url']).request('{subject}.x', b'')")
    assert "Traceback" in capsys.readouterr().out


def test_magic_error_display_leaves_other_handlers_alone(ip: TestingShell) -> None:
    from natsbook.notebook.magics import load_ipython_extension, unload_ipython_extension

    assert ip.custom_exceptions == (natsbook.NatsbookError,)
    unload_ipython_extension(ip)
    assert ip.custom_exceptions == ()
    ip.set_custom_exc((KeyError,), lambda *a, **k: None)
    load_ipython_extension(ip)  # someone else's handler stays
    assert ip.custom_exceptions == (KeyError,)


def test_kv_hint_names_public_api(nats: TestingShell, conn: Connection, subject: str) -> None:
    with pytest.raises(NotFoundError) as exc:
        conn.kv(subject)
    text = str(exc.value)
    assert f"conn.kv({subject!r}, create=True)" in text
    assert "._" not in text.replace(f"conn.kv({subject!r}", "")  # no private module path
    with pytest.raises(NotFoundError, match=r"create=True"):
        nats.run_cell(f"%nats_kv {subject}")


def test_kv_hint_stays_when_other_buckets_exist(conn: Connection, subject: str) -> None:
    """Whatever other buckets the server holds (another test's, another user's), a missing
    bucket's error says how to create it - after a suggestion when one is close."""
    other, near = f"{subject}_other_bucket", f"{subject}x"
    conn.kv(other, create=True)
    conn.kv(near, create=True)
    try:
        with pytest.raises(NotFoundError) as exc:
            conn.kv("zz" + subject)
        assert f"create it with conn.kv('zz{subject}', create=True)" in str(exc.value)
        with pytest.raises(NotFoundError) as exc:
            conn.kv(subject)
        assert str(exc.value).endswith(f"did you mean {near!r}? Or create it with "
                                       f"conn.kv({subject!r}, create=True).")
    finally:
        for bucket in (other, near):
            natsbook.jetstream.delete_stream(conn, f"KV_{bucket}")


@pytest.mark.parametrize("typo", ["_natsbook_capt", "natsbook_capture_0", "capture_0"])
def test_sql_typo_never_suggests_internal_tables(conn: Connection, subject: str,
                                                 typo: str) -> None:
    sub = conn.subscribe(f"{subject}.>", name="readings")
    conn.publish(f"{subject}.a", {"x": 1})
    conn.flush()
    sub.wait_pending(5)
    with pytest.raises(QueryError) as exc:
        sub.sql(f"SELECT * FROM {typo}")
    text = str(exc.value)
    assert "_natsbook_capture" not in text and "pg_" not in text and "Did you mean" not in text
    # a suggestion the user can act on stays
    with pytest.raises(QueryError, match='Did you mean "readings"'):
        conn.sql("SELECT * FROM readngs")
    with pytest.raises(QueryError, match='Did you mean "messages"'):
        conn.sql("SELECT * FROM mesages")


def test_request_timeout_still_a_timeout(nats: TestingShell, conn: Connection,
                                         subject: str, server: LocalServer) -> None:
    conn.subscribe(f"{subject}.silent")
    conn.flush()
    with pytest.raises(RequestTimeout, match="wire-tap"):
        nats.run_cell(f"%nats_req {subject}.silent hi --timeout 0.2")


# -- item 4: the request load test -------------------------------------------------------------
def test_request_batch_rows_name_the_request_subject(conn: Connection, subject: str) -> None:
    conn.serve(f"{subject}.svc", lambda m: m.data)
    conn.subscribe(f"{subject}.silent")  # hears requests, never answers
    conn.flush()
    df = conn.request_batch(f"{subject}.svc", [b"a", b"b", b"c"], timeout=5)
    assert df["error"].isna().all()
    assert df["subject"].tolist() == [f"{subject}.svc"] * 3  # not the reply inbox
    assert df["reply"].str.startswith("_INBOX.").all() and df["reply"].nunique() == 3
    late = conn.request_batch(f"{subject}.silent", [b"x"], timeout=0.2)
    assert late["subject"].tolist() == [f"{subject}.silent"]
    assert late["error"].tolist() == ["RequestTimeout"]
    many = conn.request_many(f"{subject}.svc", b"q", max_replies=1, max_wait=5)
    assert many["subject"].tolist() == [f"{subject}.svc"]
    assert many["reply"].str.startswith("_INBOX.").all()


def test_simulated_services_answer_concurrently(server: LocalServer, nats: TestingShell,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from natsbook.lab.simulator import Simulator

    prefix = f"t{id(capsys)}"
    with natsbook.connect(server.url) as c, Simulator(
            c, devices=2, rate=1, workers=0, job_rate=0, prefix=prefix, seed=1) as sim:
        assert sim.stats["responders"] == 8
        capsys.readouterr()
        nats.run_cell("df = %nats_req svc.lookup th-001 --count 200 --concurrency 50")
        out = capsys.readouterr().out
        df = nats.user_ns["df"]
        assert df["error"].isna().all() and (df["subject"] == "svc.lookup").all()
        # several lookups were handled at the same time (one responder would make this 1)
        assert sim.stats["busy_max"] > 1
        assert "rate set by " in out  # the summary says what set the pace
    with pytest.raises(natsbook.errors.BadInputError, match="responders"):
        Simulator(server.url, responders=0)


def test_rate_limit_line() -> None:
    from natsbook.notebook._magics_messaging import rate_limit

    # 1000 requests in 1 s at 100 ms each: 100 in flight, the window of 100 was full
    assert rate_limit(1000, 100, 1.0, 100.0).startswith("rate set by the responders")
    # 1000 requests in 1 s at 1 ms each: 1 of 100 in flight, the client set the pace
    assert rate_limit(1000, 100, 1.0, 1.0).startswith("rate set by this client")
    assert rate_limit(50, 100, 0.1, 5.0).startswith("rate set by the slowest reply")


# -- item 1: an explorer watching '>' ----------------------------------------------------------
def test_stop_all_ends_every_watch_even_with_its_output_cleared(
        conn: Connection, subject: str, nats: TestingShell,
        capsys: pytest.CaptureFixture[str]) -> None:
    from natsbook.notebook.widgets import SubjectExplorer, dashboard

    d = dashboard(conn)
    lone = SubjectExplorer(conn, pattern=f"{subject}.>", autostart=True)
    sub = conn.subscribe(f"{subject}.live")
    view = sub.live(len, every=0.2)
    try:
        assert d.explorer.warning.value == ""  # nothing to warn about before Start
        d.explorer.watch(">")
        box = d.explorer.warning.value
        assert "nb-exp-warning" in box and "<code>&gt;</code>" in box
        assert "no responders" in box and "natsbook.stop_all()" in box
        assert "%nats_close --explorers" in box
        with pytest.raises(RequestTimeout):
            conn.request(f"{subject}.nobody", timeout=0.2)
        # The user re-ran the cell: the panels are out of sight, only stop_all reaches them.
        stopped = natsbook.stop_all()
        assert stopped["explorers"] == 2 and stopped["live_views"] >= 1
        assert d.explorer.sub is None and lone.sub is None and not view.running
        assert d.explorer.warning.value == "" and lone.warning.value == ""
        with pytest.raises(NoRespondersError):
            conn.request(f"{subject}.nobody", timeout=2)
        assert natsbook.stop_all() == {"explorers": 0, "live_views": 0}
        # the same from a magic, which leaves the magics' connection open
        d.explorer.watch(">")
        capsys.readouterr()
        nats.run_cell("%nats_close --explorers")
        assert "stopped 1 explorer watch" in capsys.readouterr().out
        assert d.explorer.sub is None
        nats.run_cell("%nats_close --explorers")
        assert "no explorer was watching" in capsys.readouterr().out
        magics = nats.magics_manager.registry["NatsMagics"]
        assert magics.conn is not None and magics.conn.is_connected
        with pytest.raises(UsageError):
            nats.run_cell("%nats_close --explorer-typo")
    finally:
        view.close()
        lone.close()
        d.close()


# -- item 8: small things ----------------------------------------------------------------------
def test_ids_and_sequence_numbers_have_no_thousands_separators(conn: Connection,
                                                               subject: str) -> None:
    from natsbook.notebook._display import capture_html, report_html

    sub = conn.subscribe(f"{subject}.>")
    conn.publish(f"{subject}.dev", {"seq": 12345, "count": 23456, "device_id": 34567,
                                    "temperature": 21.5})
    conn.flush()
    sub.wait_pending(5)
    df = sub.to_pandas()
    html = capture_html(df)
    seq_col = next(c for c in df.columns if c.rsplit(".", 1)[-1] == "seq")
    assert df[seq_col].iloc[0] == 12345
    assert ">12345<" in html and ">12,345<" not in html  # the payload's sequence number
    assert ">34567<" in html  # an id
    assert ">23,456<" in html  # an amount keeps its separator
    report = report_html({"port": 4222, "cid": 10234, "in_msgs": 12345})
    assert ">4222<" in report and ">10234<" in report and ">12,345<" in report


def test_notebook_02_latency_is_never_negative(server: LocalServer) -> None:
    """02 computes delivery latency as receive `time` minus the reading's `ts`: both this
    machine's wall clock, so never negative - unless `ts` is rounded past the send time."""
    from pathlib import Path

    import nbformat

    from natsbook.lab.simulator import Simulator
    from tests.support.waiting import wait_for

    nb = nbformat.read(Path(__file__).parent.parent / "notebooks" / "02-telemetry-analysis.ipynb",
                       as_version=4)
    cell = next(c.source for c in nb.cells
                if c.cell_type == "code" and 'good["latency_ms"]' in c.source)
    prefix = f"t{id(nb)}"
    with natsbook.connect(server.url) as c:
        sub = c.subscribe(f"{prefix}.>")
        with Simulator(c, devices=4, rate=40, services=False, workers=0, job_rate=0,
                       malformed_rate=0, anomaly_rate=0, prefix=prefix, seed=3):
            wait_for(lambda: len(sub) >= 400, timeout=30, what="400 readings")
        c.flush()
        df = sub.to_pandas()
    ns: dict[str, object] = {"good": df[~df["json_error"]].copy()}
    exec(cell, ns)  # the notebook's own code
    latency = ns["good"]["latency_ms"]  # type: ignore[index]
    assert len(latency) >= 400 and latency.min() >= 0, latency.describe()


@pytest.mark.parametrize(("values", "ticks"), [
    ([17.414, 90.006], ["0", "20", "40", "60", "80", "100"]),
    ([21.3, 21.9], ["21.2", "21.4", "21.6", "21.8", "22.0"]),
    ([20.5, 25.5], ["20", "22", "24", "26"]),
    ([0.0012, 0.0047], ["0.001", "0.002", "0.003", "0.004", "0.005"]),
    ([-3.2, 2.7], ["-4", "-2", "0", "2", "4"]),
    ([5.0, 5.0], ["4.0", "4.5", "5.0", "5.5", "6.0"]),
    ([float("nan")], []),
])
def test_plot_y_axis_has_nice_ticks(values: list[float], ticks: list[str]) -> None:
    from natsbook.notebook.widgets.plot import LinePlot, nice_ticks

    got, labels = nice_ticks(values)
    assert labels == ticks
    finite = [v for v in values if v == v]
    if finite:  # the ticks cover the data
        assert got[0] <= min(finite) and got[-1] >= max(finite)
    plot = LinePlot()
    try:
        plot.x, plot.y = list(range(len(values))), values
        assert plot.ylabels == ticks and plot.yticks == got
    finally:
        plot.close()
