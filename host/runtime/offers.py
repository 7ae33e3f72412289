"""An offer's way to its answer, in the parts that hold no state of the job table: which version of the agent
takes it, what an answer decided while the metadata check ran must become once the check is over, and how an
offer that is not taken is counted, logged and ended in its span."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from host.ops.metrics import Metrics
from host.runtime.accepted import pool_error
from host.runtime.admission import Accept, Admission, Decline, Refuse
from host.runtime.agents import Agent, Version
from host.runtime.versions import Health, pick
from host.tracing import JobSpan

logger = logging.getLogger("agenthost.host")


def version_for(agent: Agent, health: Health, room: str, metadata: str, avoid: str | None) -> Version:
    """The version of `agent` a job of `room` runs: by weight, sticky by room (or route_by); another one when its
    processes cannot start (another version takes the call rather than no one)."""
    definitions = [v.definition for v in agent.versions]
    definition = pick(definitions, health, room, metadata, avoid)
    if len(definitions) > 1 and pool_error(agent.version(definition).pool) is not None:
        definition = pick(definitions, health, room, metadata, definition.version)
    return agent.version(definition)


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
