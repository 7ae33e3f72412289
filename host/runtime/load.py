"""What a host tells the server of each agent's load, and the log line when an agent closes or opens again.

livekit-server offers a job only to a worker whose load is under its target; `worker_load` (a pure
function) decides the figure and whether the agent is full, and `LoadReporter`, the one writer of every
worker's reported status (a draining host's included), sends it and says, once per change of reason, why an
agent takes no new jobs, and once per change, when the machine is busy with work that is not the host's (the
host then still takes jobs, as the last choice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from host.ops.resources import CpuLoad
from host.runtime.accepted import process_error
from host.runtime.agents import Agent
from host.runtime.worker import WorkerConnection

logger = logging.getLogger("agenthost.host")

SERVER_TARGET_LOAD = 0.7  # livekit-server's agents.target_load: it offers no job to a worker at or above it


@dataclass(frozen=True)
class LoadPolicy:
    threshold: float = 0.9  # --load-threshold: the host's own CPU use at which it is full (0: CPU not counted)
    target: float = SERVER_TARGET_LOAD  # the server's target load: an open worker reports less


@dataclass(frozen=True)
class WorkerLoad:
    """What an agent's worker tells the server, and why it takes no new job (None when it takes them)."""

    load: float
    full: bool
    closed_because: str | None
    closed: str | None = None  # the kind of reason (max_jobs, cpu, cpu_share, no_process): what a change is judged by


OPEN_CEILING = 0.99  # an open worker's share of the target, at most: a busy machine leaves it just open
FAIR_SHARE_MARGIN = 0.8  # an agent whose jobs use less than this part of its fair share is not the one to close


def worker_load(*, cpu: float, jobs: int, max_jobs: int, threshold: float, target: float = SERVER_TARGET_LOAD,
                process_error: str | None = None, machine_cpu: float = 0.0, host_jobs: int = 1,
                agent_cpu: float | None = None, busy_agents: int = 1, top_agent: bool = False) -> WorkerLoad:
    """The load an agent's worker reports, so that the server's view and the host's agree.

    livekit-server offers a job only to a worker under its target load, and drops a job nobody can take; of
    several workers it prefers the least loaded. So the host is full only for a reason of its own: at
    `max_jobs`, its own CPU use (`cpu`) at `threshold` (0: CPU is not counted at all), or no job process can
    be started. Otherwise it is open and reports a load below `target`: the largest of its own CPU use and
    the machine's (`machine_cpu`) against `threshold`, and its running jobs against `max_jobs`, scaled into
    [0, target). A machine busy with other work makes it the last choice, never no choice; so does the host's
    own CPU while it runs no job at all (`host_jobs`, every agent's): that is its start-up (templates
    importing, processes prewarming), and refusing calls would shed none of it.

    At the threshold, only the agents that take their share of the CPU close: `agent_cpu` (what this agent's
    jobs use, as a share of the host's CPUs) against the threshold split among the `busy_agents` (agents whose
    jobs use CPU), and the agent whose jobs use the most (`top_agent`) in any case, so that a host over its
    threshold always sheds something. One agent's busy jobs then close that agent, not every other: an agent
    well under its share stays open, as the last choice. With no figure for the agent, the host's use decides.
    """
    if max_jobs and jobs >= max_jobs:
        return WorkerLoad(1.0, True, f"at max_jobs ({max_jobs})", "max_jobs")
    if threshold and cpu >= threshold and host_jobs:
        share = threshold / max(1, busy_agents)
        if agent_cpu is None or agent_cpu >= share * FAIR_SHARE_MARGIN or (top_agent and agent_cpu > 0):
            if agent_cpu is None:
                return WorkerLoad(1.0, True, f"its CPU use {cpu:.0%} reached --load-threshold {threshold:.0%}", "cpu")
            return WorkerLoad(1.0, True, f"its CPU use {cpu:.0%} reached --load-threshold {threshold:.0%}; "
                                         f"this agent's jobs use {agent_cpu:.0%}", "cpu_share")
        if process_error is None:
            return WorkerLoad(round(target * OPEN_CEILING, 3), False, None)
    if process_error is not None:
        return WorkerLoad(1.0, True, f"cannot start job processes: {process_error}", "no_process")
    busy = max(cpu, machine_cpu) / threshold if threshold else 0.0
    used = min(OPEN_CEILING, max(busy, jobs / max_jobs if max_jobs else 0.0))
    return WorkerLoad(round(target * used, 3), False, None)



class LoadReporter:
    def __init__(self, cpu: CpuLoad, policy: LoadPolicy) -> None:
        self._cpu = cpu
        self._policy = policy
        self._closed: dict[str, str | None] = {}  # agent -> why it takes no new jobs, as last logged
        self._machine_busy = False  # as last logged

    async def report(self, agent: Agent, jobs: int, host_jobs: int, bounded: tuple[int, int]) -> None:
        """Send the agent's worker its load with `jobs` of its own running, `host_jobs` of every agent, and
        `bounded`: the jobs of its versions that take calls, and the most those take (0: no bound)."""
        name = agent.name
        self._note_machine()
        state = worker_load(cpu=self._cpu.value, jobs=bounded[0], max_jobs=bounded[1],
                            threshold=self._policy.threshold, target=self._policy.target,
                            process_error=process_error(agent), machine_cpu=self._cpu.machine, host_jobs=host_jobs,
                            agent_cpu=self._agent_cpu(name, jobs), busy_agents=self._cpu.busy_agents(),
                            top_agent=self._cpu.top_agent() == name)
        if state.closed != self._closed.get(name):  # said once per change of reason, not per figure
            if state.closed:
                logger.warning("agent %s takes no new jobs: %s", name, state.closed_because, extra={"agent": name})
            else:
                logger.info("agent %s takes jobs again", name, extra={"agent": name})
            self._closed[name] = state.closed
        await agent.worker.update_worker(full=state.full, load=state.load, job_count=jobs)

    async def draining(self, worker: WorkerConnection, jobs: int) -> None:
        """A draining host takes no new job, whatever its load: the server offers its jobs to other hosts."""
        await worker.update_worker(full=True, load=1.0, job_count=jobs)

    def _agent_cpu(self, name: str, jobs: int) -> float | None:
        """What the agent's jobs use of the host's CPUs: nothing when it runs none, or when others' jobs were
        measured and its were not seen using any; None while no job has been measured (its first interval)."""
        share = self._cpu.agent_share(name)
        if share is None and (not jobs or self._cpu.busy_agents()):
            return 0.0
        return share

    def _note_machine(self) -> None:
        threshold = self._policy.threshold
        busy = bool(threshold) and self._cpu.machine >= threshold > self._cpu.value
        if busy != self._machine_busy:
            if busy:
                logger.warning("the machine's CPU is %.0f%% busy, this host's own use %.0f%%: still taking jobs "
                               "(they may run slower), as the last choice of the server", self._cpu.machine * 100,
                               self._cpu.value * 100)
            else:
                logger.info("the machine's CPU is no longer busy with other work (%.0f%%)", self._cpu.machine * 100)
            self._machine_busy = busy
