"""The package's folders are its layers; these tests check the import rules between them from
the code itself (an ``ast`` walk), so a forbidden import fails CI, not a code review.

    wire      pure codec and sans-IO protocol state: imports nothing of natsbook but errors
    capture   the store and frames: wire
    core      transport, engine, subscriptions: wire, capture
    jetstream streams, KV: core, capture, wire
    ops       monitoring: core, capture, wire
    client    the public Connection, connect(): core, jetstream, ops, capture, wire
    notebook  magics, widgets   } front ends: only the public names of the layers below
    lab       command, simulator} (natsbook, natsbook.<layer>, natsbook.errors), never _modules

``errors``, ``_progress`` and ``_version`` are shared by every layer and import no layer.
Imports under ``if TYPE_CHECKING:`` follow the same rules: a type named from a layer above is
a dependency on it, run or not (a lower layer names what it needs as a Protocol of its own,
``capture.Capture``, ``core.Link``).

One exception, named in LAZY_FRONT_END: ``Connection.live()`` / ``Subscription.live()`` make a
widget, so they import ``natsbook.notebook.widgets.live`` inside the method, when asked.
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
    "core": {"wire", "capture"},
    "jetstream": {"wire", "capture", "core"},
    "ops": {"wire", "capture", "core"},
    "client": {"wire", "capture", "core", "jetstream", "ops"},
}
#: (module, imported module): the live() methods' widget, imported inside the method.
LAZY_FRONT_END = {("natsbook.core._subscription", "natsbook.notebook.widgets.live"),
                  ("natsbook.client._connection", "natsbook.notebook.widgets.live")}
FRONT_ENDS = {"notebook", "lab"}
LAYERS = set(RUNTIME_ALLOWED) | FRONT_ENDS
MAX_LINES = 525  # "~500": a module past this is asking to be split along a seam
#: Modules long by design, with their own bound: the public Connection states every method
#: with its signature and docstring in one class (issue 25); each body is one delegation, so
#: its length is the API's, not logic's. A method with logic of its own belongs in its layer.
LONG_BY_DESIGN = {"client/_connection.py": 900}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(absolute target module, line, made inside a function) for every natsbook import."""
    package = module if is_package else module.rpartition(".")[0]
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
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
            # `from natsbook.jetstream import _kv` imports the submodule too; `from .. import
            # jetstream` imports only that layer, not the facade
            modules = [f"{target}.{a.name}" for a in node.names
                       if _is_module(f"{target}.{a.name}")]
            if len(modules) < len(node.names):
                out.append((target, node.lineno, id(node) in guarded))
            out += [(m, node.lineno, id(node) in guarded) for m in modules]
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
    for target, line, in_function in _imports(ast.parse(source), module, is_package):
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
        elif in_function and (module, target) in LAZY_FRONT_END:
            continue
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
    ("natsbook.capture._store", "from ..core._engine import x", "capture may import only"),
    ("natsbook.core._engine", "from ..jetstream import streams", "core may import only"),
    ("natsbook.core._engine", "from ..client import Connection", "core may import only"),
    ("natsbook.jetstream._kv", "from ..client import Connection", "jetstream may import only"),
    ("natsbook.ops._sysmon", "from ..client._connection import C", "ops may import only"),
    ("natsbook.client._connection", "import natsbook.notebook.magics", "client may import only"),
    # a type named from a layer above is a dependency, run or not
    ("natsbook.capture._sql",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..core import Subscription",
     "capture may import only"),
    ("natsbook.jetstream._kv",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..client import Connection",
     "jetstream may import only"),
    # the live() exception is for that one module, inside a function only
    ("natsbook.core._subscription", "from ..notebook.widgets.live import LiveView",
     "core may import only"),
    ("natsbook.core._engine", "def f():\n    from ..notebook.widgets.live import LiveView",
     "core may import only"),
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
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..core import Link"
    assert violations(guarded, "natsbook.jetstream._kv") == []
    lazy = "def live(self):\n    from ..notebook.widgets.live import LiveView"
    assert violations(lazy, "natsbook.core._subscription") == []
    assert violations("from ..jetstream import streams", "natsbook.client._connection") == []
    assert violations("from .. import jetstream, ops", "natsbook.client._connection") == []
    assert violations("from .. import jetstream", "natsbook.ops._kv")


def test_no_module_is_past_the_size_where_it_should_be_split() -> None:
    big = {str(p.relative_to(PKG)): n for p in _sources()
           if (n := len(p.read_text().splitlines()))
           > LONG_BY_DESIGN.get(str(p.relative_to(PKG)), MAX_LINES)}
    assert big == {}


def _private_names(layer: str = "core") -> set[str]:
    """The ``_``-names a layer defines: its private methods and the ``self._x`` attributes of
    its classes (core: the engine, Subscription...; client: Connection)."""
    names: set[str] = set()
    for path in (PKG / layer).glob("*.py"):
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
    """Other layers use ``conn.internals`` / ``sub.internals`` (core/_internals.py), never
    a ``_``-attribute of the engine, a Subscription or a Connection (the client layer
    included: Connection uses its engine's public methods)."""
    owned = {layer: _private_names(layer) for layer in ("core", "client")}
    found = {}
    for path in _sources():
        me = _layer(_module_name(path))
        names = set().union(*(n for layer, n in owned.items() if layer != me))
        if hits := private_reaches(path.read_text(), names):
            found[str(path.relative_to(PKG))] = hits
    assert found == {}


def test_the_private_reach_checker_can_fail() -> None:
    names = _private_names("core")
    assert {"_subscribe_internal", "_release", "_gaps", "_lock", "_history"} <= names
    assert "_engine" in _private_names("client")
    assert private_reaches("conn._engine._release(sub)\nx = sub._conn.is_closed", names) == [
        "1: conn._engine._release", "2: sub._conn"]
    assert private_reaches("self._lock\nsuper()._release()\nconn.internals.release(s)",
                           names) == []


def fat_methods(source: str, cls: str = "Connection", most: int = 2) -> list[str]:
    """Methods of `cls` in `source` with more than `most` statements besides the docstring."""
    fat = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ClassDef) and node.name == cls):
            continue
        for fn in node.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            body = fn.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if len(body) > most:
                fat.append(f"{fn.name}: {len(body)} statements")
    return fat


def test_connection_methods_only_delegate() -> None:
    """The public Connection is the API's table of contents: each method states its
    signature and docs and hands the work to the layer that does it (a statement or two),
    so that what a method does is one "go to definition" away."""
    source = (PKG / "client" / "_connection.py").read_text()
    assert fat_methods(source) == []
    assert fat_methods("class Connection:\n    def f(self):\n        '''d'''\n        a = 1\n"
                       "        b = a\n        return b\n") == ["f: 3 statements"]
