"""Bounds on running jobs: memory of each job process, and the host's and the machine's CPU.

`ResourceMonitor` samples; it never changes a job. Over a memory limit it asks the job table (through
`Watched.fail`) to shut the job down; the figures it keeps (memory by job) are read by /status and
/metrics. A failed round is logged and the next one runs as usual.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from host.config.definitions import Limits
from host.ops.resources import MB, CpuLoad, JobCpuSample, memory_of
from host.process.cgroupfs import JobGroup

logger = logging.getLogger("agenthost.host")

MEMORY_INTERVAL = 1.0  # how often each job process's memory is sampled
LOAD_INTERVAL = 2.5  # how often CPU is sampled and the load reported to the server
MEMORY_WARN_EVERY = 60.0  # at most one memory warning per job in this many seconds


@dataclass(frozen=True)
class Sampled:
    """A running job process to sample."""

    job_id: str
    pid: int
    limits: Limits
    log_fields: Mapping[str, Any]
    group: JobGroup | None = None  # its cgroup, where it has one: its memory and CPU are read there
    agent: str = ""
    ready_cpu: float = 0.0  # CPU seconds its process used to get ready: not counted as the job's
    own_bytes: int | None = None  # its own pages, as it last said (where the host may not read them itself)


class Watched(Protocol):
    def sampled(self) -> list[Sampled]:
        """The job processes running now."""
        ...

    def fail(self, job_id: str, reason: str, message: str) -> None:
        """Shut the job down and report it failed with `reason`."""
        ...

    async def report_load_all(self) -> None:
        """Tell the server each agent's load again (after a CPU sample)."""
        ...


def memory_verdict(mb: float, limits: Limits, warned_at: float | None, now: float) -> str | None:
    """'limit' when the job must be stopped, 'warn' when a warning is due, else None."""
    if limits.memory_limit_mb and mb > limits.memory_limit_mb:
        return "limit"
    if limits.memory_warn_mb and mb > limits.memory_warn_mb and (
            warned_at is None or now - warned_at >= MEMORY_WARN_EVERY):
        return "warn"
    return None


class ResourceMonitor:
    def __init__(self, jobs: Watched, cpu: CpuLoad) -> None:
        self._jobs = jobs
        self.cpu = cpu
        self.memory: dict[str, int] = {}  # job id -> bytes, last sample
        self._warned_at: dict[str, float] = {}  # job id -> time.monotonic() of its last warning

    async def run(self) -> None:
        """Sample memory every second and CPU every few seconds, until cancelled."""
        next_load = time.monotonic() + LOAD_INTERVAL
        while True:
            try:
                now = time.monotonic()
                await self.sample_memory(now)
                if now >= next_load:
                    next_load = now + LOAD_INTERVAL
                    running = [JobCpuSample(s.job_id, s.agent, s.pid, s.group, s.ready_cpu)
                               for s in self._jobs.sampled()]
                    await asyncio.to_thread(self.sample_cpu, running)  # a walk of the host's process tree
                    await self._jobs.report_load_all()
            except Exception:
                logger.exception("sampling memory and load failed; trying again")
            await asyncio.sleep(MEMORY_INTERVAL)

    async def sample_memory(self, now: float) -> None:
        running = self._jobs.sampled()
        sizes = await asyncio.to_thread(memory_of, [(s.pid, s.group, s.own_bytes) for s in running]) \
            if running else []
        self.memory = {s.job_id: shown for s, (shown, _) in zip(running, sizes, strict=True) if shown is not None}
        self._warned_at = {k: v for k, v in self._warned_at.items() if k in self.memory}
        for s, (_, checked) in zip(running, sizes, strict=True):
            if checked is not None:
                self._check(s, checked / MB, now)

    def _check(self, s: Sampled, mb: float, now: float) -> None:
        verdict = memory_verdict(mb, s.limits, self._warned_at.get(s.job_id), now)
        fields = {**s.log_fields, "pid": s.pid, "memory_mb": round(mb)}
        if verdict == "limit":
            limit = s.limits.memory_limit_mb
            self._jobs.fail(s.job_id, "memory_limit",
                            f"memory limit exceeded: {mb:.0f} MB > limits.memory_limit_mb {limit} MB")
        elif verdict == "warn":
            self._warned_at[s.job_id] = now
            logger.warning("job memory %.0f MB is above limits.memory_warn_mb (%d MB)", mb,
                           s.limits.memory_warn_mb, extra=fields)

    def sample_cpu(self, jobs: Sequence[JobCpuSample] = ()) -> None:
        """Sample CPU, the host's and each job's (the job table says when that closes or opens an agent)."""
        self.cpu.sample(jobs)
