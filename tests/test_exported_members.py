"""The public surface is small, sorted and complete (httpx's idea)."""

from __future__ import annotations

import pytest

import natsbook
from natsbook import errors


def test_all_is_sorted_and_exported() -> None:
    names = natsbook.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(natsbook, name), name


def test_public_modules_do_not_leak_private_names() -> None:
    public = {n for n in dir(natsbook) if not n.startswith("_")}
    layers = {"wire", "capture", "core", "client", "jetstream", "ops", "notebook", "lab"}
    allowed = set(natsbook.__all__) | layers | {"errors", "annotations", "magics", "widgets",
                                                "kv", "monitor", "simulator", "cli"}
    assert public <= allowed, public - allowed


def test_each_layer_has_a_small_sorted_public_surface() -> None:
    import importlib

    for name in ("wire", "capture", "core", "client", "jetstream", "ops", "lab"):
        layer = importlib.import_module(f"natsbook.{name}")
        assert len(set(layer.__all__)) == len(layer.__all__), name
        for export in layer.__all__:
            assert not export.startswith("_") and getattr(layer, export) is not None, export


def test_no_aliases_for_module_paths_nobody_released() -> None:
    """0.1.0 has one path per module: no import hook, no alias in sys.modules."""
    import importlib
    import sys

    assert not [f for f in sys.meta_path if type(f).__module__.startswith("natsbook")]
    for old in ("natsbook.widgets", "natsbook.magics", "natsbook.simulator", "natsbook.cli",
                "natsbook.kv"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)
    assert "natsbook.monitor" not in sys.modules and callable(natsbook.monitor)


def test_error_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.NatsbookError), name
        assert name in (errors.__doc__ or "") or name in ("PermissionViolation", "Timeout"), name


def test_import_has_no_global_side_effects_and_load_ext_adds_the_display() -> None:
    """``import natsbook`` in a running IPython changes no formatter (nor sys.meta_path);
    ``%load_ext natsbook`` registers the capture display. Run in a fresh interpreter: this
    test session imported natsbook long ago."""
    import subprocess
    import sys

    code = """if True:
        import sys
        import pandas as pd
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        html = ip.display_formatter.formatters["text/html"]
        before = dict(html.type_printers)
        hooks = list(sys.meta_path)
        import natsbook
        assert dict(html.type_printers) == before, "import natsbook registered a formatter"
        assert list(sys.meta_path) == hooks, "import natsbook changed sys.meta_path"
        ip.run_line_magic("load_ext", "natsbook")
        assert html.lookup_by_type(pd.DataFrame).__module__ == "natsbook.notebook._display"
        print("ok")
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
