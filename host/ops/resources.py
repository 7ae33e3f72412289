"""What the host measures about the machine and its job processes: memory and CPU.

`memory_bytes` is the resident memory of a job process and everything it started.
`CpuLoad` smooths the machine's CPU use, so that one busy second does not make a host
report itself full. Both use psutil; neither blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

MB = 1024 * 1024


def memory_bytes(pid: int) -> int | None:
    """Resident memory of the process and its descendants; None when it is gone."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def memory_of(pids: Sequence[int]) -> list[int | None]:
    """`memory_bytes` of each process, in one call (the host makes it off its event loop)."""
    return [memory_bytes(pid) for pid in pids]


def _machine_cpu() -> float:
    """The machine's CPU use in [0, 1] since the previous call."""
    return psutil.cpu_percent(interval=None) / 100.0


class CpuLoad:
    """The machine's CPU use in [0, 1], as an exponential moving average of periodic samples.

    `alpha` is the weight of the newest sample; with samples every 2.5 s, 0.4 follows a
    sustained change within about 10 s and flattens single spikes.
    """

    def __init__(self, alpha: float = 0.4, sampler: Callable[[], float] | None = None) -> None:
        self.alpha = alpha
        self.value = 0.0
        self._primed = False
        self._sampler = sampler or _machine_cpu
        if sampler is None:
            psutil.cpu_percent(interval=None)  # the first call only sets the reference point

    def sample(self) -> float:
        now = self._sampler()
        self.value = now if not self._primed else self.alpha * now + (1 - self.alpha) * self.value
        self._primed = True
        return self.value


SERVER_TARGET_LOAD = 0.7  # livekit-server's agents.target_load: it offers no job to a worker at or above it


@dataclass(frozen=True)
class LoadPolicy:
    threshold: float = 0.9  # --load-threshold: CPU use at which the host is full (0: CPU not counted)
    target: float = SERVER_TARGET_LOAD  # the server's target load: an open worker reports less


@dataclass(frozen=True)
class WorkerLoad:
    """What an agent's worker tells the server, and why it takes no new job (None when it takes them)."""

    load: float
    full: bool
    closed_because: str | None
    closed: str | None = None  # the kind of reason (max_jobs, cpu, no_process): what a change is judged by


def worker_load(*, cpu: float, jobs: int, max_jobs: int, threshold: float, target: float = SERVER_TARGET_LOAD,
                process_error: str | None = None) -> WorkerLoad:
    """The load an agent's worker reports, so that the server's view and the host's agree.

    livekit-server offers a job only to a worker whose load is below its target load, and drops a job
    nobody can take. So the host is either open, reporting a load below `target` (the larger of its CPU
    use against `threshold` and its running jobs against `max_jobs`, scaled into [0, target)), or full,
    for a reason it names: at `max_jobs`, CPU use at `threshold` (0: CPU is not counted at all), or no
    job process can be started.
    """
    if max_jobs and jobs >= max_jobs:
        return WorkerLoad(1.0, True, f"at max_jobs ({max_jobs})", "max_jobs")
    if threshold and cpu >= threshold:
        return WorkerLoad(1.0, True, f"CPU use {cpu:.0%} reached --load-threshold {threshold:.0%}", "cpu")
    if process_error is not None:
        return WorkerLoad(1.0, True, f"cannot start job processes: {process_error}", "no_process")
    used = max(cpu / threshold if threshold else 0.0, jobs / max_jobs if max_jobs else 0.0)
    return WorkerLoad(round(target * used, 3), False, None)
