"""End-to-end: live views (``sub.live``) in a real JupyterLab, in headless Debian chromium.

Reuses the JupyterLab and chromium fixtures of ``test_lab.py`` and opens
``notebooks/live.ipynb``: a SQL table, a matplotlib chart and a view whose function raises,
over ``e2elive.>``. The test publishes from its own connection and watches the page update
while no cell runs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_lab import SHOTS, chromium, lab, loopback_page, run_all_cells  # noqa: F401

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
        expect(pg.locator(".nb-live")).to_have_count(3, timeout=60_000)
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
