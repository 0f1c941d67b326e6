"""Live views: refreshed only on new rows, at most every `every` seconds, surviving errors in
`fn`, stopping on close with no thread left (real nats-server, real widgets without a
front end)."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError

import natsbook
from natsbook.errors import BadInputError
from natsbook.notebook.widgets.live import LiveView
from tests.support.waiting import wait_for


def _live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "natsbook-live" and t.is_alive()]


@pytest.fixture(autouse=True)
def _no_thread_left() -> Any:
    yield
    wait_for(lambda: not _live_threads(), timeout=5, what="live threads to end")


def _send(conn: natsbook.Connection, subject: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        conn.publish(subject, {"i": i, "site": f"s{i % 2}"})
    conn.flush()


def test_refreshes_only_when_new_rows_arrive(conn, subject):
    sub = conn.subscribe(subject)
    calls: list[int] = []

    def fn(df: pd.DataFrame) -> int:
        calls.append(len(df))
        return len(df)

    view = sub.live(fn, every=0.1)
    try:
        assert isinstance(view, LiveView)
        wait_for(lambda: view.renders == 1, what="the first render")
        time.sleep(0.6)  # six periods without traffic
        assert view.renders == 1 and calls == [0]
        _send(conn, subject, 3)
        wait_for(lambda: view.result == 3, what="a render with the new rows")
        settled = view.renders
        time.sleep(0.6)
        assert view.renders == settled  # nothing new: no render
        assert calls[-1] == 3 and view.errors == 0
        assert sub.store is not None and len(sub.store._open) == 3  # polling sealed nothing
        outputs = view._out.outputs
        assert outputs and outputs[0]["data"]["text/plain"] == "3"
    finally:
        view.close()
    assert not view.running


def test_respects_every_under_steady_traffic(conn, subject):
    sub = conn.subscribe(subject)
    view = sub.live(len, every=0.4)
    try:
        stop = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < stop:  # ~50 messages a second: new rows at every poll
            _send(conn, subject, 1, i)
            i += 1
            time.sleep(0.02)
        wait_for(lambda: view.result == i, what="the last render")
        times = list(view._refresher.render_times)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 3
        assert min(gaps) >= 0.4 - 0.01, gaps  # never faster than `every`
        assert view.renders <= 2.0 / 0.4 + 3
    finally:
        view.stop()


def test_an_exception_in_fn_is_shown_and_the_view_goes_on(conn, subject):
    sub = conn.subscribe(subject)

    def fn(df: pd.DataFrame) -> pd.DataFrame | None:
        if df.empty:  # the first render, before any message
            return None
        if len(df) == 2:
            raise RuntimeError("two is a bad number")
        return df.groupby("site").size().rename("n").to_frame()

    view = sub.live(fn, every=0.1, decode="json")
    try:
        wait_for(lambda: view.renders >= 1)
        _send(conn, subject, 2)
        wait_for(lambda: view.errors == 1, what="the failing render")
        assert "RuntimeError: two is a bad number" in (view.last_error or "")
        assert "two is a bad number" in view._error.value
        assert view._error.layout.display != "none" and view.running
        _send(conn, subject, 3, 2)
        wait_for(lambda: isinstance(view.result, pd.DataFrame) and view.result["n"].sum() == 5,
                 what="the view to recover")
        assert view._error.layout.display == "none"  # the error box went away
        assert "text/html" in view._out.outputs[0]["data"]  # a DataFrame shows as a table
    finally:
        view.close()


def test_sql_string_and_figure_results(conn, subject):
    from matplotlib.figure import Figure

    sub = conn.subscribe(subject, name="things")

    def chart(df: pd.DataFrame) -> Figure:
        fig = Figure(figsize=(3, 2))
        if not df.empty:
            fig.add_subplot().plot(df["time"], df["i"])
        return fig

    table = sub.live("SELECT data::JSON->>'site' AS site, count(*) AS n FROM things "
                     "GROUP BY 1 ORDER BY 1", every=0.1)
    plot = sub.live(chart, every=0.1, decode="json")
    try:
        _send(conn, subject, 4)
        wait_for(lambda: isinstance(table.result, pd.DataFrame) and len(table.result) == 2)
        assert table.result.to_dict("records") == [{"site": "s0", "n": 2},
                                                   {"site": "s1", "n": 2}]
        wait_for(lambda: plot.renders >= 2 and plot.errors == 0
                 and "image/png" in plot._out.outputs[0]["data"], what="a PNG of the figure")
    finally:
        table.close()
        plot.close()


def test_stop_button_close_and_end_of_capture(conn, subject):
    sub = conn.subscribe(subject)
    v1 = sub.live(len, every=0.1)
    v2 = sub.live(len, every=0.1)
    v3 = conn.live(lambda df: sorted(set(df["sub"])), every=0.1)
    wait_for(lambda: v1.running and v2.running and v3.running and len(_live_threads()) == 3)
    v1._button.click()  # the Stop button, as the front end would
    assert not v1.running and v1._button.disabled
    # stopped by the user: said once, not "stopped (stopped)"
    assert "■ stopped ·" in v1._status.value and "(stopped)" not in v1._status.value
    v2.close()
    assert not v2.running and v2.comm is None
    assert len(_live_threads()) == 1
    _send(conn, subject, 2)
    wait_for(lambda: v3.result == [subject])
    # A view over a capture stops by itself once the capture ended (after a last render).
    v4 = sub.live(len, every=0.1)
    wait_for(lambda: v4.result == 2)
    sub.unsubscribe()
    wait_for(lambda: not v4.running, what="the view to stop when the capture ended")
    assert "capture ended" in v4._status.value
    conn.close()
    wait_for(lambda: not v3.running, what="the connection view to stop on close")
    assert "connection closed" in v3._status.value
    v3.close()
    v4.close()


def test_bad_arguments(conn, subject):
    sub = conn.subscribe(subject)
    with pytest.raises(BadInputError, match=r"every=0\.05"):
        sub.live(len, every=0.05)
    with pytest.raises(BadInputError, match="function"):
        sub.live(42)  # type: ignore[arg-type]
    quiet = conn.subscribe(f"{subject}.q", capture=False)
    with pytest.raises(BadInputError, match="capture=False"):
        quiet.live(len)
    assert not _live_threads()


def test_nats_live_magic(nats, magics, subject):
    conn = magics.conn
    sub = conn.subscribe(f"{subject}.>", name="feed")
    nats.user_ns["feed_sub"] = sub
    view = nats.run_cell("%%nats_live feed --every 200ms -o v\n"
                         "n = len(df)\n"
                         "n * 10\n").result
    assert isinstance(view, LiveView) and nats.user_ns["v"] is view and view.every == 0.2
    sql = nats.run_cell("%%nats_live feed_sub -e 0.2\n"
                        "-- a comment first\n"
                        "SELECT count(*) AS n FROM messages").result
    everything = nats.run_cell("%%nats_live messages\nsorted(set(df['sub']))").result
    _send(conn, f"{subject}.a", 3)
    wait_for(lambda: view.result == 30, what="the Python cell's view")
    wait_for(lambda: isinstance(sql.result, pd.DataFrame) and int(sql.result["n"][0]) == 3)
    wait_for(lambda: everything.result == [f"{subject}.>"])
    # A subject pattern starts a new capture.
    fresh = nats.run_cell(f"%%nats_live {subject}.new.> --every 1s\nlen(df)").result
    assert any(s.subject == f"{subject}.new.>" for s in conn.subscriptions)
    _send(conn, f"{subject}.new.x", 2)
    wait_for(lambda: fresh.result == 2)
    with pytest.raises(UsageError, match="below 100ms"):
        nats.run_cell("%%nats_live feed --every 10ms\nlen(df)")
    with pytest.raises(UsageError, match="not a period"):
        nats.run_cell("%%nats_live feed --every soon\nlen(df)")
    with pytest.raises(UsageError, match="needs a cell body"):
        nats.run_cell("%nats_live feed")
    with pytest.raises(UsageError, match="neither SQL nor valid Python"):
        nats.run_cell("%%nats_live feed\nlen(df) +")
    assert len(_live_threads()) == 4
    magics.close()  # as %unload_ext does: stops and joins every view it started
    assert not _live_threads()
