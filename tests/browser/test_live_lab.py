"""End-to-end: live views (``sub.live``) in a real JupyterLab, in headless Debian chromium.

Reuses the JupyterLab and chromium fixtures of ``test_lab.py`` and opens
``notebooks/live.ipynb``: a SQL table, a matplotlib chart and a view whose function raises,
over ``e2elive.>``; then two views side by side as 06-live-analysis shows them, and a view
whose title is too long for its half of the row. The test publishes from its own connection
and watches the page update while no cell runs, and measures the layout at 1400 px: titles on
one line (an ellipsis and a tooltip only when too long), Stop buttons never cut, the status
said once, side-by-side views sharing the row without spilling.
"""

from __future__ import annotations

import time
import uuid
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

import natsbook
from natsbook import LocalServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live_page(lab: str, chromium: str,  # noqa: F811 (the imported fixtures)
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import expect

    with loopback_page(chromium, tmp_path_factory.mktemp("profile-live"), height=1400) as pg:
        pg.goto(f"{lab}/lab/tree/live.ipynb?reset")
        pg.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)
        run_all_cells(pg)
        expect(pg.locator(".nb-live")).to_have_count(7, timeout=60_000)
        yield pg
        pg.screenshot(path=str(SHOTS / "live-final.png"))


def test_live_views_refresh_in_the_page(live_page: Any, server: LocalServer) -> None:
    from playwright.sync_api import expect

    page = live_page
    site = f"site{uuid.uuid4().hex[:8]}"
    table = page.locator(".nb-live-table")
    plot = page.locator(".nb-live-plot")
    failing = page.locator(".nb-live-failing")
    expect(table.locator(".nb-live-status")).to_contain_text("live", timeout=30_000)
    with natsbook.connect(server.url) as pub:
        for i in range(3):
            pub.publish(f"e2elive.{site}", {"site": site, "temp": 20.0 + i})
            pub.flush()
            time.sleep(0.2)
        # The SQL table shows the new site and its count, with no cell running.
        count = table.locator(".nb-live-output tr", has_text=site).locator("td").last
        expect(count).to_have_text("3", timeout=20_000)
        # The chart is a PNG drawn on the view's thread.
        expect(plot.locator(".nb-live-output img")).to_be_visible(timeout=20_000)
        # The function that raises shows its error in place and keeps going.
        expect(failing.locator(".nb-live-error")).to_contain_text("ValueError: boom at",
                                                                  timeout=20_000)
        page.locator(".nb-live").first.screenshot(path=str(SHOTS / "live-table.png"))
        page.screenshot(path=str(SHOTS / "live.png"))

        # Stop from the page: the table stays as it was while messages keep arriving.
        table.locator(".nb-live-stop").click()
        expect(table.locator(".nb-live-status")).to_contain_text("stopped", timeout=20_000)
        expect(table.locator(".nb-live-stop")).to_be_disabled()
        pub.publish(f"e2elive.{site}", {"site": site, "temp": 30.0})
        pub.flush()
        expect(failing.locator(".nb-live-error")).to_contain_text("boom at 4 rows",
                                                                  timeout=20_000)
        expect(count).to_have_text("3")




def test_side_by_side_views_lay_out_at_1400px(live_page: Any, server: LocalServer) -> None:
    from playwright.sync_api import expect

    page = live_page
    row = page.locator(".nb-side")
    table, plot = page.locator(".nb-side-table"), page.locator(".nb-side-plot")
    with natsbook.connect(server.url) as pub:
        for i in range(3):
            pub.publish(f"e2elive.side{i}", {"site": f"side{i}", "temp": 20.0 + i})
        pub.flush()
    expect(table.locator(".nb-live-output")).to_contain_text("side2", timeout=20_000)
    expect(plot.locator(".nb-live-output img")).to_be_visible(timeout=20_000)
    row.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # the image's layout settles
    row.screenshot(path=str(SHOTS / "live-side-by-side.png"))
    # Side by side, sharing the row evenly, nothing past the output area.
    t, p = table.bounding_box(), plot.bounding_box()
    area = row.evaluate("e => e.closest('.jp-OutputArea-output').getBoundingClientRect().right")
    assert abs(t["y"] - p["y"]) < 2 and t["x"] + t["width"] <= p["x"] + 1
    assert p["x"] + p["width"] <= area + 1
    assert abs(t["width"] - p["width"]) < 0.1 * t["width"]
    for view in (table, plot):
        sizes = view.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert sizes[0] <= sizes[1] + 1, f"content spills: {sizes}"
    img = plot.locator(".nb-live-output img").bounding_box()
    assert img["x"] + img["width"] <= p["x"] + p["width"] + 1
    # Titles on one line and whole; the Stop button's text never cut; status on one line.
    views = page.locator(".nb-live")
    assert views.locator(".nb-live-title-text").evaluate_all(WRAPPED_JS) == []
    assert views.locator(".nb-live-status").evaluate_all(WRAPPED_JS) == []
    for title in (table, plot):
        text = title.locator(".nb-live-title-text")
        assert text.evaluate("e => e.scrollWidth <= e.clientWidth"), text.inner_text()
    stops = views.locator(".nb-live-stop")
    assert stops.evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth)"
                              ".map(e => e.textContent)") == []
    assert set(stops.all_inner_texts()) == {"Stop"}
    # A title too long for its half: one line, an ellipsis, the whole title as tooltip.
    long_title = page.locator(".nb-long-title .nb-live-title-text")
    assert long_title.evaluate("e => e.scrollWidth > e.clientWidth"
                               " && getComputedStyle(e).textOverflow == 'ellipsis'")
    assert long_title.get_attribute("title").startswith("a title far too long")
    assert long_title.get_attribute("title").endswith("readings per site and device")
    # natsbook's table display in a view too, with or without %load_ext natsbook
    assert table.locator(".nb-live-output .nb-frame").count() == 1
    page.locator(".nb-long-title").screenshot(path=str(SHOTS / "live-long-title.png"))
    # Stopped from the page: said once.
    table.locator(".nb-live-stop").click()
    expect(table.locator(".nb-live-status")).to_contain_text("■ stopped ·", timeout=20_000)
    assert "(stopped)" not in table.locator(".nb-live-status").inner_text()
