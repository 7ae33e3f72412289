"""What a host tells the server of each agent's load, and the log line when an agent closes or opens again.

livekit-server offers a job only to a worker whose load is under its target; `worker_load` (a pure
function) decides the figure and whether the agent is full, and this reporter sends it and says, once per
change of reason, why an agent takes no new jobs, and once per change, when the machine is busy with work
that is not the host's (the host then still takes jobs, as the last choice).
"""

from __future__ import annotations

import logging

from host.ops.resources import CpuLoad, LoadPolicy, worker_load
from host.runtime.agents import Agent
from host.runtime.job import process_error

logger = logging.getLogger("agenthost.host")


class LoadReporter:
    def __init__(self, cpu: CpuLoad, policy: LoadPolicy) -> None:
        self._cpu = cpu
        self._policy = policy
        self._closed: dict[str, str | None] = {}  # agent -> why it takes no new jobs, as last logged
        self._machine_busy = False  # as last logged

    async def report(self, agent: Agent, jobs: int, host_jobs: int) -> None:
        """Send the agent's worker its load with `jobs` of its own running, and `host_jobs` of every agent."""
        name = agent.name
        self._note_machine()
        state = worker_load(cpu=self._cpu.value, jobs=jobs, max_jobs=agent.definition.limits.max_jobs,
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
