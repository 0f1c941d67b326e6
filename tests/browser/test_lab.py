"""End-to-end: the dashboard in a real JupyterLab, driven by Playwright with Debian's chromium.

JupyterLab runs headless on 127.0.0.1 over a temp copy of ``notebooks/dashboard.ipynb``, with
``NATS_URL`` pointing at the test server. The test types into the panels, publishes and serves
from its own natsbook connection, and checks what the page shows. Screenshots go to
``artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

import natsbook
from natsbook import LocalServer

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


#: Elements whose text (every text node in them) lies on more than one line: a wrapped token.
WRAPPED_JS = """els => els.filter(e => {
    const tops = new Set();
    const walk = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
        const r = document.createRange();
        r.selectNodeContents(t);
        for (const x of r.getClientRects()) if (x.width > 0) tops.add(Math.round(x.top));
    }
    return tops.size > 1;
}).map(e => e.textContent)"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_settings(settings: Path) -> None:
    files = {
        "apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker.jupyterlab-settings":
            {"windowingMode": "none", "autoStartDefaultKernel": True},
        "docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    }
    for rel, content in files.items():
        path = settings / "@jupyterlab" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        proc = subprocess.run(["sh", str(HERE / "ensure_chromium.sh")], check=False,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"chromium is missing and could not be installed: {proc.stderr}")
    return CHROMIUM


@pytest.fixture(scope="module")
def lab(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on a free loopback port over a temp copy of the fixture notebooks."""
    tmp = tmp_path_factory.mktemp("lab")
    work = tmp / "notebooks"
    shutil.copytree(HERE / "notebooks", work)
    settings = tmp / "settings"
    _write_settings(settings)
    port = _free_port()
    env = {**os.environ, "NATS_URL": server.url,
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTER_CONFIG_DIR": str(tmp / "config")}
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.open_browser=False", f"--ServerApp.root_dir={work}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root"]
    log = (tmp / "lab.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def loopback_page(chromium: str, profile: Path, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium page, 1400 x `height`. On exit it checks that the page only talked
    to the loopback JupyterLab (data and everything else; nothing from the internet)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    hosts: set[str] = set()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": height})
        try:
            pg = ctx.pages[0] if ctx.pages else ctx.new_page()
            pg.on("request", lambda req: hosts.add(_host(req.url)))
            if os.environ.get("NB_DEBUG_CONSOLE"):
                pg.on("console", lambda m: print("console:", m.type, m.text))
            yield pg
        finally:
            ctx.close()
    assert hosts <= {"127.0.0.1"}, f"the page talked to {sorted(hosts)}"


def run_all_cells(pg: Any) -> None:
    """Once the notebook on the page is open and its kernel idle: Run > Run All Cells."""
    from playwright.sync_api import expect

    expect(pg.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)
    pg.locator(".lm-MenuBar-itemLabel", has_text="Run").filter(
        has_text=re.compile(r"^Run$")).click()
    pg.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(r"^Run All Cells$")).click()


@pytest.fixture(scope="module")
def page(lab: str, chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Chromium page showing the running dashboard notebook; checks it only used loopback."""
    from playwright.sync_api import expect

    with loopback_page(chromium, tmp_path_factory.mktemp("profile")) as pg:
        pg.goto(f"{lab}/lab/tree/dashboard.ipynb?reset")
        pg.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)
        run_all_cells(pg)
        expect(pg.locator(".nb-dashboard")).to_be_visible(timeout=60_000)
        expect(pg.locator(".nb-status")).to_contain_text("connected", timeout=20_000)
        yield pg
        pg.screenshot(path=str(SHOTS / "lab-final.png"))


def _host(url: str) -> str:
    """Host a request went to; blob: URLs (anywidget's modules) belong to their origin."""
    if url.startswith("blob:"):
        url = url[len("blob:"):]
    if url.startswith("data:"):
        return "127.0.0.1"  # inline data, no network
    return urlparse(url).hostname or url


def _tab(page: Any, title: str) -> None:
    page.locator(".nb-tabs .lm-TabBar-tab", has_text=title).first.click()


def test_subscribe_shows_messages_in_table_and_tree(page: Any, server: LocalServer) -> None:
    from playwright.sync_api import expect

    root = f"e2e{uuid.uuid4().hex[:8]}"
    _tab(page, "Subscribe")
    page.locator(".nb-sub-subject input").fill(f"{root}.>")
    page.locator(".nb-sub-button").click()
    expect(page.locator(".nb-sub-status")).to_contain_text(f"subscribed to {root}.>",
                                                           timeout=15_000)
    # The explorer watches only once started, on the pattern typed into it.
    _tab(page, "Explorer")
    expect(page.locator(".nb-exp-summary")).to_contain_text("not watching", timeout=15_000)
    page.locator(".nb-exp-pattern input").fill(f"{root}.>")
    page.locator(".nb-exp-watch").click()
    expect(page.locator(".nb-exp-summary")).to_contain_text(f"watching {root}.>",
                                                            timeout=15_000)
    # ...and says, while it watches, what that does to requests (issue 26)
    expect(page.locator(".nb-exp-warning")).to_contain_text("no responders", timeout=15_000)
    _tab(page, "Subscribe")
    with natsbook.connect(server.url) as pub:
        for i in range(6):
            pub.publish(f"{root}.sensor.temp", {"temp": 20.5 + i, "unit": "C"})
            pub.publish(f"{root}.sensor.door", "open" if i % 2 else "closed")
            pub.flush()
            time.sleep(0.15)  # spread over time so the plot has distinct x values
    table = page.locator(".nb-sub-table")
    expect(table).to_contain_text(f"{root}.sensor.temp", timeout=15_000)
    expect(table).to_contain_text('"temp":25.5', timeout=15_000)
    expect(page.locator(".nb-sub-stats")).to_contain_text("12", timeout=15_000)
    page.locator(".nb-subscribe").screenshot(path=str(SHOTS / "subscribe.png"))

    _tab(page, "Explorer")
    tree = page.locator(".nb-exp-tree")
    leaf = tree.locator(f'.nb-tree-row[data-path="{root}.sensor.temp"]')
    expect(leaf).to_be_visible(timeout=15_000)
    expect(leaf).to_contain_text("6 msgs")
    expect(tree.locator(f'.nb-tree-row[data-path="{root}"]')).to_contain_text("12 msgs")
    leaf.locator(".nb-tree-name").click()
    expect(page.locator(".nb-exp-title")).to_contain_text(f"{root}.sensor.temp",
                                                          timeout=15_000)
    expect(page.locator(".nb-exp-diff")).to_contain_text('+  "temp": 25.5', timeout=15_000)
    expect(page.locator(".nb-plot-last")).to_contain_text("last 25.5 (6 points)",
                                                          timeout=15_000)
    # nice y ticks for 20.5 .. 25.5, not the padded extremes (issue 26)
    expect(page.locator(".nb-plot-tick")).to_have_text(["20", "22", "24", "26"],
                                                       timeout=15_000)
    # Collapse the sensor node from the page: its children disappear.
    tree.locator(f'.nb-tree-row[data-path="{root}.sensor"] .nb-tree-toggle').click()
    expect(leaf).to_have_count(0, timeout=15_000)
    tree.locator(f'.nb-tree-row[data-path="{root}.sensor"] .nb-tree-toggle').click()
    expect(leaf).to_be_visible(timeout=15_000)
    page.locator(".nb-explorer").screenshot(path=str(SHOTS / "explorer.png"))


def test_request_shows_reply(page: Any, server: LocalServer) -> None:
    from playwright.sync_api import expect

    svc = f"svc{uuid.uuid4().hex[:8]}.echo"
    with natsbook.connect(server.url) as responder:
        responder.serve(svc, lambda m: {"echo": m.data.decode(), "by": "test"})
        _tab(page, "Request")
        page.locator(".nb-req-subject input").fill(svc)
        page.locator(".nb-req-payload textarea").fill("ping-42")
        page.locator(".nb-req-button").click()
        reply = page.locator(".nb-req-reply")
        expect(reply).to_contain_text('"echo":"ping-42"', timeout=15_000)
        expect(reply).to_contain_text("ms")
        expect(page.locator(".nb-req-history")).to_contain_text(svc)
        page.locator(".nb-request").screenshot(path=str(SHOTS / "request.png"))

        # A request nobody answers shows an error in the panel, not a traceback (the
        # explorer watches another pattern: the server answers "no responders").
        page.locator(".nb-req-subject input").fill(f"{svc}.nobody")
        page.locator(".nb-request .widget-text", has_text="Timeout s").locator("input").fill(
            "0.5")
        page.locator(".nb-req-button").click()
        expect(reply.locator(".nb-error")).to_contain_text(
            re.compile(r"no responders|no reply"), timeout=15_000)
        expect(page.locator(".nb-req-history")).to_contain_text("error")


def test_publish_panel_validates_and_publishes(page: Any, server: LocalServer) -> None:
    from playwright.sync_api import expect

    subj = f"pub{uuid.uuid4().hex[:8]}.cmd"
    with natsbook.connect(server.url) as listener:
        sub = listener.subscribe(subj)
        _tab(page, "Publish")
        page.locator(".nb-pub-subject input").fill(subj)
        page.locator(".nb-publish .widget-toggle-button", has_text="json").click()
        page.locator(".nb-pub-payload textarea").fill('{"on": tru')
        expect(page.locator(".nb-pub-info")).to_contain_text("not valid JSON", timeout=15_000)
        page.locator(".nb-pub-payload textarea").fill('{"on": true}')
        expect(page.locator(".nb-pub-info")).to_contain_text("valid JSON, 12 bytes",
                                                             timeout=15_000)
        page.locator(".nb-pub-button").click()
        expect(page.locator(".nb-pub-status")).to_contain_text("published #1",
                                                               timeout=15_000)
        deadline = time.monotonic() + 10
        while sub.received < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sub.last_msg is not None and sub.last_msg.json() == {"on": True}
        page.locator(".nb-publish").screenshot(path=str(SHOTS / "publish.png"))
        page.screenshot(path=str(SHOTS / "dashboard.png"))
