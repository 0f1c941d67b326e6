"""Run All of an example notebook leaves what it displays alive.

Each notebook that shows a live widget (a dashboard, live views) is executed as a user's Run
All would (a fresh kernel, ``NATSBOOK_CLEANUP`` unset, the session's nats-server as
``NATS_URL``), then one more cell checks that what it showed still runs: a notebook must not
close its own dashboard in its last cell. Cleaning up is an optional, clearly marked cell that
runs only when asked (``tests/run_nbval.sh`` asks, so nbval still exercises it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from natsbook import LocalServer

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: notebook -> a check run after Run All: it must print exactly "alive"
ALIVE = {
    "01-quickstart.ipynb": 'panel.comm is not None and conn.status == "connected"',
    "06-live-analysis.ipynb":
        'table.running and plot.running and conn.status == "connected"',
    "07-operations.ipynb":
        'panel.comm is not None and conn.status == "connected" and not svc.stopped',
}


@pytest.mark.parametrize("name", sorted(ALIVE))
def test_run_all_leaves_the_display_alive(name: str, server: LocalServer, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(NOTEBOOKS / name, tmp_path / name)  # autosave never touches the checkout
    nb = nbformat.read(tmp_path / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import time as _t\n_t.sleep(0.5)  # a tick of every live thread after the last cell\n"
        f"print('alive' if ({ALIVE[name]}) else 'dead')"))
    monkeypatch.setenv("NATS_URL", server.url)
    monkeypatch.delenv("NATSBOOK_CLEANUP", raising=False)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert out.strip() == "alive", (name, nb.cells[-1].outputs)
