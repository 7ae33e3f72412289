"""What the host measures about the machine and its job processes: memory and CPU.

`memory_of` is what a job process and everything it started take: its cgroup's charge, or, where it has no
cgroup, their own pages (USS: private pages, from /proc/PID/smaps_rollup, host.memory; the pages a job process
shares with its template are its template's; where the host may not read them, a job process's own figure of
itself), or their resident memory where those cannot be read.
`CpuLoad` smooths the host's own CPU use and the machine's, so that one busy second does not make a
host report itself full. Both use psutil.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

from host.memory import own_pages
from host.process.cgroupfs import JobGroup
from host.process.usage import tree_cpu_seconds

MB = 1024 * 1024


def tree_memory(pid: int, reported: int | None) -> tuple[int, int] | None:
    """The memory of the process and its descendants, as shown and as a limit holds it, in one walk: their own
    pages, or their resident memory where those cannot be read; where the process's cannot, the figure shown
    is what it `reported` of itself instead. None when it is gone."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    shown = checked = 0
    for p in procs:
        own = own_pages(p.pid)
        if own is None:
            try:
                own = p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                if p is proc:
                    return None
                continue
            shown += reported if p is proc and reported else own
        else:
            shown += own
        checked += own
    return shown, checked


def memory_of(processes: Sequence[tuple[int, JobGroup | None, int | None]]) -> list[tuple[int | None, int | None]]:
    """The memory of each job process (pid, cgroup, what it reported of its own pages), in one call (the host
    makes it off its event loop), as shown and as its limit is held to: what its cgroup charges it (its own
    pages: the pages it shares with its template are charged to the template), or, with no cgroup, its own
    pages and its descendants' (`tree_memory`). What a job says of itself is shown, never what it is held to:
    its code could say less."""
    figures: list[tuple[int | None, int | None]] = []
    for pid, group, reported in processes:
        if group is not None:
            charged = group.memory_bytes()
            figures.append((charged, charged))
        else:
            figures.append(tree_memory(pid, reported) or (None, None))
    return figures


@dataclass(frozen=True)
class JobCpuSample:
    job_id: str
    agent: str
    pid: int
    group: JobGroup | None
    ready_cpu: float = 0.0  # CPU seconds its process had used when it was ready (its prewarm): not the job's


@dataclass(frozen=True)
class JobCpuEnd:
    """A job's end, with the CPU seconds its process used from its Ready on, as its exit told them."""

    job_id: str
    agent: str
    cpu_seconds: float
    bound: float  # the most it can have used: its life times the CPUs (a job's own report is checked by it)


class JobsCpu:
    """Each running job's CPU use, in CPUs (0.5: half of one), over the last interval: read on its cgroup,
    or on its process tree where it has none. By agent, what its jobs use together; by job and by agent, the
    CPU seconds they used, counted from each job process's Ready to its exit (the time before the first sample
    and after the last one included, from what its exit told).

    Written by `sample` only, on the sampler's thread; `ended` queues a job's end for it."""

    def __init__(self) -> None:
        self.by_job: dict[str, float] = {}
        self.by_agent: dict[str, float] = {}
        self.seconds_by_job: dict[str, float] = {}  # CPU seconds of each running job so far
        self.seconds_by_agent: dict[str, float] = {}  # CPU seconds of each agent's jobs since the host started
        self._seen: dict[str, tuple[float, float]] = {}  # job id -> (CPU seconds since Ready, time.monotonic())
        self._ended: deque[JobCpuEnd] = deque()  # appended on the event loop, taken by `sample`

    def ended(self, end: JobCpuEnd) -> None:
        self._ended.append(end)

    def sample(self, jobs: Sequence[JobCpuSample]) -> None:
        now = time.monotonic()
        by_job: dict[str, float] = {}
        by_agent: dict[str, float] = {}
        seen: dict[str, tuple[float, float]] = {}
        for job in jobs:
            total = job.group.cpu_seconds() if job.group is not None else None
            if total is None:  # no group, or one that does not count CPU (v1's cpuacct beside cpu)
                total = tree_cpu_seconds(job.pid)
            if total is None:
                continue
            since_ready = max(0.0, total - job.ready_cpu)
            before = self._seen.get(job.job_id)
            counted = before[0] if before is not None else 0.0
            seen[job.job_id] = (max(since_ready, counted), now)
            self._count(job.agent, since_ready - counted)
            if before is not None and now > before[1]:
                used = max(0.0, (since_ready - before[0]) / (now - before[1]))
                by_job[job.job_id] = used
                by_agent[job.agent] = by_agent.get(job.agent, 0.0) + used
        while self._ended:
            end = self._ended.popleft()
            counted = seen.pop(end.job_id, self._seen.get(end.job_id, (0.0, now)))[0]
            self._count(end.agent, min(end.cpu_seconds, end.bound) - counted)
        self.by_job, self.by_agent, self._seen = by_job, by_agent, seen
        self.seconds_by_job = {job_id: seconds for job_id, (seconds, _) in seen.items()}

    def _count(self, agent: str, seconds: float) -> None:
        if seconds > 0:
            self.seconds_by_agent[agent] = self.seconds_by_agent.get(agent, 0.0) + seconds


