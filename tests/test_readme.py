"""Every code block of the README and of the docs' quick start runs against what `natsbook lab`
starts: an embedded nats-server (JetStream, monitoring) and the telemetry simulator, built by
the lab's own helpers with the lab's default options, and ``NATS_URL`` /
``NATSBOOK_MONITOR_URL`` set as the lab sets them for its kernels.

A block's language says what happens to it, and every block must have one:

- ``python``: run as one cell of a fresh IPython shell (errors re-raised);
- ``ipython``: magics, run as one notebook cell of a fresh shell (``%load_ext natsbook`` is
  part of the block);
- ``bash``: commands for a terminal (a virtualenv, ``pip install``, ``natsbook lab`` itself,
  the test run): not run here - the fixture stands for ``natsbook lab``;
- ``text``: output shown as an example: not run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from traitlets.config import Config

from natsbook.lab import _run, cli
from natsbook.notebook.magics import unload_ipython_extension

from .conftest import TestingShell

REPO = Path(__file__).resolve().parent.parent
FILES = ("README.md", "docs/getting-started.md", "docs/panels-magics.md")
RUN = {"python", "ipython"}
NOT_RUN = {"bash", "text"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(path: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block of `path`, in order."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer((REPO / path).read_text())]


ALL = [(path, i, lang, code) for path in FILES for i, (lang, code) in enumerate(blocks(path))]


def test_every_block_says_whether_it_runs() -> None:
    for path in FILES:  # the parser sees every block: two fence lines each
        fences = [x for x in (REPO / path).read_text().splitlines() if x.startswith("```")]
        assert len(fences) == 2 * len(blocks(path)), path
    unknown = [(path, i, lang) for path, i, lang, _ in ALL if lang not in RUN | NOT_RUN]
    assert not unknown, f"give each block a language: {sorted(RUN | NOT_RUN)}"
    assert any(lang == "ipython" for path, _, lang, _ in ALL if path == "README.md")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """What `natsbook lab` starts before JupyterLab, with its default options."""
    args = cli.build_parser().parse_args(["lab"])
    with _run.embedded_server(args) as srv:
        sim = _run.start_simulator(srv.url, args)
        try:
            yield {"NATS_URL": srv.url, "NATSBOOK_MONITOR_URL": str(srv.monitor_url)}
        finally:
            sim.stop()


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          lab: dict[str, str]) -> Iterator[TestingShell]:
    """A fresh shell as a lab kernel has it: the lab's environment, nothing loaded yet."""
    for var, value in lab.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("NATS_CONTEXT", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    cfg = Config()
    cfg.HistoryManager.hist_file = str(tmp_path / "history.sqlite")
    cfg.InteractiveShell.colors = "nocolor"  # readable tracebacks in the test report
    ip = TestingShell(config=cfg)
    yield ip
    if "NatsMagics" in ip.magics_manager.registry:
        unload_ipython_extension(ip)
    ns = ip.user_ns
    for name in ("conn", "srv"):  # what a python block left open
        obj = ns.get(name)
        if obj is not None and hasattr(obj, "close"):
            obj.close()
    ip.history_manager.end_session()
    ip.history_manager._stop_save_thread()
    ip.cleanup()


@pytest.mark.parametrize(("path", "index", "lang", "code"),
                         [a for a in ALL if a[2] in RUN],
                         ids=[f"{a[0]}#{a[1]}-{a[2]}" for a in ALL if a[2] in RUN])
def test_block_runs_in_the_lab(shell: TestingShell, capsys: pytest.CaptureFixture[str],
                               path: str, index: int, lang: str, code: str) -> None:
    result = shell.run_cell(code)
    assert result.success, f"{path} block {index} failed"
    out = capsys.readouterr().out
    if "svc.ping --replies 5" in code:  # every instance of the simulated service answers
        assert "natsbook: 5 replies from 'svc.ping'" in out, out
