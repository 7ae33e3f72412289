"""A job's end, once its process is on its way out: the exit waited for (bounded by its shutdown timeout), the
outcome decided (host.runtime.outcome), its span, metrics and log line, its version's health, the call dispatched
again where that is the rule (host.runtime.redispatch), and the status reported to the server."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from livekit.protocol import agent as agent_pb

from host.ops.metrics import Metrics
from host.ops.resources import JobCpuEnd, JobsCpu
from host.process.exits import ProcessExit
from host.process.handle import JobProcess
from host.runtime.accepted import AgentLookup, Job, JobFacts
from host.runtime.outcome import Outcome, outcome
from host.runtime.recovery import CRASHES
from host.runtime.redispatch import Redispatch
from host.runtime.versions import VERSION_FAILURES, Health

logger = logging.getLogger("agenthost.host")


class JobEnding:
    def __init__(self, metrics: Metrics, health: Health, redispatch: Redispatch, agents: Callable[[], AgentLookup],
                 draining: Callable[[], bool], cpu: JobsCpu | None = None) -> None:
        self._metrics = metrics
        self._cpu = cpu  # each agent's CPU, counted to each job's exit
        self._health = health
        self._redispatch = redispatch
        self._agents = agents
        self._draining = draining

    async def wait(self, job: Job, process: JobProcess) -> Outcome:
        """Until the job's process has exited: its outcome, told to the span, the metrics and the log."""
        fields = {**job.facts.log_fields, "pid": process.pid}
        await process.wait_shutting_down()
        timeout = job.facts.definition.shutdown.timeout
        end = await process.wait_exit(timeout)
        result = outcome(end, job.failure, timeout)
        if end.killed_by_host and not end.kill_reason and end.result is not None:
            # its job was over (and is judged by that): what held the process is worth a word, all the same
            logger.warning("job process killed at its shutdown timeout (%gs) after its job ended: something it "
                           "started after the job (a thread that would not end, the last spans for a collector "
                           "that did not answer) held it", timeout, extra=fields)
        job.span.event("exited", code=end.code, **({"shutdown_reason": end.shutdown_reason} if end.shutdown_reason
                                                   else {}))
        # a job killed with no cgroup counting its CPU said nothing of it: what the monitor saw last is the best
        # known; and what the job said of itself leaves out the children still running, which the monitor saw
        known = [c for c in (end.cpu_seconds, self._cpu_seen(job.id)) if c is not None]
        cpu = max(known) if known else None
        self._count_cpu(job, end)
        job.span.set(**{"exit.code": end.code if end.code >= 0 else None,
                        "exit.signal": signal_name(-end.code) if end.code < 0 else None,
                        "cpu.seconds": cpu, "memory.peak_bytes": end.peak_memory_bytes,
                        "memory.peak_rss_bytes": end.peak_rss_bytes,
                        "shutdown.reason": end.shutdown_reason})
        job.span.end(result.reason or "ok", result.error)
        if job.started_at is not None:
            self._metrics.job_duration.labels(job.agent).observe(max(0.0, time.time() - job.started_at))
        used = {"cpu_seconds": round(cpu, 3)} if cpu is not None else {}
        self._log(result, {**fields, "reason": end.shutdown_reason, **used})
        # a crash is a death nobody asked for: a job the server, the host or a drain asked to end that died on
        # its way out is not put back into its call (its memory limit, which the host enforces, is a crash)
        crashed = result.reason in CRASHES and end.shutdown_reason in (None, "memory_limit")
        if not self._judge_version(job, process, result) and crashed:
            self._redispatch.crashed(job.facts)
        return result

    def _cpu_seen(self, job_id: str) -> float | None:
        """A job's CPU seconds at the monitor's last look."""
        return self._cpu.seconds_by_job.get(job_id) if self._cpu is not None else None

    def _count_cpu(self, job: Job, end: ProcessExit) -> None:
        """The CPU the job used since the monitor last looked, for its agent's count."""
        if self._cpu is not None and end.cpu_seconds is not None and job.started_at is not None:
            life = time.time() - job.started_at + 1.0  # a warm process's idle second before its job
            self._cpu.ended(JobCpuEnd(job.id, job.agent, end.cpu_seconds, life * (os.cpu_count() or 1)))

    async def no_process(self, job: Job, error: Exception) -> None:
        """The job got no process that could run it: failed, told to its span, its version and the server."""
        logger.error("job failed: no process: %s", error, extra=job.facts.log_fields)
        self._metrics.jobs_failed.labels(job.agent, "no_process").inc()
        job.span.end("no_process", str(error))
        await job.facts.worker.update_job(job.id, agent_pb.JobStatus.JS_FAILED, f"job process failed to start: {error}")
        # a version whose process does not start (its setup failing, say) fails its call before it joined:
        # the call is given another version, as when its entrypoint fails
        if job.facts.version is not None and self._failed_on_version(job.facts, in_room=False):
            self._redispatch.retry(job.facts)

    def _judge_version(self, job: Job, process: JobProcess, result: Outcome) -> bool:
        """A versioned agent's job ended: count it for its version, take a version failing too often out of
        rotation, and give a call whose job failed before it was in the room another version (True: it is
        dispatched again)."""
        facts = job.facts
        if facts.version is None:
            return False
        if result.reason not in VERSION_FAILURES:  # a drain, a stop or the server ending it is no fault of it
            self.note_version(facts, failed=False)
            return False
        # one that ever had someone in its room with it served its call (its caller may have left since)
        if not self._failed_on_version(facts, in_room=process.reports.met_someone):
            return False
        self._redispatch.retry(facts)
        return True

    def _failed_on_version(self, facts: JobFacts, in_room: bool) -> bool:
        """A versioned agent's job failed by its own doing: counted for its version; True when its call is to
        be given another version (it failed before it was in the room, and the agent has another to give)."""
        self.note_version(facts, failed=True)
        agent = self._agents().get(facts.agent)
        return not (in_room or facts.avoided is not None or agent is None or len(agent.versions) < 2
                    or self._draining() or facts.attempt >= facts.definition.recovery.max_attempts)

    def note_version(self, facts: JobFacts, failed: bool) -> None:
        assert facts.version is not None
        self._metrics.version_jobs.labels(facts.agent, facts.version, "failed" if failed else "ok").inc()
        agent = self._agents().get(facts.agent)
        if agent is not None and all(v.definition != facts.definition for v in agent.versions):
            return  # a job of a definition a reload replaced: the version's record is its current definition's
        if self._health.record(facts.definition, failed=failed):
            take_out = facts.definition.take_out
            logger.warning("version %s of agent %s taken out of rotation until the next reload: %d of its last "
                           "%d jobs failed", facts.version, facts.agent, self._health.failures(facts.definition),
                           take_out.of_last, extra=facts.log_fields)

    def _log(self, result: Outcome, fields: dict[str, Any]) -> None:
        if result.ok:
            self._metrics.jobs_finished.labels(fields["agent"]).inc()
            logger.info("job ended", extra=fields)
        else:
            self._metrics.jobs_failed.labels(fields["agent"], result.reason).inc()
            logger.error("job failed: %s", result.error, extra=fields)

    async def report(self, facts: JobFacts, result: Outcome, fields: dict[str, Any]) -> None:
        """The job's status, to the server (unless its worker is gone with a reload: no one to tell)."""
        if facts.worker.closed:
            logger.debug("job status not reported: its worker was unregistered", extra=fields)
            return
        status = agent_pb.JobStatus.JS_SUCCESS if result.ok else agent_pb.JobStatus.JS_FAILED
        await facts.worker.update_job(facts.id, status, result.error or "")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
