"""The magics are a front end: they reach the runtime only through natsbook's public API (the
package, its public modules, the error tree), so they can move into a folder of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import natsbook

PACKAGE = Path(natsbook.__file__).parent
MAGICS = ["magics.py", "_magics_base.py", "_magics_connect.py", "_magics_messaging.py",
          "_magics_data.py", "_magics_ops.py", "_magics_objects.py", "_magic_support.py",
          "_scrub.py"]
# The magics' own support modules (front-end layer) besides the magics themselves.
FRONT_END = {"_magic_support", "_magics_base", "_magics_connect", "_magics_messaging",
             "_magics_data", "_magics_live", "_magics_ops", "_magics_objects", "_scrub",
             "_context",
             # pure display formatting shared with the panels (no runtime state, no I/O)
             "_display"}


def imported(path: Path) -> set[str]:
    """natsbook modules `path` imports, as dotted names below the package ('' for itself)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                out.add(node.module or "")
            elif node.module and node.module.split(".")[0] == "natsbook":
                out.add(node.module.partition(".")[2])
        elif isinstance(node, ast.Import):
            out |= {a.name.partition(".")[2] for a in node.names
                    if a.name.split(".")[0] == "natsbook"}
    return out


def test_magics_use_only_the_public_api() -> None:
    for name in MAGICS:
        for module in imported(PACKAGE / name):
            first = module.split(".")[0]
            assert (first == "" or not first.startswith("_") or first in FRONT_END), (
                f"{name} imports natsbook.{module}, a private runtime module")


def test_magics_modules_stay_small() -> None:
    for name in MAGICS:
        lines = (PACKAGE / name).read_text().count("\n")
        assert lines < 500, f"{name} has {lines} lines - split it along a seam"
