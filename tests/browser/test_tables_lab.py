"""End-to-end: every kind of table natsbook shows, as a user sees it in JupyterLab at 1400 px.

Reuses the JupyterLab and chromium fixtures of ``test_lab.py`` and runs
``notebooks/tables.ipynb``: ``connz`` of 32 clients, ``varz`` and ``jsz`` reports, streams,
consumers, a KV bucket, a service's stats, ``%nats_subs`` and closed connections, over the
notebook's own embedded server. The checks measure the page, not the HTML string: no header
or cell wraps a token, no table scrolls sideways, no pandas truncation, no nanoseconds or
``0 days`` in sight, every connection row is there. Screenshots go to
``artifacts/screenshots/tables-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from test_lab import (  # noqa: F401
    SHOTS,
    WRAPPED_JS,
    chromium,
    lab,
    loopback_page,
    run_all_cells,
)

pytestmark = pytest.mark.browser

#: Elements whose text is cut (wider than their box).
CLIPPED_JS = "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"


@pytest.fixture(scope="module")
def tables_page(lab: str, chromium: str,  # noqa: F811 (the imported fixtures)
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import expect

    with loopback_page(chromium, tmp_path_factory.mktemp("profile-tables")) as pg:
        pg.goto(f"{lab}/lab/tree/tables.ipynb?reset")
        pg.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)
        run_all_cells(pg)
        # the last cell's output: the connections closed at the end (~5 s of cells)
        expect(pg.locator(".jp-OutputArea-output", has_text="Client Closed")).to_have_count(
            1, timeout=90_000)
        yield pg
        pg.screenshot(path=str(SHOTS / "tables-final.png"), full_page=True)


def _cell(page: Any, source: str) -> Any:
    """The output area of the cell whose source contains `source`."""
    cell = page.locator(".jp-CodeCell").filter(
        has=page.locator(".jp-InputArea", has_text=source)).first
    cell.evaluate("e => e.scrollIntoView({block: 'start'})")
    return cell.locator(".jp-OutputArea")


def test_no_table_wraps_scrolls_or_truncates(tables_page: Any) -> None:
    page = tables_page
    notebook = page.locator(".jp-Notebook")
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, errors.all_inner_texts()
    frames = page.locator(".nb-frame")
    assert frames.count() >= 7  # connz, streams, consumers, kv, services, subs, closed
    assert page.locator("table.dataframe").count() == 0  # no table left to pandas' display
    for i in range(frames.count()):
        frame = frames.nth(i)
        frame.scroll_into_view_if_needed()
        # the whole table is visible: no scrollbar of its own, nothing past the output area
        widths = frame.evaluate(
            "e => [e.scrollWidth, e.clientWidth, e.getBoundingClientRect().right,"
            " e.closest('.jp-OutputArea-output').getBoundingClientRect().right]")
        assert widths[0] <= widths[1] + 1 and widths[2] <= widths[3] + 1, \
            f"frame {i} scrolls sideways {widths}: {frame.inner_text()[:200]}"
        assert frame.locator("th").evaluate_all(WRAPPED_JS) == [], f"frame {i}: header wraps"
        assert frame.locator("th").evaluate_all(CLIPPED_JS) == [], f"frame {i}: header cut"
        assert frame.locator("td").evaluate_all(WRAPPED_JS) == [], f"frame {i}: cell wraps"
    reports = page.locator(".nb-report")
    assert reports.count() >= 2  # varz, jsz
    assert reports.locator("th, td, caption").evaluate_all(WRAPPED_JS) == []
    text = notebook.inner_text()
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{4,}", text), "times beyond milliseconds"
    assert "0 days" not in text and "NaT" not in text and "rows \u00d7" not in text
    assert not re.search(r"\bNone\b", text)


def test_connz_shows_every_connection_and_no_empty_column(tables_page: Any) -> None:
    out = _cell(tables_page, "%nats_server connz")
    frame = out.locator(".nb-frame")
    note = frame.locator(".nb-note").inner_text()
    rows = int(re.match(r"([\d,]+) rows", note).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert rows == 32  # the notebook's two connections, the magics' one... and 30 clients
    assert frame.locator("tbody tr").count() == rows
    for i in range(30):
        assert frame.locator("td", has_text=re.compile(rf"^client-{i:02d}$")).count() == 1
    headers = frame.locator("thead th").all_inner_texts()
    assert "stop" not in headers and "reason" not in headers
    assert "stop, reason: empty in every row" in note
    # durations for humans, ports and ids without separators, counts with them
    rtt = frame.locator("tbody tr").first.locator("td").nth(headers.index("rtt") - 1)
    assert re.fullmatch(r"\d+(\.\d+)? (ns|µs|ms|s)", rtt.inner_text()), rtt.inner_text()
    ports = frame.locator(f"tbody tr td:nth-child({headers.index('port') + 1})")
    assert all("," not in p for p in ports.all_inner_texts())
    assert frame.locator("td", has_text=re.compile(r"^29,000$")).count() == 2  # in/out bytes
    frame.screenshot(path=str(SHOTS / "tables-connz.png"))


def test_varz_and_jsz_are_grouped_reports(tables_page: Any) -> None:
    page = tables_page
    url = _cell(page, "server = natsbook.local_server()").inner_text()
    port = re.search(r"http://127\.0\.0\.1:(\d+)", url).group(1)  # type: ignore[union-attr]
    varz = _cell(page, "%nats_server varz").locator(".nb-report")
    http_port = varz.locator("tr", has=page.locator("th", has_text=re.compile("^http_port$")))
    assert http_port.locator("td").inner_text() == port  # the real port, not -1
    uptime = varz.locator("tr", has=page.locator("th", has_text=re.compile("^uptime$")))
    assert re.fullmatch(r"\d+(\.\d+)? s|\d+m \d\ds", uptime.locator("td").inner_text())
    varz.screenshot(path=str(SHOTS / "tables-varz.png"))
    jsz = _cell(page, "mon.jsz()").locator(".nb-report")
    captions = jsz.locator("caption").all_inner_texts()
    assert {"JetStream usage", "API", "Config"} <= set(captions), captions
    jsz.screenshot(path=str(SHOTS / "tables-jsz.png"))


def test_services_show_human_durations(tables_page: Any) -> None:
    frame = _cell(tables_page, "%nats_services").locator(".nb-frame")
    headers = frame.locator("thead th").all_inner_texts()
    avg = frame.locator("tbody tr").first.locator("td").nth(
        headers.index("average_processing_time") - 1).inner_text()
    assert re.fullmatch(r"\d+(\.\d+)? (ns|µs|ms)", avg), avg
    frame.screenshot(path=str(SHOTS / "tables-services.png"))
    for source, name in (("%nats_streams", "streams"), ("%nats_consumers", "consumers"),
                         ("%nats_kv", "kv"), ("%nats_subs", "subs"),
                         ("%nats_server closed", "closed")):
        _cell(tables_page, source).locator(".nb-frame").screenshot(
            path=str(SHOTS / f"tables-{name}.png"))
