"""A job process's end as the host brings it about and records it: the kill of all it started, how it exited, and
what it used, read from its cgroup where it has one, else from what it said of itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from host.process.cgroupfs import JobGroup
from host.process.reports import JobReports
from host.tree import kill_tree
from host.wire.messages import JobDone

logger = logging.getLogger("agenthost.process")


@dataclass(frozen=True)
class ProcessExit:
    """The facts of a job process's end, gathered where they are known: when its exit is seen."""

    code: int  # negative: killed by that signal
    killed_by_host: bool
    kill_reason: str | None  # what the host said when it killed it on purpose (a stop, not a timeout)
    result: JobDone | None  # what the job reported before it exited; None if it never did
    shutdown_reason: str | None
    memory_killed: str | None = None  # said when the kernel killed a process of the job at its memory limit
    # CPU time of the job's processes from the job process's Ready on: its cgroup's count, or, without one, the
    # job's own (of itself and the processes it reaped) when it said JobDone
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None  # the most memory its cgroup was charged at once
    peak_rss_bytes: int | None = None  # without a cgroup: the most resident memory the job said it had at once


@dataclass(frozen=True)
class GroupEnd:
    """What a job's cgroup tells once its process has exited."""

    cpu_seconds: float | None
    peak_memory_bytes: int | None
    memory_killed: str | None


def end_group(group: JobGroup, memory_limit_mb: int, fields: Mapping[str, Any]) -> GroupEnd:
    """The job process has exited: end whatever is left in its group, read what the group counted, note a kill at
    the memory limit, and remove the group once its last process is reaped."""
    kill_what_is_left(group, "job", fields)
    cpu, peak = group.cpu_seconds(), group.peak_memory_bytes()
    kills = group.oom_kills() - group.oom_kills_at_start
    killed = (f"killed by the kernel at limits.memory_limit_mb {memory_limit_mb} MB ({kills} process(es) of the job)"
              if kills > 0 else None)
    remove_when_empty(group)
    return GroupEnd(cpu, peak, killed)


def kill_job(pid: int, group: JobGroup | None, fields: Mapping[str, Any]) -> None:
    """SIGKILL a job process and every process it started: its tree, and what left the tree (setsid, a double
    fork) but is still in its group; what it had started is said in the log."""
    left = kill_tree(pid)
    if group is not None:
        left += [p for p in group.kill() if p != pid and p not in left]
    if left:
        logger.warning("killed %d process(es) the job process had started: %s", len(left), ", ".join(map(str, left)),
                       extra=dict(fields))


def kill_what_is_left(group: JobGroup, whose: str, fields: Mapping[str, Any]) -> None:
    """SIGKILL what is still in the group of a process that exited (what it started), said in the log."""
    left = group.kill()
    if left:
        logger.warning("killed %d process(es) left in the %s's cgroup: %s", len(left), whose,
                       ", ".join(map(str, left)), extra=dict(fields))


def used(group: GroupEnd | None, reports: JobReports,
         ready_cpu: float) -> tuple[float | None, int | None, int | None]:
    """The job's CPU seconds since its process was ready (`ready_cpu`, as the host read it then), its cgroup's peak
    charge, and (without a cgroup) its own peak resident size, as it said."""
    cpu, peak, rss = (group.cpu_seconds, group.peak_memory_bytes, None) if group is not None else (None, None, None)
    if reports.result is not None:
        if cpu is None:  # no group, or one that does not count CPU (v1's cpuacct beside cpu)
            cpu = reports.result.cpu_seconds
        if group is None:
            rss = reports.result.peak_rss_bytes or None
    return (None if cpu is None else max(0.0, cpu - ready_cpu)), peak, rss


REMOVE_TRIES = 20  # a group is removable once its processes are reaped (by their parents, or by init)
REMOVE_EVERY = 0.5


def remove_when_empty(group: JobGroup, tries: int = REMOVE_TRIES) -> None:
    """Remove `group` once its last process is reaped, trying again every REMOVE_EVERY seconds."""
    if group.remove() or tries <= 1:
        if tries <= 1:
            logger.warning("cgroup %s still has processes; left in place", next(iter(group.dirs.values())))
        return
    asyncio.get_running_loop().call_later(REMOVE_EVERY, remove_when_empty, group, tries - 1)
