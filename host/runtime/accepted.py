"""A job the host accepted, as the job table keeps it: its facts (frozen at the offer) and the state of its run;
what its process is given at the assignment, and what the journal keeps of it.

Also what the job table reads of the agents it serves (`AgentLookup`), and when an agent cannot take a job.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.definitions import AgentDefinition
from host.logs import job_fields
from host.process.handle import JobProcess
from host.process.pool import ProcessPool
from host.runtime.agents import Agent
from host.runtime.journal import Entry
from host.runtime.outcome import Failure
from host.runtime.worker import WorkerConnection
from host.tracing import JobSpan
from host.wire.messages import Participant, StartJob


@dataclass(frozen=True)
class JobFacts:
    """What is known of a job when its offer is accepted; never changes afterwards."""

    id: str
    agent: str
    room: str
    dispatch_id: str
    definition: AgentDefinition  # the definition it was accepted under; it runs under that one
    worker: WorkerConnection
    metadata: object  # parsed and validated at the offer
    participant: Participant  # who the job joins as
    accepted_at: float = field(default_factory=time.time)
    dispatched_metadata: str = ""  # as the dispatch gave it: what a recovery dispatches again
    recovery_of: str | None = None  # the first job of the call, when this one takes it over
    attempt: int = 0  # how many times the call was taken over before this job
    trace_id: str | None = None  # of its `agenthost.job` span, when tracing is on
    avoided: str | None = None  # a version this call's job failed on before, when it is started again

    @property
    def version(self) -> str | None:
        return self.definition.version

    @property
    def log_fields(self) -> dict[str, Any]:
        fields = job_fields(self.agent, self.id, self.dispatch_id, self.room)
        if self.trace_id:
            fields["trace_id"] = self.trace_id
        if self.definition.version is not None:
            fields["version"] = self.definition.version
        return fields


@dataclass
class Job:
    """An accepted job: its facts, and the state of its run (written by the `JobTable` only)."""

    facts: JobFacts
    process: JobProcess | None = None
    started_at: float | None = None  # time.time() when its process got the job
    failure: Failure | None = None  # decided by the host while it ran (e.g. the memory limit)
    task: asyncio.Task[None] | None = None  # its supervision
    reserved: asyncio.Task[JobProcess] | None = None  # its process being taken, until the assignment
    span: JobSpan = field(default_factory=lambda: JobSpan(None))  # its trace, from the offer to the exit

    @property
    def id(self) -> str:
        return self.facts.id

    @property
    def agent(self) -> str:
        return self.facts.agent

    @property
    def state(self) -> str:
        return "accepted" if self.process is None else self.process.state.value

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


def start_message(job: Job, assignment: agent_pb.JobAssignment, worker: WorkerConnection, credentials: Credentials,
                  otel_env: tuple[tuple[str, str], ...]) -> StartJob:
    """What the job's process is sent to run it."""
    facts = job.facts
    return StartJob(job=assignment.job.SerializeToString(), definition=facts.definition,
                    url=assignment.url or credentials.url, token=assignment.token, credentials=credentials,
                    worker_id=worker.worker_id or "", accepted_at=facts.accepted_at, metadata=facts.metadata,
                    participant=facts.participant, recovery_of=facts.recovery_of, traceparent=job.span.traceparent,
                    otel_env=otel_env)


def journal_entry(facts: JobFacts, server: str, host_pid: int, host_start: int) -> Entry:
    """The journal's row of a running job: what another host needs to take its call over."""
    return Entry(facts.id, facts.agent, facts.room, facts.dispatch_id, facts.dispatched_metadata,
                 facts.participant.identity, server, host_pid, host_start, time.time(), facts.attempt,
                 facts.recovery_of)


class AgentLookup(Protocol):
    """The served agents, as the job table reads them (an `AgentSet`)."""

    def get(self, name: str) -> Agent | None: ...

    def serves(self, worker: WorkerConnection) -> Agent | None: ...

    def names(self) -> list[str]: ...


def pool_error(pool: ProcessPool) -> str | None:
    """Why a pool cannot give a job a process now (its last start failed and none is ready), or None."""
    return pool.last_error if pool.last_error is not None and not pool.idle_count else None


def process_error(agent: Agent) -> str | None:
    """Why the agent cannot start job processes now: none of its versions can; or None."""
    errors = [pool_error(v.pool) for v in agent.versions]
    return errors[0] if all(errors) else None


def kill_reserved(task: asyncio.Task[JobProcess]) -> None:
    """A process taken for a job that never came is not given back: it may already be stale."""
    if not task.cancelled() and task.exception() is None:
        task.result().kill()


class NoAgents:
    def get(self, name: str) -> Agent | None:
        return None

    def serves(self, worker: WorkerConnection) -> Agent | None:
        return None

    def names(self) -> list[str]:
        return []