def _machine_cpu() -> float:
    """The machine's CPU use in [0, 1] since the previous call."""
    return psutil.cpu_percent(interval=None) / 100.0


class TreeCpu:
    """The CPU use of a process and all its descendants, as a share of the CPUs it may run on, since the
    previous call. A descendant that ended still counts: its parent, having reaped it, carries its CPU time
    (children_user, children_system)."""

    def __init__(self, pid: int | None = None) -> None:
        self._root = psutil.Process(pid)
        self._cpus = max(1, len(os.sched_getaffinity(self._root.pid)))
        self._last = (self._total(), time.monotonic())

    def _total(self) -> float:
        return tree_cpu_seconds(self._root.pid) or 0.0

    def __call__(self) -> float:
        total, now = self._total(), time.monotonic()
        last_total, last_time = self._last
        self._last = (total, now)
        return min(1.0, max(0.0, (total - last_total) / max(now - last_time, 1e-3) / self._cpus))


class Ema:
    """An exponential moving average of periodic samples: `alpha` is the weight of the newest. With samples
    every 2.5 s, 0.4 follows a sustained change within about 10 s and flattens single spikes."""

    def __init__(self, sampler: Callable[[], float], alpha: float = 0.4) -> None:
        self.alpha = alpha
        self.value = 0.0
        self._primed = False
        self._sampler = sampler

    def sample(self) -> float:
        now = self._sampler()
        self.value = now if not self._primed else self.alpha * now + (1 - self.alpha) * self.value
        self._primed = True
        return self.value


class CpuLoad:
    """The host's own CPU use (its process tree: the host, its templates, its job processes) as a share of the
    CPUs it may run on, and the machine's, both smoothed.

    The host's own use is what its calls cost: the threshold is set where its calls would get slow (the
    voice bench finds it for a voice agent), and there it takes no more. The machine's use counts other work
    too; it only makes the host a worse choice than a host with room, never a closed one (a dispatch that
    only this host can take is still run, if slower).
    """

    def __init__(self, alpha: float = 0.4, sampler: Callable[[], float] | None = None,
                 machine_sampler: Callable[[], float] | None = None) -> None:
        self._own = Ema(sampler or TreeCpu(), alpha)
        if machine_sampler is None:
            psutil.cpu_percent(interval=None)  # the first call only sets the reference point
        self._machine = Ema(machine_sampler or _machine_cpu, alpha)
        self.jobs = JobsCpu()
        self.cpus = max(1, len(os.sched_getaffinity(0)))  # what the host may run on: the shares' unit

    @property
    def value(self) -> float:
        """The host's own CPU use in [0, 1]."""
        return self._own.value

    @property
    def machine(self) -> float:
        """The machine's CPU use in [0, 1]."""
        return self._machine.value

    def agent_share(self, agent: str) -> float | None:
        """What `agent`'s running jobs used, as a share of the host's CPUs; None before its jobs' first sample."""
        used = self.jobs.by_agent.get(agent)
        return None if used is None else used / self.cpus

    def top_agent(self) -> str | None:
        """The agent whose jobs used the most CPU in the last interval."""
        return max(self.jobs.by_agent, key=self.jobs.by_agent.__getitem__) if self.jobs.by_agent else None

    def busy_agents(self) -> int:
        """Agents whose jobs used CPU in the last interval."""
        return sum(1 for used in self.jobs.by_agent.values() if used > 0.01)

    def sample(self, jobs: Sequence[JobCpuSample] = ()) -> float:
        self._machine.sample()
        self.jobs.sample(jobs)
        return self._own.sample()
