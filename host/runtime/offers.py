"""An offer's way to its answer, in the parts that hold no state of the job table: which version of the agent
takes it, the check of its metadata, what an answer decided while that check ran must become once it is over,
the accepted job as the table is to keep it (its process already being taken), and how an offer that is not
taken is counted, logged and ended in its span. `OfferDesk` runs those steps; the table records what it
accepts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from livekit.protocol import agent as agent_pb

from host.config.definitions import AgentDefinition
from host.logs import job_fields
from host.ops.metrics import Metrics
from host.runtime.accepted import AgentLookup, Job, JobFacts, pool_error
from host.runtime.admission import Accept, Admission, AgentState, Decline, Offer, Refuse, decide
from host.runtime.agents import Agent, Version
from host.runtime.journal import Retry
from host.runtime.recovery import RECOVERY_ATTRIBUTE
from host.runtime.redispatch import Redispatch
from host.runtime.versions import Health, pick
from host.runtime.worker import WorkerConnection
from host.tracing import HostTracing, JobSpan
from host.wire.messages import Participant

logger = logging.getLogger("agenthost.host")


def version_for(agent: Agent, health: Health, room: str, metadata: str, avoid: str | None,
                running: Callable[[AgentDefinition], int] = lambda _d: 0) -> Version:
    """The version of `agent` a job of `room` runs: by weight, sticky by room (or route_by); another one when its
    processes cannot start or it is at its `max_jobs` (`running` counts a version's jobs): another version takes
    the call rather than no one."""
    definitions = [v.definition for v in agent.versions]

    def cannot_take(d: AgentDefinition) -> bool:
        full = d.limits.max_jobs and running(d) >= d.limits.max_jobs
        return bool(full) or pool_error(agent.version(d).pool) is not None

    definition = pick(definitions, health, room, metadata, avoid)
    if len(definitions) > 1 and cannot_take(definition):
        others = [d for d in definitions
                  if d is not definition and d.version != avoid and not health.is_out(d) and not cannot_take(d)]
        if others:  # by weight among them (at weight 0 too): none taken out, avoided, full or failing to start
            definition = pick(others, Health(), room, metadata)
    return agent.version(definition)


def _invalid(answer: Admission) -> bool:
    return isinstance(answer, Refuse) and answer.reason == "invalid_metadata"


def _by_weight(agent: Agent, refused: Version, health: Health, avoid: str | None) -> list[Version]:
    """The agent's other versions that take new calls, heaviest first (then by name): where metadata `refused`'s
    schema refuses is tried next. Not one taken out, at weight 0 (rolled back from) or the one a retry avoids."""
    others = [v for v in agent.versions if v is not refused and v.definition.weight > 0
              and v.definition.version != avoid and not health.is_out(v.definition)]
    return sorted(others, key=lambda v: (-v.definition.weight, v.definition.version or ""))


def after_the_check(answer: Admission, draining: bool, running: int, max_jobs: int) -> Admission:
    """An Accept decided before the metadata check, declined if the host began draining or the agent reached
    `max_jobs` while it ran; any other answer as it is."""
    if not isinstance(answer, Accept):
        return answer
    if draining:
        return Decline("draining", "the host began draining during the check")
    if max_jobs and running >= max_jobs:
        return Decline("max_jobs", f"the agent reached max_jobs ({max_jobs}) during the check")
    return answer


def not_taken(answer: Refuse | Decline, agent: str, metrics: Metrics, span: JobSpan,
              fields: Mapping[str, Any]) -> None:
    """An offer refused for good (counted, logged as an error) or declined for another host to take."""
    if isinstance(answer, Refuse):
        metrics.jobs_refused.labels(agent, answer.reason).inc()
        logger.error("refused job: %s", answer.message, extra=dict(fields))
        span.event("refused", reason=answer.reason)
        span.end(f"refused_{answer.reason}", answer.message)
    else:
        metrics.jobs_declined.labels(agent, answer.reason).inc()
        logger.info("declined job offer: %s", answer.message, extra=dict(fields))
        span.event("declined", reason=answer.reason)
        span.end(f"declined_{answer.reason}")


class OfferDesk:
    """Answers the server's offers: the table's state it needs is read through `running` (the running jobs of a
    version) and `draining`, both as they are after the metadata check."""

    def __init__(self, metrics: Metrics, tracing: HostTracing, health: Health, redispatch: Redispatch,
                 agents: Callable[[], AgentLookup], running: Callable[[AgentDefinition], int],
                 draining: Callable[[], bool]) -> None:
        self._metrics = metrics
        self._tracing = tracing
        self._health = health
        self._redispatch = redispatch
        self._agents = agents
        self._running = running
        self._draining = draining

    async def answer(self, worker: WorkerConnection, request: agent_pb.AvailabilityRequest) -> tuple[Admission,
                                                                                                      Job | None]:
        """The answer to an offer, and the job to keep when it is accepted."""
        job = request.job
        span = self._tracing.job(agent=worker.agent, **{"job.id": job.id, "dispatch.id": job.dispatch_id,
                                                        "room": job.room.name, "worker.id": worker.worker_id or ""})
        fields = job_fields(worker.agent, job.id, job.dispatch_id, job.room.name)
        if span.trace_id:
            fields["trace_id"] = span.trace_id
        logger.debug("job offer", extra=fields)
        span.event("offered")
        agent = self._agents().serves(worker)
        retry = await self._redispatch.retry_of(worker.agent, job.room.name, len(agent.versions) if agent else 0)
        avoid = (retry.version or None) if retry is not None else None
        version = None
        if agent is not None:
            version = version_for(agent, self._health, job.room.name, job.metadata, avoid, self._running)
            span.set(**{"agent.version": version.definition.version})
        answer = await self._decide(job, version)
        if agent is not None and version is not None and len(agent.versions) > 1 and _invalid(answer):
            # metadata one version's schema refuses goes to another whose schema takes it (a canary's stricter
            # schema would otherwise turn its share of the calls away for good), heaviest first: the first to
            # accept it takes the call, else the first whose schema took it answers (declining, at its max_jobs)
            taken: tuple[Version, Admission] | None = None
            for other in _by_weight(agent, version, self._health, avoid):
                other_answer = await self._decide(job, other)
                if isinstance(other_answer, Accept):
                    taken = (other, other_answer)
                    break
                if taken is None and not _invalid(other_answer):
                    taken = (other, other_answer)
            if taken is not None:
                version, answer = taken
                span.set(**{"agent.version": version.definition.version})
        span.event("metadata checked", valid=not (isinstance(answer, Refuse) and answer.reason == "invalid_metadata"))
        if version is not None:
            answer = after_the_check(answer, self._draining(), self._running(version.definition),
                                     version.definition.limits.max_jobs)
        if isinstance(answer, Accept):
            assert agent is not None and version is not None
            answer, accepted = self._accept(answer, job, worker, version, span, retry)
            span.event("accepted")
            return answer, accepted
        not_taken(answer, worker.agent, self._metrics, span, fields)
        return answer, None

    async def _decide(self, job: agent_pb.Job, version: Version | None) -> Admission:
        state = None if version is None else AgentState(version.definition, version.checker,
                                                        self._running(version.definition), pool_error(version.pool))
        return await decide(Offer(job.id, job.room.name, job.metadata), state, draining=self._draining())

    def _accept(self, answer: Accept, job: agent_pb.Job, worker: WorkerConnection, version: Version, span: JobSpan,
                retry: Retry | None) -> tuple[Accept, Job]:
        definition = version.definition
        recovery_of, attempt = self._redispatch.accepted(definition.name, job.room.name, retry)
        if recovery_of is not None:  # the new job can tell, whatever its api: its participant says so
            answer = replace(answer, attributes={**answer.attributes, RECOVERY_ATTRIBUTE: recovery_of})
        participant = Participant(answer.identity, answer.name, answer.participant_metadata,
                                  tuple(sorted(answer.attributes.items())))
        facts = JobFacts(job.id, definition.name, job.room.name, job.dispatch_id, definition, worker, answer.metadata,
                         participant, dispatched_metadata=job.metadata, recovery_of=recovery_of, attempt=attempt,
                         trace_id=span.trace_id, avoided=(retry.version or None) if retry is not None else None)
        # its process is taken now, from the pool of the definition (and code) it was accepted under: a reload
        # before the assignment cannot change what it runs, and a process is warm by then
        reserved = asyncio.get_running_loop().create_task(version.pool.take(), name=f"reserve-{job.id}")
        reserved.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved at the assignment
        return answer, Job(facts, reserved=reserved, span=span)
