"""Every third-party package agenthost imports is declared in pyproject.toml, by the part that imports it."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
# the parts of the package that may import an extra's packages (the rest only the core dependencies)
EXTRAS_BY_FOLDER = {"lkagents": ("agents", "voice", "tracing"), "voice": ("voice",), "testing": ("test",),
                    "tracing": ("tracing",)}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return _canonical(match.group(0))


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {k: {_requirement_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    return core, extras


def _distribution(module: str) -> str:
    """The installed distribution that provides `module` (in a namespace package such as livekit or
    opentelemetry, the one whose files hold its deepest package)."""
    parts = module.split(".")
    names = md.packages_distributions()[parts[0]]
    if len(set(names)) == 1 or len(parts) == 1:
        return _canonical(names[0])
    for depth in range(len(parts), 1, -1):
        found = {name for name in set(names) if tuple(parts[:depth]) in _packages(name)}
        if len(found) == 1:
            return _canonical(found.pop())
    raise AssertionError(f"no one installed distribution provides {module}")


@functools.cache
def _packages(distribution: str) -> set[tuple[str, ...]]:
    """The package paths (('livekit', 'agents'), ...) a distribution installs modules into."""
    found = set()
    for f in md.distribution(distribution).files or ():
        if f.suffix == ".py" or f.suffix == ".so":
            parts = f.parts[:-1] + ((f.stem,) if f.name != "__init__.py" else ())
            found.update(parts[:depth] for depth in range(1, len(parts) + 1))
    return found


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "host":
                found.add(name)
    return found


def test_every_imported_package_is_declared_by_the_part_that_imports_it():
    core, extras = _declared()
    undeclared = []
    for path in sorted((ROOT / "host").rglob("*.py")):
        folder = path.relative_to(ROOT / "host").parts[0]
        allowed = core.union(*(extras[e] for e in EXTRAS_BY_FOLDER.get(folder, ())))
        for module in sorted(_imports(path)):
            dist = _distribution(module)
            if dist not in allowed:
                undeclared.append(f"{path.relative_to(ROOT)} imports {module} ({dist})")
    assert undeclared == []
    assert len(core) >= 10  # the check read the real list
