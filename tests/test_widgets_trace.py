"""The Trace tab: one traced message drawn server by server (off the kernel's thread), on one
server and across a three-node cluster's routes; bad input is a message in the panel."""

from __future__ import annotations

from xml.etree import ElementTree

import orjson

import natsbook
from natsbook import Connection
from natsbook import jetstream as js
from natsbook.notebook.widgets import TracePanel, dashboard
from natsbook.notebook.widgets.trace import trace_svg
from natsbook.ops import trace_rows
from tests.support.clusters import sys_cluster
from tests.support.waiting import wait_for


def test_trace_panel_draws_the_path(conn: Connection, server: natsbook.LocalServer,
                                    subject: str) -> None:
    stream = f"W{subject[1:9]}".upper()
    js.add_stream(conn, stream, [f"{subject}.>"])
    with natsbook.connect(server.url, name="watcher") as other:
        sub = other.subscribe(f"{subject}.>")
        other.flush()
        panel = TracePanel(conn)
        try:
            panel.go.click()
            assert "enter a subject" in panel.drawing.value
            panel.subject.value = f"{subject}.x"
            panel.headers.value = "no colon here"
            panel.go.click()
            assert "Key: value" in panel.drawing.value
            panel.headers.value = "X-Trace-Me: yes"
            panel.payload.value = "hello"
            assert panel.trace()
            wait_for(lambda: "<svg" in panel.drawing.value, what="the drawing")
            assert "client watcher" in panel.drawing.value
            assert f"stream {stream}" in panel.drawing.value
            assert "ingress" in panel.events.value and "egress" in panel.events.value
            assert panel.wait_idle()
            other.flush()
            assert len(sub.to_pandas()) == 0  # trace only by default
            assert conn.stream_info(stream)["state"]["messages"] == 0
            panel.deliver.value = True
            panel.trace()
            wait_for(lambda: len(sub.to_pandas()) == 1, what="the delivered message")
        finally:
            panel.close()


def test_dashboard_has_a_trace_tab(conn: Connection) -> None:
    d = dashboard(conn)
    try:
        assert isinstance(d.trace, TracePanel) and "Trace" in d.tabs.titles
    finally:
        d.close()


def test_path_across_routes_is_drawn_server_to_server(subject: str) -> None:
    with sys_cluster() as cluster:
        n1, _, n3 = cluster.nodes
        with natsbook.connect(n1.url, user="app", password="app") as a, \
                natsbook.connect(n3.url, user="app", password="app", name="far") as b:
            b.subscribe(f"{subject}.x")
            b.flush()
            wait_for(lambda: "far" in set(a.trace(f"{subject}.x", deliver=False)["name"]
                                          .dropna()), what="interest across the route")
            svg = trace_svg(a.trace(f"{subject}.x", deliver=False))
    root = ElementTree.fromstring(svg)  # well-formed SVG
    assert root.tag.endswith("svg") and int(root.get("width", "0")) > 0
    assert svg.count("<rect") >= 2 and ">n1<" in svg and ">n3<" in svg
    assert ">route<" in svg and "client far" in svg


def test_hostile_names_are_escaped() -> None:
    event = {"server": {"name": "<b>&evil"}, "request": {}, "events": [
        {"type": "in", "ts": "2026-01-01T00:00:00Z", "kind": 0, "cid": 1, "acc": "A",
         "subj": "x", "name": "<script>"},
        {"type": "eg", "ts": "2026-01-01T00:00:01Z", "kind": 0, "cid": 2, "sub": "x",
         "name": "\"quoted\" & <tag>", "error": "<boom>"}]}
    frame, _ = trace_rows([orjson.dumps(event), b"<not json>"])
    svg = trace_svg(frame)
    ElementTree.fromstring(svg)  # still well-formed
    assert "<script>" not in svg and "&lt;b&gt;&amp;evil" in svg and "&lt;boom&gt;" in svg
