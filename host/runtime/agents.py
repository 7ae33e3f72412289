"""The agents a host serves: for each, its definition, metadata checker, process pool and worker connection.

`AgentSet` is the only writer of that collection. A reload reaches it as a `Plan`; workers and pools
get a new definition through their `update` method, never by attribute assignment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from host.aio import TaskSet
from host.config.credentials import Credentials
from host.config.definitions import AgentDefinition
from host.config.metadata import MetadataChecker
from host.config.sources import Snapshot
from host.ops.metrics import Metrics
from host.process.pool import ProcessPool, ProcessSettings
from host.reload.plan import Plan
from host.runtime.worker import JobHandler, WorkerConnection

logger = logging.getLogger("agenthost.host")


@dataclass(frozen=True)
class Agent:
    """One served agent. Frozen: a changed definition makes a new `Agent` that may keep the old parts."""

    definition: AgentDefinition
    checker: MetadataChecker
    pool: ProcessPool
    worker: WorkerConnection

    @property
    def name(self) -> str:
        return self.definition.name


class AgentSet:
    def __init__(self, credentials: Credentials, handler: JobHandler, settings: ProcessSettings,
                 metrics: Metrics | None = None) -> None:
        self._credentials = credentials
        self._metrics = metrics
        self._handler = handler
        self._settings = settings
        self._agents: dict[str, Agent] = {}
        self._closing = TaskSet("closing replaced agents")

    # -- reading -------------------------------------------------------------------------------
    def get(self, name: str) -> Agent | None:
        return self._agents.get(name)

    def __iter__(self) -> Iterator[Agent]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)

    def names(self) -> list[str]:
        return list(self._agents)

    def definitions(self) -> dict[str, AgentDefinition]:
        return {name: a.definition for name, a in self._agents.items()}

    def sources(self) -> dict[str, Snapshot]:
        return {name: dict(a.pool.sources) for name, a in self._agents.items()}

    def serves(self, worker: WorkerConnection) -> Agent | None:
        """The agent `worker` serves now, or None when it was removed or re-registered by a reload."""
        agent = self._agents.get(worker.agent)
        return agent if agent is not None and agent.worker is worker else None

    # -- writing -------------------------------------------------------------------------------
    def add(self, definition: AgentDefinition, sources: Snapshot | None = None) -> Agent:
        """Serve an agent: start keeping its processes warm and register it with the server."""
        pool = self._pool(definition, sources)
        worker = WorkerConnection(definition, self._credentials, self._handler)
        agent = Agent(definition, MetadataChecker(definition.metadata), pool, worker)
        self._agents[definition.name] = agent
        if self._metrics is not None:
            self._metrics.prepare(definition.name)
        pool.start()
        worker.start()
        return agent

    def apply(self, change: Plan, sources: Mapping[str, Snapshot]) -> None:
        """Make the served agents match a valid plan. Running jobs are not touched."""
        for definition in change.removed:
            self._retire(self._agents.pop(definition.name), worker=True, pool=True)
        for c in change.changes:
            old = self._agents[c.name]
            worker, pool = old.worker, old.pool
            if c.needs_registration:
                worker = WorkerConnection(c.new, self._credentials, self._handler)
                worker.start()
            else:
                worker.update(c.new)
            if c.needs_new_processes:
                pool = self._pool(c.new, sources.get(c.name))
                pool.start()
            else:
                pool.update(c.new)
            self._retire(old, worker=worker is not old.worker, pool=pool is not old.pool)
            self._agents[c.name] = Agent(c.new, MetadataChecker(c.new.metadata), pool, worker)
        for definition in change.added:
            self.add(definition, sources.get(definition.name))

    async def close(self) -> None:
        """Unregister every agent and end their idle processes."""
        agents, self._agents = list(self._agents.values()), {}
        for agent in agents:
            self._retire(agent, worker=True, pool=True)
        await self._closing.wait_all()

    def _pool(self, definition: AgentDefinition, sources: Snapshot | None) -> ProcessPool:
        return ProcessPool(definition, self._settings.log_format, self._settings.log_level, sources,
                           self._settings.confinement)

    def _retire(self, agent: Agent, *, worker: bool, pool: bool) -> None:
        if worker:
            self._closing.spawn(agent.worker.close(), name=f"close-worker-{agent.name}")
        if pool:
            self._closing.spawn(agent.pool.close(), name=f"close-pool-{agent.name}")
