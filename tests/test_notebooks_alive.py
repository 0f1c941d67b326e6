"""Run All of an example notebook leaves what it displays alive.

Each notebook that shows a live widget (a dashboard, live views) is executed as a user's Run
All would (a fresh kernel, ``NATSBOOK_CLEANUP`` unset, the session's nats-server as
``NATS_URL``), then one more cell checks that what it showed still runs: a notebook must not
close its own dashboard in its last cell. Cleaning up is an optional, clearly marked cell that
runs only when asked (``tests/run_nbval.sh`` asks, so nbval still exercises it).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import natsbook
from natsbook import LocalServer

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

#: notebook -> a check run after Run All: it must print exactly "alive"
ALIVE = {
    "01-quickstart.ipynb": 'panel.comm is not None and conn.status == "connected"',
    "06-live-analysis.ipynb":
        'table.running and plot.running and conn.status == "connected"',
    "07-operations.ipynb":
        'panel.comm is not None and conn.status == "connected" and not svc.stopped',
    "09-observability.ipynb": 'panel.comm is not None and conn.status == "connected"',
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


@pytest.mark.parametrize("name", ["01-quickstart.ipynb", "03-request-reply.ipynb"])
def test_run_all_while_an_explorer_watches_everything(name: str, server: LocalServer,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26: an Explorer watching ``>`` (another kernel's dashboard, say) makes the server
    see interest on every subject, so requests nobody serves time out instead of failing with
    "no responders". The examples still pass Run All."""
    from natsbook.errors import RequestTimeout
    from natsbook.notebook.widgets import SubjectExplorer

    with natsbook.connect(server.url, name="someone-elses-dashboard") as other:
        explorer = SubjectExplorer(other, pattern=">", autostart=True)
        try:
            with pytest.raises(RequestTimeout):  # the wire-tap is in place
                other.request(f"t{uuid.uuid4().hex[:12]}.nobody", timeout=0.2)
            shutil.copy(NOTEBOOKS / name, tmp_path / name)
            nb = nbformat.read(tmp_path / name, as_version=4)
            monkeypatch.setenv("NATS_URL", server.url)
            monkeypatch.setenv("NATSBOOK_CLEANUP", "1")
            NotebookClient(nb, timeout=120, kernel_name="python3",
                           resources={"metadata": {"path": str(tmp_path)}}).execute()
            timeouts = [o for c in nb.cells if c.cell_type == "code"
                        for o in c.get("outputs", [])
                        if "RequestTimeout - " in "".join(o.get("text", ""))]
            assert timeouts, "the notebook's unserved request should have met the wire-tap"
        finally:
            explorer.close()
