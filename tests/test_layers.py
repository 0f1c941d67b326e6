"""The package's folders are its layers; these tests check the import rules between them from
the code itself (an ``ast`` walk), so a forbidden import fails CI, not a code review.

    wire      pure codec: imports nothing of natsbook but errors
    capture   the store and frames: wire
    client    transport, engine, Connection: wire, capture
    jetstream streams, KV: client, capture, wire
    ops       monitoring: client, capture, wire
    notebook  magics, widgets   } front ends: only the public names of the layers below
    lab       command, simulator} (natsbook, natsbook.<layer>, natsbook.errors), never _modules

``errors``, ``_progress`` and ``_version`` are shared by every layer and import no layer.
Imports under ``if TYPE_CHECKING:`` are not run: they may point anywhere but a front end.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import natsbook

PKG = Path(natsbook.__file__).parent
SHARED = {"errors", "_progress", "_version"}
RUNTIME_ALLOWED = {
    "wire": set(),
    "capture": {"wire"},
    "client": {"wire", "capture"},
    "jetstream": {"wire", "capture", "client"},
    "ops": {"wire", "capture", "client"},
}
FRONT_ENDS = {"notebook", "lab"}
LAYERS = set(RUNTIME_ALLOWED) | FRONT_ENDS
MAX_LINES = 525  # "~500": a module past this is asking to be split along a seam


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(absolute target module, line, type-checking only) for every natsbook import."""
    package = module if is_package else module.rpartition(".")[0]
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    guarded.add(id(sub))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in guarded) for a in node.names
                    if a.name.split(".")[0] == "natsbook"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "natsbook":
                continue
            out.append((target, node.lineno, id(node) in guarded))
            # `from natsbook.jetstream import _kv` imports the submodule too
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _is_module(candidate):
                    out.append((candidate, node.lineno, id(node) in guarded))
    return out


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (PKG / rel).with_suffix(".py").exists() or (PKG / rel / "__init__.py").exists()


def _layer(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import in `source` (the text of `module`) that the layer rules forbid."""
    me = _layer(module)
    if module == "natsbook":  # the facade re-exports every layer
        return []
    found = []
    for target, line, type_only in _imports(ast.parse(source), module, is_package):
        layer = _layer(target)
        if target == "natsbook":
            layer = "<facade>"
        if layer == me or layer in SHARED:
            continue
        where = f"{module}:{line} imports {target}"
        if me in SHARED:
            found.append(f"{where}: shared modules import no layer")
        elif me in FRONT_ENDS:
            private = any(p.startswith("_") for p in target.split(".")[2:])
            if layer in FRONT_ENDS or (layer != "<facade>" and private):
                found.append(f"{where}: front ends use only natsbook.<layer>'s public names")
        elif type_only:
            if layer in FRONT_ENDS:
                found.append(f"{where}: a runtime layer never refers to a front end")
        elif layer not in RUNTIME_ALLOWED.get(me, set()):
            found.append(f"{where}: {me} may import only {sorted(RUNTIME_ALLOWED[me])}")
    return found


def _sources() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "notebooks" not in p.parts)


def test_every_module_sits_in_a_layer_folder() -> None:
    loose = [p.name for p in PKG.glob("*.py")
             if p.stem not in SHARED | {"__init__", "__main__"}]
    assert loose == [], f"modules outside a layer folder: {loose}"
    folders = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert folders == LAYERS


def test_imports_follow_the_layer_rules() -> None:
    found = []
    for path in _sources():
        found += violations(path.read_text(), _module_name(path), path.name == "__init__.py")
    assert found == []


@pytest.mark.parametrize(("module", "source", "why"), [
    ("natsbook.wire._protocol", "from ..client import Connection", "wire may import only"),
    ("natsbook.capture._store", "from ..client._engine import x", "capture may import only"),
    ("natsbook.client._engine", "from ..jetstream import streams", "client may import only"),
    ("natsbook.client._engine", "import natsbook.notebook.magics", "client may import only"),
    ("natsbook.client._engine",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..notebook import magics",
     "never refers to a front end"),
    ("natsbook.notebook.magics", "from ..client._connection import Connection", "public names"),
    ("natsbook.lab.cli", "from natsbook.notebook import magics", "public names"),
    ("natsbook.errors", "from .wire import Msg", "shared modules"),
])
def test_the_checker_catches_a_forbidden_import(module: str, source: str, why: str) -> None:
    found = violations(source, module)
    assert found and all(why in f for f in found), found


def test_the_checker_allows_what_the_rules_allow() -> None:
    assert violations("from ..wire._protocol import RawMsg", "natsbook.capture._store") == []
    assert violations("from ...client import Connection", "natsbook.notebook.widgets._base") == []
    assert violations("from .. import __version__", "natsbook.lab.cli") == []
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..client import C"
    assert violations(guarded, "natsbook.capture._replay") == []


def test_no_module_is_past_the_size_where_it_should_be_split() -> None:
    big = {str(p.relative_to(PKG)): n for p in _sources()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def _client_private_names() -> set[str]:
    """The ``_``-names the client layer defines: its private methods and the ``self._x``
    attributes of its classes (Connection, Subscription, the engine...)."""
    names: set[str] = set()
    for path in (PKG / "client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = node.name
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "self"):
                name = node.attr
            else:
                continue
            if name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return names


def private_reaches(source: str, names: set[str]) -> list[str]:
    """Every ``x._name`` in `source` where ``_name`` is one of the client layer's private
    names and ``x`` is not the module's own ``self`` / ``cls`` / ``super()``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and node.attr in names):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"):
            continue
        found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_layer_reaches_into_a_connections_private_attributes() -> None:
    """Other layers use ``conn.internals`` / ``sub.internals`` (client/_internals.py), never
    a ``_``-attribute of a Connection or Subscription."""
    names = _client_private_names()
    found = {}
    for path in _sources():
        if _layer(_module_name(path)) in ("client", ""):
            continue
        if hits := private_reaches(path.read_text(), names):
            found[str(path.relative_to(PKG))] = hits
    assert found == {}


def test_the_private_reach_checker_can_fail() -> None:
    names = _client_private_names()
    assert {"_subscribe_internal", "_release", "_gaps", "_lock", "_history"} <= names
    assert private_reaches("conn._release(sub)\nx = sub._conn.is_closed", names) == [
        "1: conn._release", "2: sub._conn"]
    assert private_reaches("self._lock\nsuper()._release()\nconn.internals.release(s)",
                           names) == []
