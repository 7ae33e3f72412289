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
class Version:
    """One definition of an agent, with its own metadata checker and process pool. An agent without
    `version:` has one."""

    definition: AgentDefinition
    checker: MetadataChecker
    pool: ProcessPool

    @property
    def key(self) -> str:
        return self.definition.key


@dataclass(frozen=True)
class Agent:
    """One served agent: its versions (one, unless its files give several) and its one registration with the
    server. Frozen: a reload makes a new `Agent` that may keep the old parts."""

    versions: tuple[Version, ...]
    worker: WorkerConnection

    @property
    def name(self) -> str:
        return self.versions[0].definition.name

    @property
    def definition(self) -> AgentDefinition:
        """The first version's definition: what all versions share (name, dispatch, job type) is in it."""
        return self.versions[0].definition

    @property
    def checker(self) -> MetadataChecker:
        return self.versions[0].checker

    @property
    def pool(self) -> ProcessPool:
        return self.versions[0].pool

    @property
    def idle_count(self) -> int:
        """Its prewarmed processes, over all its versions."""
        return sum(v.pool.idle_count for v in self.versions)

    def version(self, definition: AgentDefinition) -> Version:
        return next(v for v in self.versions if v.definition is definition)


class AgentSet:
    def __init__(self, credentials: Credentials, handler: JobHandler, settings: ProcessSettings,
                 metrics: Metrics | None = None) -> None:
        self._credentials = credentials
        self._metrics = metrics
        self._handler = handler
        self._settings = settings
        self._agents: dict[str, Agent] = {}  # by name
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
        """Every served definition, by key (`name`, or `name@version`)."""
        return {v.key: v.definition for a in self._agents.values() for v in a.versions}

    def sources(self) -> dict[str, Snapshot]:
        return {v.key: dict(v.pool.sources) for a in self._agents.values() for v in a.versions}

    def serves(self, worker: WorkerConnection) -> Agent | None:
        """The agent `worker` serves now, or None when it was removed or re-registered by a reload."""
        agent = self._agents.get(worker.agent)
        return agent if agent is not None and agent.worker is worker else None

    # -- writing -------------------------------------------------------------------------------
    def add(self, definition: AgentDefinition, sources: Snapshot | None = None,
            registered: WorkerConnection | None = None) -> Agent:
        """Serve an agent, or another version of one: keep its processes warm; register a new name (or go on
        with `registered`, the registration of the versions it replaces, when it registers as they did)."""
        version = self._version(definition, sources)
        version.pool.start()
        current = self._agents.get(definition.name)
        if current is not None:  # another version of a served agent: its registration serves this one too
            agent = Agent((*current.versions, version), current.worker)
        elif registered is not None and (registered.definition.registered_name, registered.definition.job_type) \
                == (definition.registered_name, definition.job_type):
            registered.update(definition)
            agent = Agent((version,), registered)
        else:
            worker = WorkerConnection(definition, self._credentials, self._handler)
            agent = Agent((version,), worker)
            if self._metrics is not None:
                self._metrics.prepare(definition.name)
            worker.start()
        self._agents[definition.name] = agent
        return agent

    def apply(self, change: Plan, sources: Mapping[str, Snapshot]) -> None:
        """Make the served agents match a valid plan (by key: each version on its own). Running jobs are not
        touched."""
        # a name whose every version this reload replaces (its first `version:`, its one version renamed) keeps
        # its registration: its running jobs keep the worker that reports them, and the server sees no gap
        replaced = {d.name for d in change.added}
        registrations: dict[str, WorkerConnection] = {}
        for definition in change.removed:
            self._remove(definition, registrations if definition.name in replaced else None)
        renewed: set[str] = set()  # names registered anew in this reload
        for c in change.changes:
            agent = self._agents[c.name]
            old = next(v for v in agent.versions if v.key == c.old.key)
            worker = agent.worker
            if c.needs_registration and c.name not in renewed:
                worker = WorkerConnection(c.new, self._credentials, self._handler)
                worker.start()
                renewed.add(c.name)
                self._closing.spawn(agent.worker.close(), name=f"close-worker-{c.name}")
            elif worker is agent.worker and old is agent.versions[0]:
                worker.update(c.new)
            pool = old.pool
            if c.needs_new_processes:
                pool = self._pool(c.new, sources.get(c.new.key))
                pool.start()
                self._closing.spawn(old.pool.close(), name=f"close-pool-{c.new.key}")
            else:
                pool.update(c.new)
            new = Version(c.new, MetadataChecker(c.new.metadata), pool)
            self._agents[c.name] = Agent(tuple(new if v is old else v for v in agent.versions), worker)
        for definition in change.added:
            kept = registrations.pop(definition.name, None)
            agent = self.add(definition, sources.get(definition.key), kept)
            if kept is not None and agent.worker is not kept:  # registered otherwise now: the old one goes
                self._closing.spawn(kept.close(), name=f"close-worker-{definition.name}")

    async def close(self) -> None:
        """Unregister every agent and end their idle processes."""
        agents, self._agents = list(self._agents.values()), {}
        for agent in agents:
            self._closing.spawn(agent.worker.close(), name=f"close-worker-{agent.name}")
            for version in agent.versions:
                self._closing.spawn(version.pool.close(), name=f"close-pool-{version.key}")
        await self._closing.wait_all()

    def _remove(self, definition: AgentDefinition, keep: dict[str, WorkerConnection] | None = None) -> None:
        """Stop serving one version; with its last, its registration ends too, unless `keep` takes it."""
        agent = self._agents[definition.name]
        gone = next(v for v in agent.versions if v.key == definition.key)
        self._closing.spawn(gone.pool.close(), name=f"close-pool-{gone.key}")
        rest = tuple(v for v in agent.versions if v is not gone)
        if rest:
            self._agents[definition.name] = Agent(rest, agent.worker)
        else:
            del self._agents[definition.name]
            if keep is not None:
                keep[agent.name] = agent.worker
            else:
                self._closing.spawn(agent.worker.close(), name=f"close-worker-{agent.name}")

    def _version(self, definition: AgentDefinition, sources: Snapshot | None) -> Version:
        return Version(definition, MetadataChecker(definition.metadata), self._pool(definition, sources))

    def _pool(self, definition: AgentDefinition, sources: Snapshot | None) -> ProcessPool:
        return ProcessPool(definition, self._settings.log_format, self._settings.log_level, sources,
                           self._settings.confinement)
