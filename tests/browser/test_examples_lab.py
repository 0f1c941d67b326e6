"""End-to-end: every example notebook, Run All, in the JupyterLab that ``natsbook lab`` starts.

``natsbook lab --no-browser`` runs as a new user would start it (its nats-server, its
simulator, its JupyterLab settings) over a temp copy of ``notebooks/``. Headless Debian
chromium at 1400x1000 opens each example, runs all cells and checks that no cell shows an
error or anything on stderr. 01-quickstart's dashboard must stay live; with it open in that
kernel, a request to an unserved subject still fails with no responders within 1 s; then its
explorer watches ``>`` while every other example runs (they must pass all the same).
Screenshots of the dashboard's tabs, the explorer on a telemetry subject, a capture frame and
``%nats_server varz`` go to ``artifacts/screenshots/`` (kept out of the repo). The page must
log no console error on the way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_lab import SHOTS, chromium, loopback_page, run_all_cells  # noqa: F401 (fixture)

import natsbook
from natsbook.errors import NoRespondersError

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parent.parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT_MS = 240_000
#: A notebook's tab in JupyterLab's main area (not a widget's Tab inside an output).
DOC_TAB = '#jp-main-dock-panel .lm-TabBar-tab[data-type="document-title"]'


@pytest.fixture(scope="module")
def natsbook_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``natsbook lab`` on a free port over a copy of the examples; its ready-file info."""
    tmp = tmp_path_factory.mktemp("natsbook-lab")
    work = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)
    settings = tmp / "settings" / "@jupyterlab"
    # Only what a test needs (no kernel picker dialog, no autosave); the news toast must be
    # kept away by `natsbook lab` itself.
    for rel, content in {
        "notebook-extension/tracker.jupyterlab-settings":
            {"windowingMode": "none", "autoStartDefaultKernel": True},
        "docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    }.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    ready = tmp / "ready.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("NATS_URL", "NATSBOOK_MONITOR_URL")}
    env.update(JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"))
    log = (tmp / "natsbook-lab.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "natsbook.lab.cli", "lab", "--no-browser", "--port", "0", "--quiet",
         "--notebook-dir", str(work), "--ready-file", str(ready)],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("natsbook lab did not start:\n"
                            + (tmp / "natsbook-lab.log").read_text()[-3000:])
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go, but give the writer a moment
        yield json.loads(ready.read_text())
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does: it stops lab, simulator, server
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def lab_page(natsbook_lab: dict[str, Any], chromium: str,  # noqa: F811 (imported fixture)
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with loopback_page(chromium, tmp_path_factory.mktemp("profile-examples")) as pg:
        yield pg


def _run_all(page: Any, lab: dict[str, Any], name: str) -> Any:
    """Open `name`, Run All, wait until every cell has run; the notebook panel."""
    from playwright.sync_api import expect

    if not page.url.startswith(lab["lab_url"]):
        page.goto(f"{lab['lab_url']}/lab/tree/{name}?reset&token={lab['token']}")
    else:  # open it from the file browser: no reload, the notebooks open before stay live
        page.locator(".jp-DirListing-item", has_text=name).first.dblclick()
        expect(page.locator(f"{DOC_TAB}.lm-mod-current")).to_contain_text(name, timeout=30_000)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").last
    panel.locator(".jp-Notebook").wait_for(timeout=60_000)
    run_all_cells(page)
    code_cells = panel.locator(".jp-CodeCell")
    n = code_cells.count()
    assert n > 0, f"{name}: no code cells"
    # Every code cell shows its execution count once it has run ([*] while queued/running).
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while True:
        prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        if all(re.fullmatch(r"\s*\[\d+\]:\s*", t) for t in prompts):
            break
        errors = _errors(panel)
        if errors:
            pytest.fail(f"{name}: error output while running:\n" + "\n---\n".join(errors))
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: cells still not run after {RUN_TIMEOUT_MS / 1000:g} s: "
                        f"{prompts}")
        time.sleep(0.5)
    return panel


def _errors(panel: Any) -> list[str]:
    outs = panel.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    return [t[:2000] for t in outs.all_inner_texts()]


def _fits_without_scrolling(el: Any) -> bool:
    return bool(el.evaluate(
        "e => { const o = e.closest('.jp-OutputArea-output') || e;"
        " return o.scrollWidth <= o.clientWidth + 1; }"))


def _tab(page: Any, title: str) -> None:
    page.locator(".nb-tabs .lm-TabBar-tab", has_text=title).first.click()


def test_every_example_runs_clean(lab_page: Any, natsbook_lab: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page = lab_page
    # Every error the page logs (issue 26: "Cannot read properties of null (reading
    # 'processLuminoMessage')" from a widget view whose model was closed).
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"uncaught: {e}"))
    assert "01-quickstart.ipynb" in EXAMPLES and len(EXAMPLES) >= 6
    # 01 first: its dashboard stays live in that kernel while the others run.
    first = _run_all(page, natsbook_lab, "01-quickstart.ipynb")
    assert not _errors(first), _errors(first)
    assert not console, "01-quickstart.ipynb: console errors:\n" + "\n".join(console)
    dash = first.locator(".nb-dashboard")
    expect(dash).to_be_visible(timeout=30_000)
    status = dash.locator(".nb-status")
    expect(status).to_contain_text("connected", timeout=20_000)
    expect(status).to_contain_text(re.compile(r"RTT \d+\.\d+ ms"), timeout=20_000)  # its timer
    # The %nats_sub line is live and alone (no frozen Subscription repr under it); the
    # pretty %nats_req reply has no raw Msg(...) under it.
    sub_cell = first.locator(".jp-CodeCell").filter(has_text="%nats_sub demo.magic.>")
    expect(sub_cell.locator(".jp-OutputArea")).to_contain_text("demo.magic.>")
    assert "Subscription(" not in sub_cell.locator(".jp-OutputArea").inner_text()
    req_cell = first.locator(".jp-CodeCell").filter(has_text="%nats_req demo.upper")
    assert "Msg(" not in req_cell.locator(".jp-OutputArea").inner_text()
    # No "get notified about Jupyter news" toast.
    assert page.get_by_text(re.compile("Jupyter news", re.I)).count() == 0

    dash.scroll_into_view_if_needed()
    for title, cls in (("Publish", "publish"), ("Subscribe", "subscribe"),
                       ("Request", "request"), ("Explorer", "explorer")):
        _tab(page, title)
        if title == "Subscribe":  # the captures made in code are listed
            expect(dash.locator(".nb-sub-stats")).to_contain_text("demo.greetings",
                                                                  timeout=15_000)
        if title == "Explorer":
            expect(dash.locator(".nb-exp-summary")).to_contain_text("not watching",
                                                                    timeout=15_000)
        page.wait_for_timeout(600)
        dash.screenshot(path=str(SHOTS / f"examples-dashboard-{cls}.png"))

    # The explorer on the simulator's telemetry, a subject selected.
    dash.locator(".nb-exp-pattern input").fill("telemetry.>")
    dash.locator(".nb-exp-watch").click()
    expect(dash.locator(".nb-exp-summary")).to_contain_text("watching telemetry.>",
                                                            timeout=15_000)
    leaf = dash.locator('.nb-tree-row[data-path="telemetry.berlin.th-001"]')
    expect(leaf).to_be_visible(timeout=20_000)
    leaf.locator(".nb-tree-name").click()
    expect(dash.locator(".nb-exp-title")).to_contain_text("telemetry.berlin.th-001",
                                                          timeout=15_000)
    expect(dash.locator(".nb-exp-field select")).to_have_value("temperature", timeout=15_000)
    expect(dash.locator(".nb-plot-last")).to_contain_text(re.compile(r"\(\d+ points?\)"),
                                                          timeout=15_000)
    page.wait_for_timeout(4000)  # a few readings: the plot and the rates settle
    dash.locator(".nb-explorer").screenshot(path=str(SHOTS / "examples-explorer-telemetry.png"))

    # With that dashboard open (and its explorer watching telemetry.>), an unserved subject
    # still gets "no responders" at once, from any connection.
    with natsbook.connect(natsbook_lab["nats_url"]) as other:
        start = time.monotonic()
        with pytest.raises(NoRespondersError):
            other.request("nobody.home.e2e", "hi", timeout=5)
        assert time.monotonic() - start < 1.0

    # Now the explorer watches everything, as a new user's would (issue 26): every subject has
    # a listener, so no request gets "no responders" - and every other example must still
    # pass Run All. The panel says so in a warning box.
    dash.locator(".nb-exp-watch").click()  # stop telemetry.>
    expect(dash.locator(".nb-exp-summary")).to_contain_text("not watching", timeout=15_000)
    dash.locator(".nb-exp-pattern input").fill(">")
    dash.locator(".nb-exp-watch").click()
    expect(dash.locator(".nb-exp-summary")).to_contain_text("watching >", timeout=15_000)
    expect(dash.locator(".nb-exp-warning")).to_contain_text("no responders", timeout=15_000)

    for name in EXAMPLES:
        if name == "01-quickstart.ipynb":
            continue
        panel = _run_all(page, natsbook_lab, name)
        errors = _errors(panel)
        assert not errors, f"{name}: error output:\n" + "\n---\n".join(errors)
        assert not console, f"{name}: console errors:\n" + "\n".join(console)
        frames = panel.locator(".nb-frame")
        if name.startswith("02-"):
            frame = frames.first
            frame.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
            expect(frame).to_contain_text("telemetry.")
            frame.screenshot(path=str(SHOTS / "examples-capture-frame.png"))
            for i, img in enumerate(panel.locator(".jp-RenderedImage img").all()):
                img.scroll_into_view_if_needed()
                img.screenshot(path=str(SHOTS / f"examples-02-plot-{i}.png"))
        for i in range(frames.count()):
            assert _fits_without_scrolling(frames.nth(i)), f"{name}: frame {i} scrolls"
        if name.startswith("06-"):
            # the two live views side by side: one row, titles whole, Stop never cut
            views = panel.locator(".nb-live")
            expect(views).to_have_count(2, timeout=15_000)
            views.first.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
            expect(views.first.locator(".nb-live-output .nb-frame")).to_be_visible(
                timeout=15_000)
            a, b = views.nth(0).bounding_box(), views.nth(1).bounding_box()
            assert abs(a["y"] - b["y"]) < 2 and a["x"] + a["width"] <= b["x"] + 1
            assert views.locator(".nb-live-stop, .nb-live-title-text").evaluate_all(
                "els => els.filter(e => e.scrollWidth > e.clientWidth).length") == 0
            views.first.locator("xpath=..").screenshot(
                path=str(SHOTS / "examples-06-live-views.png"))
        if name.startswith("09-"):
            # the dashboard's Trace tab draws the traced message's path (issue 28)
            path = panel.locator(".nb-trace .nb-trace-path").last
            svg = path.locator("svg.nb-trace-svg")
            expect(svg).to_be_visible(timeout=30_000)
            assert svg.locator("rect").count() >= 1  # a server box
            expect(svg).to_contain_text("OBS_ORDERS")  # the stream that stores shop.orders.*
            expect(svg).to_contain_text("billing")  # and the subscriber it reaches
            path.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
            panel.locator(".nb-trace").last.screenshot(path=str(SHOTS / "examples-09-trace.png"))
        if name.startswith("05-"):
            # varz (jsz, healthz and one-row frames are reports too)
            report = panel.locator(".nb-report").filter(has_text="in_client_msgs").first
            report.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
            expect(report).to_contain_text("in_msgs")
            report.screenshot(path=str(SHOTS / "examples-server-varz.png"))

    # 01's %nats_msgs frame (the magics' capture).
    page.locator(DOC_TAB, has_text="01-quickstart.ipynb").click()
    first = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").last
    msgs = first.locator(".nb-frame").filter(has_text="demo.magic.reading").last
    msgs.scroll_into_view_if_needed()
    msgs.screenshot(path=str(SHOTS / "examples-nats-msgs.png"))
    # The dashboard is still live after every other notebook ran.
    expect(first.locator(".nb-dashboard .nb-status")).to_contain_text("connected",
                                                                      timeout=15_000)
    assert not console, "console errors:\n" + "\n".join(console)
