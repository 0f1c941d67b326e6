"""Panel logic against the real server, without a browser: set widget values, click buttons
with ``button.click()``, and wait (with timeouts) for the throttled updater to set traits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import natsbook
from natsbook import Connection, LocalServer
from natsbook.notebook.widgets import (
    Dashboard,
    PublishPanel,
    RequestPanel,
    SubjectExplorer,
    SubscribePanel,
    Updater,
    dashboard,
)
from natsbook.notebook.widgets.explorer import diff_html, numeric_fields
from natsbook.notebook.widgets.tree import build_tree, visible_rows
from tests.support.waiting import wait_for


@pytest.fixture
def dash(conn: Connection, subject: str) -> Iterator[Dashboard]:
    d = dashboard(conn, explorer_pattern=f"{subject}.>", explore=True)
    yield d
    d.close()


# -- the updater ------------------------------------------------------------------------------
def test_updater_coalesces_and_caps_the_rate() -> None:
    import ipywidgets as W

    label = W.Label()
    sent: list[str] = []
    label.observe(lambda c: sent.append(c["new"]), names="value")
    up = Updater(None, interval=0.1)
    stop = threading.Event()

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            up.set(label, value=str(i))
            i += 1

    t = threading.Thread(target=hammer)
    t.start()
    up.start()
    time.sleep(1.0)
    stop.set()
    t.join()
    wait_for(lambda: up.ticks >= 12, what="two more ticks")
    up.stop()
    # Thousands of set() calls, but at most ~one change per tick reaches the widget.
    assert 1 <= len(sent) <= up.ticks
    assert label.value == sent[-1]
    assert not up.running


def test_updater_survives_a_failing_poll_and_stops_when_the_connection_closes(
        server: LocalServer) -> None:
    c = natsbook.connect(server.url)
    up = Updater(c)
    calls: list[int] = []

    def bad() -> None:
        raise RuntimeError("boom")

    up.add(bad)
    up.add(lambda: calls.append(1))
    up.start()
    wait_for(lambda: len(calls) >= 3, what="polls")
    assert any("boom" in e for e in up.errors)
    c.close()
    wait_for(lambda: not up.running, what="the updater to stop after close()")


# -- publish ----------------------------------------------------------------------------------
def test_publish_panel_publishes_with_headers_and_reply(conn: Connection, subject: str) -> None:
    sub = conn.subscribe(f"{subject}.>")
    p = PublishPanel(conn)
    try:
        p.subject.value = f"{subject}.cmd"
        p.format.value = "json"
        p.payload.value = '{"on": true}'
        assert "valid JSON" in p.payload_info.value
        p.headers.value = "Trace-Id: 7\nTag: a\nTag: b"
        p.reply_to.value = f"{subject}.answer"
        p.publish_button.click()
        assert "published #1" in p.status.value
        conn.flush()
        wait_for(lambda: sub.received == 1, what="the message")
        msg = sub.last_msg
        assert msg is not None and msg.json() == {"on": True}
        assert msg.reply == f"{subject}.answer"
        assert msg.headers is not None and msg.headers.getall("Tag") == ["a", "b"]
    finally:
        p.close()


def test_publish_panel_shows_errors_in_the_panel(conn: Connection, subject: str) -> None:
    p = PublishPanel(conn)
    try:
        p.publish_button.click()
        assert "type a subject" in p.status.value
        p.subject.value = f"{subject}.*"
        p.publish_button.click()
        assert "nb-error" in p.status.value and "wildcard" in p.status.value
        p.subject.value = f"{subject}.ok"
        p.format.value = "json"
        p.payload.value = "{oops"
        assert "not valid JSON" in p.payload_info.value
        p.publish_button.click()
        assert "not valid JSON" in p.status.value
        p.format.value = "text"
        p.headers.value = "no colon here"
        p.publish_button.click()
        assert "Key: value" in p.status.value
        assert p.published == 0
    finally:
        p.close()


def test_publish_panel_request_button(conn: Connection, subject: str) -> None:
    conn.serve(f"{subject}.svc", lambda m: b"pong:" + m.data)
    p = PublishPanel(conn)
    try:
        p.subject.value = f"{subject}.svc"
        p.payload.value = "hi"
        p.request_button.click()
        wait_for(lambda: "pong:hi" in p.status.value, what="the reply in the status")
        wait_for(lambda: not p.request_button.disabled, what="the button to come back")
    finally:
        p.close()


# -- subscribe --------------------------------------------------------------------------------
def test_subscribe_panel_table_stats_and_dataframe(conn: Connection, subject: str) -> None:
    ns: dict[str, object] = {}
    p = SubscribePanel(conn, namespace=ns)
    try:
        p.subject.value = f"{subject}.>"
        p.subscribe_button.click()
        assert "subscribed" in p.status.value
        for i in range(5):
            conn.publish(f"{subject}.temp", {"v": i})
        conn.flush()
        wait_for(lambda: "{&quot;v&quot;:4}" in p.table.value, what="the newest message")
        wait_for(lambda: "<td>5</td>" in p.stats.value, what="the count")
        p.var_name.value = "captured"
        p.frame_button.click()
        frame = ns["captured"]
        assert len(frame) == 5  # type: ignore[arg-type]
        assert "captured = capture of" in p.status.value
        p.unsubscribe_button.click()
        assert "unsubscribed" in p.status.value
        wait_for(lambda: "closed" in p.stats.value, what="the closed state")
    finally:
        p.close()


def test_subscribe_panel_errors(conn: Connection) -> None:
    p = SubscribePanel(conn)
    try:
        p.subscribe_button.click()
        assert "type a subject" in p.status.value
        p.subject.value = "a.>.b"
        p.subscribe_button.click()
        assert "nb-error" in p.status.value
        p.frame_button.click()
        assert "no capture selected" in p.status.value
        assert p.subs == []
    finally:
        p.close()


# -- request ----------------------------------------------------------------------------------
def test_request_panel_reply_rtt_history_and_errors(conn: Connection, subject: str) -> None:
    conn.serve(f"{subject}.echo", lambda m: {"echo": m.json()})
    p = RequestPanel(conn)
    try:
        p.subject.value = f"{subject}.echo"
        p.format.value = "json"
        p.payload.value = '{"n": 1}'
        p.button.click()
        wait_for(lambda: "nb-rtt" in p.reply.value, what="the reply")
        assert "{&quot;echo&quot;:{&quot;n&quot;:1}}" in p.reply.value
        wait_for(lambda: f"{subject}.echo" in p.table.value and "ok" in p.table.value,
                 what="the history row")
        p.subject.value = f"{subject}.nobody"
        p.timeout.value = 0.3
        p.button.click()
        wait_for(lambda: "nb-error" in p.reply.value, what="the error")
        assert "no responders" in p.reply.value or "no reply" in p.reply.value
        res = list(p.requester.history)
        assert [r.ok for r in res] == [True, False]
        assert res[0].rtt_ms > 0
    finally:
        p.close()


# -- explorer ---------------------------------------------------------------------------------
def test_tree_layout_is_pure() -> None:
    roots = build_tree({"a.b.c": 2, "a.b": 1, "a.x": 3, "z": 1})
    assert roots["a"].count == 6 and roots["a"].children["b"].count == 3
    assert roots["a"].children["b"].is_subject
    rows = visible_rows(roots, {"a"}, lambda n: "0/s", lambda n: "v")
    assert [r["path"] for r in rows] == ["a", "a.b", "a.x", "z"]
    assert rows[1]["kids"] and not rows[1]["open"] and rows[1]["last"] == "v"
    assert rows[0]["last"] == ""  # an intermediate node has no value of its own
    assert len(visible_rows(roots, {"a", "a.b"}, lambda n: "", lambda n: "", limit=2)) == 2


def test_diff_and_numeric_fields() -> None:
    html = diff_html(b'{"a": 1, "b": 2}', b'{"b": 2, "a": 5}')
    assert '<span class="del">-  &quot;a&quot;: 1,</span>' in html
    assert '<span class="add">+  &quot;a&quot;: 5,</span>' in html
    assert "identical" in diff_html(b"x", b"x")
    assert numeric_fields(b'{"t": 1.5, "ok": true, "n": {"h": 2}, "s": "x"}') == {
        "t": 1.5, "n.h": 2.0}
    assert numeric_fields(b"42") == {"value": 42.0}
    assert numeric_fields(b"not json") == {}


def test_explorer_tree_selection_diff_and_plot(conn: Connection, subject: str) -> None:
    e = SubjectExplorer(conn, pattern=f"{subject}.>", autostart=True)
    try:
        temps = [20.5, 21.0, 20.0, 23.5]  # up and down: a measurement, not a counter
        for i in range(4):
            conn.publish(f"{subject}.site.dev1", {"temp": temps[i], "hum": 50})
            conn.publish(f"{subject}.site.dev2", f"text {i}")
        conn.flush()
        wait_for(lambda: any(r["path"] == f"{subject}.site.dev1" and r["count"] == 4
                             for r in e.tree.rows), what="the leaf in the tree")
        top = next(r for r in e.tree.rows if r["path"] == subject)
        assert top["count"] == 8 and top["open"]
        leaf = next(r for r in e.tree.rows if r["path"] == f"{subject}.site.dev2")
        assert leaf["last"] == "text 3"

        e.select(f"{subject}.site.dev1")
        wait_for(lambda: e.plot.y == temps, what="the plot")
        assert e.field.options == ("temp", "hum") and e.field.value == "temp"
        assert '+  &quot;temp&quot;: 23' in e.diff.value
        assert f"{subject}.site.dev1" in e.title.value
        # Live: a new message extends the plot in place.
        conn.publish(f"{subject}.site.dev1", {"temp": 30, "hum": 49})
        wait_for(lambda: e.plot.y[-1:] == [30.0], what="the new point")
        e.field.value = "hum"
        wait_for(lambda: e.plot.y == [50.0, 50.0, 50.0, 50.0, 49.0], what="the other field")

        # Closing a node (what the arrow does in the page) hides its children.
        e.tree.toggle(f"{subject}.site")
        wait_for(lambda: all(not r["path"].startswith(f"{subject}.site.")
                             for r in e.tree.rows), what="the collapsed node")
        # Selecting a prefix shows every message below it.
        e.select(f"{subject}.site")
        wait_for(lambda: "subjects under" in e.title.value, what="the prefix title")
        assert "text 3" in e.messages.value and "temp" in e.messages.value
        e.watch_button.click()  # stop
        assert e.sub is None
    finally:
        e.close()


# -- dashboard --------------------------------------------------------------------------------
def test_dashboard_tabs_status_and_close(dash: Dashboard, conn: Connection,
                                        subject: str) -> None:
    assert [dash.tabs.get_title(i) for i in range(5)] == [
        "Publish", "Subscribe", "Request", "Explorer", "Services"]
    wait_for(lambda: "connected" in dash.status.value and "RTT" in dash.status.value
             and "ms" in dash.status.value, what="the status line")
    assert conn.connected_url is not None and conn.connected_url in dash.status.value
    dash.subscribe.subject.value = f"{subject}.>"
    dash.subscribe.subscribe_button.click()
    dash.publish.subject.value = f"{subject}.x"
    dash.publish.payload.value = "hello"
    dash.publish.publish_button.click()
    wait_for(lambda: "hello" in dash.subscribe.table.value, what="the table")
    wait_for(lambda: any(r["path"] == f"{subject}.x" for r in dash.explorer.tree.rows),
             what="the explorer")
    assert dash.updater.errors == type(dash.updater.errors)(maxlen=20)
    dash.close()
    assert not dash.updater.running
    assert dash.explorer.sub is None


def test_dashboard_shows_closed(server: LocalServer) -> None:
    c = natsbook.connect(server.url)
    d = dashboard(c)
    try:
        c.close()
        wait_for(lambda: "closed" in d.status.value, what="the closed state")
        wait_for(lambda: not d.updater.running, what="the timer to stop")
    finally:
        d.close()


def test_subject_stats_batch_equals_per_message() -> None:
    """The explorer's batch path keeps the same counts and recent payloads (with the same
    per-subject sequence numbers) as feeding messages one by one."""
    from natsbook import Msg
    from natsbook.notebook.widgets.explorer import SubjectStats

    rows = [(f"a.{i % 3}".encode(), None, None, str(i).encode()) for i in range(500)]
    one, batched = SubjectStats(keep=10), SubjectStats(keep=10)
    for r in rows:
        one.add(Msg(r[0].decode(), r[3], time=1.0))
    batched.add_batch(rows[:123], 1.0)
    batched.add_batch(rows[123:], 1.0)
    assert one.counts(True) == batched.counts(True) == {"a.0": 167, "a.1": 167, "a.2": 166}
    for subj in ("a.0", "a.1", "a.2"):
        assert [(s, d) for _, s, _, d in one.recent(subj)] == \
            [(s, d) for _, s, _, d in batched.recent(subj)]
    capped = SubjectStats(max_subjects=2)
    capped.add_batch(rows, 1.0)
    assert len(capped.counts(True)) == 2 and capped.untracked > 0 and capped.total == 500
