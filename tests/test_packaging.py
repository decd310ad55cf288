"""Packaging: every import declared, every dependency pinned, a build without deprecations."""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _requirements(group: str | None = None) -> list[Requirement]:
    raw = PROJECT["dependencies"] if group is None else PROJECT["optional-dependencies"][group]
    return [Requirement(r) for r in raw]


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (REPO / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {raw!r} is not name==version"
            pins[canonicalize_name(name)] = version
    return pins


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files of netguard/ that import it (standard library left out)."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "netguard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "netguard":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_import_is_a_declared_dependency() -> None:
    declared = {canonicalize_name(r.name) for r in _requirements() + _requirements("demo")}
    module_to_dists = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in _third_party_imports().items():
        dists = {canonicalize_name(d) for d in module_to_dists.get(module, [module])}
        if not dists & declared:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


def test_zero_x_dependencies_have_an_upper_bound() -> None:
    unbounded = [str(r) for group in (None, "demo", "dev") for r in _requirements(group)
                 if r.name != "netguard" and r.name != "types-PyYAML"
                 and not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)]
    assert not unbounded, f"no upper bound: {unbounded}"


def test_constraints_pin_every_dependency_within_its_bounds() -> None:
    pins = _constraints()
    problems = []
    for group in (None, "demo", "dev"):
        for req in _requirements(group):
            if req.name == "netguard":
                continue
            pin = pins.get(canonicalize_name(req.name))
            if pin is None:
                problems.append(f"{req.name} not pinned")
            elif not req.specifier.contains(pin, prereleases=True):
                problems.append(f"{req.name}=={pin} outside {req.specifier}")
    assert not problems, f"{problems}: run scripts/lock.sh"


def test_license_is_an_spdx_string_for_a_setuptools_that_reads_it() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]
                     if Requirement(r).name == "setuptools"]
    assert not setuptools.specifier.contains("76.9")
    assert setuptools.specifier.contains("77.0")


@pytest.mark.slow
@pytest.mark.integration
def test_build_prints_no_deprecation_warning(tmp_path: Path) -> None:
    """What `pip install` shows: the build backend's warnings (pip fetches setuptools>=77)."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "netguard", src / "netguard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--progress-bar", "off",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert list((tmp_path / "dist").glob("netguard-*.whl"))
    warnings = [line for line in output.splitlines()
                if "DeprecationWarning" in line or "deprecated" in line.lower()]
    assert not warnings, output
