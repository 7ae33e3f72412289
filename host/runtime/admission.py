"""Deciding a job offer, as a value: accept it (with the participant to join as), decline it (another host
may take it), or refuse it for good (no host should run it).

`admit` is a pure function of the offer and the host's state at that moment; the worker connection only
turns its answer into protobuf, and the job table only records an accepted job. `decide` runs it within a
deadline, off the event loop when there is metadata to check.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from host.config.definitions import AgentDefinition, render_template
from host.config.metadata import MetadataChecker

logger = logging.getLogger("agenthost.host")

ADMIT_DEADLINE = 2.0  # deciding one offer (checking its metadata) takes at most this; then it is refused

@dataclass(frozen=True)
class Offer:
    """The facts of a job offer that the decision needs."""

    job_id: str
    room: str
    metadata: str


@dataclass(frozen=True)
class Accept:
    identity: str
    name: str
    participant_metadata: str
    attributes: dict[str, str]
    metadata: Any  # the job metadata, parsed and validated


@dataclass(frozen=True)
class Decline:
    """Not now, not here: the server may offer the job to another host."""

    reason: str  # a metrics label: draining, removed, max_jobs, no_process
    message: str


@dataclass(frozen=True)
class Refuse:
    """Not anywhere: the job must not run (its metadata is invalid)."""

    reason: str  # a metrics label: invalid_metadata
    message: str


Admission = Accept | Decline | Refuse


@dataclass(frozen=True)
class AgentState:
    """What the host knows of the offered agent when the offer arrives."""

    definition: AgentDefinition
    checker: MetadataChecker
    running: int  # its jobs accepted and not yet ended
    process_error: str | None = None  # why it cannot start job processes now, or None


def admit(offer: Offer, agent: AgentState | None, *, draining: bool) -> Admission:
    """The answer to one offer. `agent` is None when the offering worker no longer serves an agent (it was
    removed, or re-registered by a reload)."""
    if draining:
        return Decline("draining", "host is draining")
    if agent is None:
        return Decline("removed", "the agent was removed or re-registered by a reload")
    d = agent.definition
    if d.limits.max_jobs and agent.running >= d.limits.max_jobs:
        return Decline("max_jobs", f"at max_jobs ({d.limits.max_jobs})")
    if agent.process_error is not None:
        return Decline("no_process", f"cannot start job processes: {agent.process_error}")
    metadata, problems = agent.checker.check(offer.metadata, source=f"job {offer.job_id} metadata")
    if problems:
        return Refuse("invalid_metadata", "invalid metadata: " + "; ".join(f"{p.path}: {p.message}"
                                                                           for p in problems))
    names = {"job_id": offer.job_id, "agent": d.name, "room": offer.room}
    p = d.participant
    return Accept(identity=render_template(p.identity, **names), name=render_template(p.name, **names),
                  participant_metadata=p.metadata, attributes=dict(p.attributes), metadata=metadata)


async def decide(offer: Offer, agent: AgentState | None, *, draining: bool) -> Admission:
    """`admit`, bounded: checking metadata against a schema runs off the event loop with a deadline, and any
    failure to decide is a refusal, so that every offer gets an answer."""
    try:
        if agent is None or agent.definition.metadata.schema is None or not offer.metadata:
            return admit(offer, agent, draining=draining)
        return await asyncio.wait_for(asyncio.to_thread(admit, offer, agent, draining=draining), ADMIT_DEADLINE)
    except asyncio.TimeoutError:
        return Refuse("metadata_error", f"checking the metadata took over {ADMIT_DEADLINE:g}s")
    except Exception as exc:
        logger.exception("deciding the offer of job %s failed", offer.job_id)
        return Refuse("metadata_error", f"checking the metadata failed: {type(exc).__name__}")
