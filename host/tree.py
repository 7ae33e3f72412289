"""A job process's descendants, read from /proc, and ending them: whatever a job starts ends with it.

Used on both sides: the job process ends what it started before it exits (it is a child subreaper, so
even a grandchild whose parent exited, or one that called setsid, stays below it), and the host, before
it kills a job process, stops it and ends its descendants first. Linux only; elsewhere there is nothing
to find and nothing is done.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from typing import Any

logger = logging.getLogger("agenthost.process")

PR_SET_CHILD_SUBREAPER = 36


def _libc_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _libc_prctl()  # found once, where this is imported (a template), not in each job process it forks


def become_subreaper() -> bool:
    """Orphaned descendants of this process are re-parented to it instead of to init."""
    return _prctl is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    parents = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            # the command name is in parentheses and may hold spaces: the parent pid follows its ')'
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 1:
                parents[int(name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, queue = [], list(children.get(pid, []))
    while queue:
        p = queue.pop(0)
        found.append(p)
        queue.extend(children.get(p, []))
    return found


def alive(pid: int) -> bool:
    """The process exists and has not ended (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie has ended
    except OSError:
        return False


def end_all(pids: list[int], grace: float) -> list[int]:
    """SIGTERM `pids`, SIGKILL the ones alive after `grace` seconds; returns those that had to be killed."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        _reap()
        time.sleep(0.02)
    survivors = [p for p in pids if alive(p)]
    for pid in survivors:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _reap()
    return survivors


def _reap() -> None:
    """Collect exited children (a subreaper inherits orphans it must wait for)."""
    with contextlib.suppress(ChildProcessError, OSError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def kill_tree(pid: int) -> list[int]:
    """Stop `pid` (so it starts nothing more), SIGKILL every descendant, then `pid`. Returns the
    descendants that were still there."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGSTOP)
    below = [p for p in descendants(pid) if alive(p)]
    for p in below:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    return below
