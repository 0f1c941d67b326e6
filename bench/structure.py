"""Structure measures of the package (issue 25's before/after): how `Connection` is built,
module sizes, private names reached across layers, upward imports, import time.

    python bench/structure.py [--import-repeats 5]

Counts come from an ``ast`` walk over natsbook/ (no import of the package for them); the
import time is the median of fresh ``python -X importtime -c "import natsbook"`` runs.
"""

from __future__ import annotations

import argparse
import ast
import re
import statistics
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "natsbook"
#: lowest first; a layer may import the ones before it (front ends: all)
ORDER = ["wire", "capture", "core", "jetstream", "ops", "client", "notebook", "lab"]
RUNTIME_BELOW = {
    "wire": set(), "capture": {"wire"}, "core": {"wire", "capture"},
    "jetstream": {"wire", "capture", "core"}, "ops": {"wire", "capture", "core"},
    "client": {"wire", "capture", "core", "jetstream", "ops"},
}
#: the live() methods' widget, imported inside the method (tests/test_layers.py)
LAZY = {("natsbook/core/_subscription.py", "natsbook.notebook.widgets.live"),
        ("natsbook/client/_connection.py", "natsbook.notebook.widgets.live")}
CLIENT_CLASSES = {"Connection", "Subscription"}


def layer_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else ""


def modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "notebooks" not in p.parts)


def connection_bases() -> list[str]:
    """Every natsbook class Connection inherits from (the MRO, without object)."""
    sys.path.insert(0, str(PKG.parent))
    import natsbook

    return [f"{c.__module__}.{c.__qualname__}" for c in natsbook.Connection.__mro__[1:]
            if c.__module__.startswith("natsbook")]


def connection_methods() -> tuple[int, int]:
    """Public members of Connection, and how many are written in its own class body."""
    import natsbook

    public = [n for n in dir(natsbook.Connection) if not n.startswith("_")]
    return len(public), sum(1 for n in public if n in vars(natsbook.Connection))


def private_attrs_of_client(layer: str = "core") -> set[str]:
    """`_`-names that a layer defines on its classes (methods and self._x attributes)."""
    names: set[str] = set()
    for path in (PKG / layer).glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.name.startswith("_") and not node.name.startswith("__"):
                names.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "self" and node.attr.startswith("_")
                  and not node.attr.startswith("__")):
                names.add(node.attr)
    return names


def cross_layer_private_accesses() -> list[str]:
    """`x._name` (x not self/cls) where `_name` is a private name of core/ (engine,
    Subscription) or client/ (Connection) used outside that layer."""
    owned = {layer: private_attrs_of_client(layer) for layer in ("core", "client")}
    found = []
    for path in modules():
        if layer_of(path) == "":
            continue
        client_names = set().union(*(n for la, n in owned.items() if la != layer_of(path)))
        tree = ast.parse(path.read_text())
        own: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "self"):
                own.add(node.attr)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in client_names
                    and node.attr not in own
                    and not (isinstance(node.value, ast.Name) and node.value.id in
                             ("self", "cls"))):
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno} .{node.attr}")
    return found


def imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(target module, imported names, type-checking only) for natsbook imports."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG.parent).with_suffix("").parts
    package = list(rel[:-1])  # the folder a relative import starts from
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                guarded.update(id(n) for n in ast.walk(inner))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "natsbook":
                out.append((target, [a.name for a in node.names], id(node) in guarded))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], id(node) in guarded) for a in node.names
                    if a.name.startswith("natsbook")]
    return out


def import_counts() -> tuple[int, list[str]]:
    """Cross-module imports of `_`-names, and upward imports (type-checking ones included)."""
    private = 0
    upward = []
    for path in modules():
        me = layer_of(path)
        for target, names, type_only in imports(path):
            parts = target.split(".")
            private += sum(1 for n in names if n.startswith("_") and n != "__version__")
            layer = parts[1] if len(parts) > 1 else ""
            if not me or not layer or layer == me or layer not in ORDER or me not in ORDER:
                continue
            allowed = RUNTIME_BELOW.get(me)
            if allowed is None:  # a front end: anything below it
                if ORDER.index(layer) > ORDER.index(me) and layer not in ("notebook", "lab"):
                    continue
                if layer in ("notebook", "lab") and me in ("notebook", "lab"):
                    upward.append(f"{path.relative_to(PKG.parent)} -> {target}"
                                  f"{' (TYPE_CHECKING)' if type_only else ''}")
                continue
            if layer not in allowed and (str(path.relative_to(PKG.parent)), target) not in LAZY:
                upward.append(f"{path.relative_to(PKG.parent)} -> {target}"
                              f"{' (TYPE_CHECKING)' if type_only else ''}")
    return private, upward


def import_time(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import natsbook"],
                             capture_output=True, text=True, cwd=PKG.parent, check=True).stderr
        m = re.findall(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s+natsbook$", err, re.M)
        times.append(int(m[-1]) / 1e6)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--import-repeats", type=int, default=5)
    ap.add_argument("--list", action="store_true", help="list every access and import found")
    args = ap.parse_args()
    bases = connection_bases()
    sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(PKG.parent)))
                    for p in modules()), reverse=True)
    accesses = cross_layer_private_accesses()
    private, upward = import_counts()
    print(f"Connection inherits from {len(bases)} natsbook classes: {', '.join(bases)}")
    n_public, n_own = connection_methods()
    print(f"Connection public members: {n_public}, written in its own class body: {n_own}")
    print(f"largest module: {sizes[0][1]} ({sizes[0][0]} lines); median "
          f"{statistics.median(n for n, _ in sizes):.0f} lines over {len(sizes)} modules")
    print(f"cross-layer private accesses (x._name of core/client names outside them): "
          f"{len(accesses)}")
    print(f"cross-module imports of _-names: {private}")
    print(f"upward imports (TYPE_CHECKING included; the 2 lazy live() widget imports "
          f"excepted): {len(upward)}")
    if args.list:
        for line in accesses + upward:
            print("  " + line)
    print(f"import natsbook: {import_time(args.import_repeats) * 1000:.0f} ms "
          f"(median of {args.import_repeats} fresh interpreters)")


if __name__ == "__main__":
    main()
