"""The Services tab: discovery off the kernel's thread, endpoints to pick, a request sent to one
and its reply (or the service's error) shown."""

from __future__ import annotations

import uuid

from natsbook import Connection
from natsbook.errors import ServiceError
from natsbook.notebook.widgets import ServicesPanel, dashboard
from natsbook.notebook.widgets.services import services_html
from tests.support.waiting import wait_for


def test_services_panel_lists_and_calls_an_endpoint(conn: Connection, subject: str) -> None:
    name = f"svc_{uuid.uuid4().hex[:8]}"

    def fail(msg: object) -> None:
        raise ServiceError(subject, 409, "conflict")

    svc = conn.add_service(name, "2.0.0")
    svc.endpoint("double", lambda m: {"twice": m.json()["n"] * 2}, subject=f"{subject}.double")
    svc.endpoint("fail", fail, subject=f"{subject}.fail")
    panel = ServicesPanel(conn, timeout=0.5)
    try:
        assert panel.refresh()
        wait_for(lambda: name in panel.table.value, what="the service in the table")
        assert "double" in panel.table.value and f"{subject}.fail" in panel.table.value
        subjects = [v for _label, v in panel.endpoint.options]
        assert f"{subject}.double" in subjects and f"{subject}.fail" in subjects
        panel.endpoint.value = f"{subject}.double"
        panel.format.value = "json"
        panel.payload.value = '{"n": 21}'
        panel.send.click()
        wait_for(lambda: "twice" in panel.reply.value, what="the reply")
        assert "42" in panel.reply.value
        panel.endpoint.value = f"{subject}.fail"
        panel.send.click()
        wait_for(lambda: "conflict" in panel.reply.value, what="the error reply")
        assert "409" in panel.reply.value
        assert panel.wait_idle()
        panel.refresh()
        wait_for(lambda: panel.frame is not None and panel.frame["requests"].sum() >= 2,
                 what="the refreshed counters")
        counts = panel.frame.set_index("endpoint")
        assert counts.loc["double", "requests"] == 1 and counts.loc["fail", "errors"] == 1
    finally:
        panel.close()
        svc.stop()


def test_empty_table_and_dashboard_tab(conn: Connection) -> None:
    assert "no services answered" in services_html(conn.services(f"none_{uuid.uuid4().hex}"))
    d = dashboard(conn)
    try:
        assert isinstance(d.services, ServicesPanel)
        d.services.send.click()  # nothing discovered yet: a hint, not a traceback
        assert "pick an endpoint" in d.services.reply.value
    finally:
        d.close()
