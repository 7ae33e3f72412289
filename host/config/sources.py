"""Which source files a process loaded from the project, and whether they changed since.

A job process reports, once it is prewarmed, the `.py` files it imported from outside
the Python installation and outside agenthost itself, with their modification time and
size. The pool compares that snapshot with the disk to learn, without importing
anything, whether an idle process still runs the current code.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from types import ModuleType

# path -> (st_mtime_ns, st_size) when the process imported it
Snapshot = Mapping[str, tuple[int, int]]

_HOST_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    """Looked up once per process, where first asked: a template, before it forks. Each look copies all of
    sysconfig's variables, which in a job process forked from the template copied the pages they are on
    (about 0.35 MB of each job process's memory, measured by hand)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, _HOST_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots)


def _in_project(path: str) -> bool:
    """Whether the real path `path` is outside the Python installation and agenthost itself."""
    return not path.startswith(_installed_roots())


def project_files(modules: Iterable[ModuleType]) -> list[str]:
    """The real paths of the modules' `.py` files that belong to the project, not the installation."""
    files = set()
    for module in modules:
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py") and _in_project(real := os.path.realpath(path)):
            files.add(real)
    return sorted(files)


def is_project_module(module: ModuleType) -> bool:
    """Whether `module` was loaded from the project, not the installation (a namespace package too: by its
    folders)."""
    path = getattr(module, "__file__", None)
    if isinstance(path, str):
        return _in_project(os.path.realpath(path))
    folders = [f for f in getattr(module, "__path__", None) or () if isinstance(f, str)]
    return bool(folders) and all(_in_project(os.path.join(os.path.realpath(f), "")) for f in folders)


def snapshot(files: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of each file; a missing file is recorded as (0, -1)."""
    result = {}
    for path in files:
        try:
            st = os.stat(path)
            result[path] = (st.st_mtime_ns, st.st_size)
        except OSError:
            result[path] = (0, -1)
    return result


class ImportRecorder:
    """Records the names of the modules imported while it is installed (a finder that finds nothing).

    A job process uses it instead of walking `sys.modules`: that walk touches every module object the
    fork server preloaded, and reference counting then copies their pages into the process (about
    8 MB of private memory per process)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        self.names.append(name)

    def __enter__(self) -> ImportRecorder:
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *_: object) -> None:
        sys.meta_path.remove(self)

    def modules(self, also: Iterable[str] = ()) -> list[ModuleType]:
        """The recorded modules (and the ones named in `also`) that are loaded now."""
        return [m for m in (sys.modules.get(n) for n in [*self.names, *also]) if m is not None]


def changed(before: Snapshot) -> list[str]:
    """The files of `before` that differ on disk now (edited, replaced or deleted)."""
    now = snapshot(before)
    return sorted(path for path, stat in before.items() if now[path] != stat)
