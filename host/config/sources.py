"""Which source files a process loaded from the project, and whether they changed since.

A job process reports, once it is prewarmed, the `.py` files it imported from outside
the Python installation and outside agenthost itself, with their modification time and
size. The pool compares that snapshot with the disk to learn, without importing
anything, whether an idle process still runs the current code.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from types import ModuleType

# path -> (st_mtime_ns, st_size) when the process imported it
Snapshot = Mapping[str, tuple[int, int]]

_HOST_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _installed_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, _HOST_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots)


def project_files(modules: Iterable[ModuleType]) -> list[str]:
    """The real paths of the modules' `.py` files that belong to the project, not the installation."""
    roots = _installed_roots()
    files = set()
    for module in modules:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if not real.startswith(roots):
            files.add(real)
    return sorted(files)


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


def loaded_snapshot() -> dict[str, tuple[int, int]]:
    """The snapshot of the project files this process has imported so far."""
    return snapshot(project_files(list(sys.modules.values())))


def changed(before: Snapshot) -> list[str]:
    """The files of `before` that differ on disk now (edited, replaced or deleted)."""
    now = snapshot(before)
    return sorted(path for path, stat in before.items() if now[path] != stat)
