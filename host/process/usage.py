"""CPU time of a process and its descendants, as the host reads it (where a process has no cgroup to count it)."""

from __future__ import annotations

import psutil

from host.process.cgroupfs import JobGroup


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and its descendants (with what the ones that ended used); None when it is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and of the children it reaped, without a walk of its tree (cheap enough for the
    host's event loop); None when it is gone."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system + t.children_user + t.children_system


def used_so_far(group: JobGroup | None, pid: int | None) -> float | None:
    """What a job process's cgroup, or (without one that counts CPU) the process and the children it reaped, used so
    far (no walk of its tree on the host's loop); None when it is gone."""
    counted = group.cpu_seconds() if group is not None else None
    if counted is not None:
        return counted
    return process_cpu_seconds(pid) if pid is not None else None
