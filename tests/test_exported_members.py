"""The public surface is small, sorted and complete (httpx's idea)."""

from __future__ import annotations

import natsbook
from natsbook import errors


def test_all_is_sorted_and_exported() -> None:
    names = natsbook.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(natsbook, name), name


def test_public_modules_do_not_leak_private_names() -> None:
    public = {n for n in dir(natsbook) if not n.startswith("_")}
    layers = {"wire", "capture", "client", "jetstream", "ops", "notebook", "lab"}
    allowed = set(natsbook.__all__) | layers | {"errors", "annotations", "magics", "widgets",
                                                "kv", "monitor", "simulator", "cli"}
    assert public <= allowed, public - allowed


def test_each_layer_has_a_small_sorted_public_surface() -> None:
    import importlib

    for name in ("wire", "capture", "client", "jetstream", "ops", "lab"):
        layer = importlib.import_module(f"natsbook.{name}")
        assert len(set(layer.__all__)) == len(layer.__all__), name
        for export in layer.__all__:
            assert not export.startswith("_") and getattr(layer, export) is not None, export


def test_module_paths_from_before_the_layer_folders_still_work() -> None:
    import natsbook.cli
    import natsbook.kv
    import natsbook.magics
    import natsbook.simulator
    import natsbook.widgets
    import natsbook.widgets.explorer
    from natsbook.monitor import Monitor

    assert natsbook.widgets.explorer.SubjectExplorer is natsbook.notebook.widgets.SubjectExplorer
    assert natsbook.magics.NatsMagics.__module__ == "natsbook.notebook.magics"
    assert natsbook.simulator.Simulator is natsbook.lab.Simulator
    assert natsbook.kv.KV is natsbook.jetstream.KV
    assert natsbook.cli.main.__module__ == "natsbook.lab.cli"
    assert Monitor is natsbook.Monitor and callable(natsbook.monitor)
    assert natsbook.widgets.__spec__.name == "natsbook.notebook.widgets"



def test_error_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.NatsbookError), name
        assert name in (errors.__doc__ or "") or name in ("PermissionViolation", "Timeout"), name
