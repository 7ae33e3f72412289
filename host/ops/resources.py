"""What the host measures about the machine and its job processes: memory and CPU.

`memory_bytes` is the resident memory of a job process and everything it started.
`CpuLoad` smooths the machine's CPU use, so that one busy second does not make a host
report itself full. Both use psutil; neither blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def worker_load(cpu: float, jobs: int, max_jobs: int, threshold: float) -> tuple[float, bool]:
    """The load an agent's worker reports, and whether it is full.

    Load is the larger of the machine's CPU use and the agent's running jobs against its
    `max_jobs`; the worker is full at `max_jobs`, or when CPU use reaches `threshold`
    (0 disables the CPU bound).
    """
    slots = jobs / max_jobs if max_jobs else 0.0
    load = min(1.0, max(cpu, slots))
    full = (bool(max_jobs) and jobs >= max_jobs) or (threshold > 0 and cpu >= threshold)
    return load, full
