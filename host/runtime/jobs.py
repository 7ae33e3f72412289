"""The jobs a host has accepted, from the offer until their process has exited and been reported.

`JobTable` is the only writer of that collection and of each job's run state. It implements the
worker's `JobHandler`: an offer is decided by `admit`, an assignment takes a prewarmed process, and
each running job is supervised until its outcome is known and reported to the server.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from livekit.protocol import agent as agent_pb

from host.aio import TaskSet
from host.config.credentials import Credentials
from host.config.definitions import AgentDefinition
from host.logs import job_fields
from host.ops.metrics import Metrics
from host.ops.monitor import Sampled
from host.ops.resources import CpuLoad, LoadPolicy
from host.process.handle import JobProcess, ProcessStartError, ProcessState
from host.process.messages import Participant, StartJob
from host.runtime.admission import Accept, Admission, AgentState, Decline, Offer, Refuse, decide
from host.runtime.dispatching import create_dispatch
from host.runtime.job import AgentLookup, Job, JobFacts, NoAgents, kill_reserved, pool_error
from host.runtime.journal import Entry, JobJournal
from host.runtime.load import LoadReporter
from host.runtime.outcome import Failure, Outcome, outcome
from host.runtime.recovery import CRASH, CRASHES, RECOVERY_ATTRIBUTE, Recoverer, crash_backoff
from host.runtime.versions import VERSION_FAILURES, Health, pick
from host.runtime.worker import WorkerConnection
from host.tracing import HostTracing

logger = logging.getLogger("agenthost.host")

ASSIGNMENT_TIMEOUT = 15.0  # an accepted offer whose assignment never comes is released after this


class JobTable:
    def __init__(self, credentials: Credentials, metrics: Metrics, cpu: CpuLoad, load: LoadPolicy,
                 journal: JobJournal | None = None, tracing: HostTracing | None = None) -> None:
        self._agents: AgentLookup = NoAgents()  # until `attach`: the agent set is built with this table
        self._credentials = credentials
        self._metrics = metrics
        self._load = LoadReporter(cpu, load)
        self._tasks = TaskSet("job table")
        self._jobs: dict[str, Job] = {}
        self._journal = journal
        self._tracing = tracing or HostTracing({})
        self.health = Health()  # each version's last jobs, and those taken out of rotation
        self._retries: dict[tuple[str, str], str] = {}  # (agent, room) -> the version its last job failed on
        self._recoveries: dict[tuple[str, str], Entry] = {}  # (agent, room) -> the job whose call is taken over
        self._recoverer = Recoverer(credentials, self.expect_recovery, metrics, None)  # crashed jobs' calls
        self.draining = False

    def attach(self, agents: AgentLookup) -> None:
        """The agents whose jobs this table runs (they are built with this table as their job handler)."""
        self._agents = agents

    # -- reading -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Job]:
        return iter(sorted(self._jobs.values(), key=lambda j: j.facts.accepted_at))

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def count(self, agent: str) -> int:
        return sum(1 for j in self._jobs.values() if j.agent == agent)

    def _count_version(self, definition: AgentDefinition) -> int:
        """The running jobs of this version (of this agent, when it has none): its `max_jobs` bounds them."""
        return sum(1 for j in self._jobs.values() if j.facts.definition.key == definition.key)

    def counts(self) -> Counter[str]:
        return Counter(j.agent for j in self._jobs.values())

    def expect_recovery(self, agent: str, room: str, entry: Entry | None) -> None:
        """The next offer of `agent` in `room` takes over the call of `entry`, whose host died (None: it will not
        come: its dispatch failed)."""
        if entry is None:
            self._recoveries.pop((agent, room), None)
        else:
            self._recoveries[(agent, room)] = entry

    # -- JobHandler: what the server asks of a worker ------------------------------------------
    def on_registered(self, worker: WorkerConnection) -> None:
        if self.draining:
            self._tasks.spawn(worker.update_worker(full=True, load=1.0, job_count=0), name="report-draining")

    async def on_offer(self, worker: WorkerConnection, request: agent_pb.AvailabilityRequest) -> Admission:
        job = request.job
        span = self._tracing.job(agent=worker.agent, **{"job.id": job.id, "dispatch.id": job.dispatch_id,
                                                        "room": job.room.name, "worker.id": worker.worker_id or ""})
        fields = job_fields(worker.agent, job.id, job.dispatch_id, job.room.name)
        if span.trace_id:
            fields["trace_id"] = span.trace_id
        logger.debug("job offer", extra=fields)
        span.event("offered")
        agent = self._agents.serves(worker)
        version = None
        avoid = self._retries.get((worker.agent, job.room.name))
        if agent is not None:  # the version of this job: by weight, sticky by room (or route_by)
            definitions = [v.definition for v in agent.versions]
            definition = pick(definitions, self.health, job.room.name, job.metadata, avoid)
            if len(definitions) > 1 and pool_error(agent.version(definition).pool) is not None:
                # its processes cannot start: another version takes the call rather than no one
                definition = pick(definitions, self.health, job.room.name, job.metadata, definition.version)
            version = agent.version(definition)
            span.set(**{"agent.version": definition.version})
        state = None if version is None else AgentState(version.definition, version.checker,
                                                        self._count_version(version.definition),
                                                        pool_error(version.pool))
        answer = await decide(Offer(job.id, job.room.name, job.metadata), state, draining=self.draining)
        span.event("metadata checked", valid=not (isinstance(answer, Refuse) and answer.reason == "invalid_metadata"))
        if isinstance(answer, Accept):
            assert version is not None
            limit = version.definition.limits.max_jobs
            # decided while the check ran
            if self.draining or (limit and self._count_version(version.definition) >= limit):
                answer = Decline("draining" if self.draining else "max_jobs", "the host filled up during the check")
        if isinstance(answer, Accept):
            assert agent is not None and version is not None
            self._retries.pop((agent.name, job.room.name), None)
            recovered = self._recoveries.pop((agent.name, job.room.name), None)
            recovery_of = (recovered.recovery_of or recovered.job_id) if recovered is not None else None
            if recovery_of is not None:  # the new job can tell, whatever its api: its participant says so
                answer = replace(answer, attributes={**answer.attributes, RECOVERY_ATTRIBUTE: recovery_of})
            attributes = answer.attributes
            participant = Participant(answer.identity, answer.name, answer.participant_metadata,
                                      tuple(sorted(attributes.items())))
            facts = JobFacts(job.id, agent.name, job.room.name, job.dispatch_id, version.definition, worker,
                             answer.metadata, participant, dispatched_metadata=job.metadata,
                             recovery_of=recovery_of, attempt=recovered.attempt + 1 if recovered else 0,
                             trace_id=span.trace_id, avoided=avoid)
            # its process is taken now, from the pool of the definition (and code) it was accepted under: a
            # reload before the assignment cannot change what it runs, and a process is warm by then
            reserved = asyncio.get_running_loop().create_task(version.pool.take(), name=f"reserve-{job.id}")
            reserved.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved at the assignment
            self._jobs[job.id] = Job(facts, reserved=reserved, span=span)
            span.event("accepted")
            asyncio.get_running_loop().call_later(ASSIGNMENT_TIMEOUT, self._release_unassigned, job.id)
            return answer
        if isinstance(answer, Refuse):
            self._metrics.jobs_refused.labels(worker.agent, answer.reason).inc()
            logger.error("refused job: %s", answer.message, extra=fields)
            span.event("refused", reason=answer.reason)
            span.end(f"refused_{answer.reason}", answer.message)
        else:
            self._metrics.jobs_declined.labels(worker.agent, answer.reason).inc()
            logger.info("declined job offer: %s", answer.message, extra=fields)
            span.event("declined", reason=answer.reason)
            span.end(f"declined_{answer.reason}")
        return answer

    async def on_assignment(self, worker: WorkerConnection, assignment: agent_pb.JobAssignment) -> None:
        pb = assignment.job
        logger.debug("job assigned", extra=job_fields(worker.agent, pb.id))
        job = self._jobs.get(pb.id)
        if job is None or job.reserved is None:
            logger.warning("assignment for a job this host did not accept", extra={"job_id": pb.id})
            await worker.update_job(pb.id, agent_pb.JobStatus.JS_FAILED, "job was not accepted by this host")
            return
        fields = job.facts.log_fields
        reserved, job.reserved = job.reserved, None
        process: JobProcess | None = None
        job.span.event("assigned")
        try:
            process = await reserved  # started, and perhaps not ready yet: its job is queued in its pipe
            job.span.event("process taken", warm=process.state is ProcessState.IDLE, pid=process.pid or 0)
            self._hand(job, process, assignment, worker)
            await process.wait_ready(job.facts.definition.processes.init_timeout)
        except (ProcessStartError, OSError) as exc:
            logger.error("job failed: no process: %s", exc, extra=fields)
            self._metrics.jobs_failed.labels(job.agent, "no_process").inc()
            if job.facts.version is not None:
                self._note_version(job.facts, failed=True)
            self._jobs.pop(job.id, None)
            if self._journal is not None:
                self._journal.remove(job.id)
            if process is not None:
                process.kill()
            job.span.end("no_process", str(exc))
            await worker.update_job(job.id, agent_pb.JobStatus.JS_FAILED, f"job process failed to start: {exc}")
            return
        self._metrics.jobs_started.labels(job.agent).inc()
        job.task = asyncio.get_running_loop().create_task(self._supervise(job, process), name=f"job-{job.id}")
        logger.info("job running in process %s", process.pid, extra={**fields, "pid": process.pid})
        await worker.update_job(job.id, agent_pb.JobStatus.JS_RUNNING)
        await self.report_load(job.agent)

    def on_termination(self, worker: WorkerConnection, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.process is not None:
            self._ending(job_id)
            logger.info("server terminated the job", extra=job.facts.log_fields)
            job.span.event("shutdown asked", reason="terminated_by_server")
            job.process.request_shutdown("terminated_by_server")

    # -- what the host asks of its jobs ----------------------------------------------------------
    def fail(self, job_id: str, reason: str, message: str) -> None:
        """Shut a running job down for a reason the host decided; it is reported failed with it. The first
        such reason is kept."""
        job = self._jobs.get(job_id)
        if job is None or job.process is None or job.failure is not None:
            return
        job.failure = Failure(reason, message)
        self._ending(job_id)
        logger.error("%s; shutting the job down", message, extra={**job.facts.log_fields, "pid": job.pid})
        job.span.event("shutdown asked", reason=reason)
        job.process.request_shutdown(reason)

    def sampled(self) -> list[Sampled]:
        """The job processes running now, for the resource monitor."""
        return [Sampled(j.id, j.process.pid, j.facts.definition.limits, j.facts.log_fields, j.process.group, j.agent)
                for j in self._jobs.values()
                if j.process is not None and j.process.pid is not None and not j.process.exited]

    async def report_load_all(self) -> None:
        for name in sorted({j.agent for j in self._jobs.values()} | set(self._agents.names())):
            await self.report_load(name)

    def stop_taking(self) -> None:
        """Decline every offer from now on (a drain)."""
        self.draining = True

    def shutdown_all(self, reason: str) -> None:
        """Ask every running job to shut down; jobs not assigned yet are dropped (the server is told by the
        drain that this host takes nothing, and their processes end)."""
        self._end_all(reason, lambda process: process.request_shutdown(reason))

    def kill_all(self, reason: str) -> None:
        self._end_all(reason, lambda process: process.kill(reason))

    def _ending(self, job_id: str) -> None:
        """The host (or the server) asked the job to end: its call is not to be taken over if the host dies."""
        if self._journal is not None:
            self._journal.ending(job_id)

    def _end_all(self, reason: str, end: Callable[[JobProcess], None]) -> None:
        for job in list(self._jobs.values()):
            self._ending(job.id)
            if job.process is not None:
                job.span.event("shutdown asked", reason=reason)
                end(job.process)
            elif job.reserved is not None:
                logger.warning("accepted job dropped before its assignment: %s", reason, extra=job.facts.log_fields)
                self._drop_unassigned(job, "dropped_unassigned")

    async def wait_supervised(self, timeout: float | None = None) -> None:
        """Until every running job has been reported (bounded by `timeout`)."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def report_load(self, name: str) -> None:
        agent = self._agents.get(name)
        if agent is not None and not self.draining:
            await self._load.report(agent, self.count(name), len(self._jobs))

    # -- one job's run ----------------------------------------------------------------------------
    def _hand(self, job: Job, process: JobProcess, assignment: agent_pb.JobAssignment,
              worker: WorkerConnection) -> None:
        """Give the process its job (queued in its pipe if it is still getting ready)."""
        facts = job.facts
        job.process = process
        job.started_at = time.time()
        def started(at: float) -> None:
            self._metrics.offer_to_entrypoint.labels(facts.agent).observe(max(0.0, at - facts.accepted_at))
            job.span.event("entrypoint started")

        process.on_started = started
        process.start_job(StartJob(
            job=assignment.job.SerializeToString(), definition=facts.definition,
            url=assignment.url or self._credentials.url, token=assignment.token,
            credentials=self._credentials, worker_id=worker.worker_id or "", accepted_at=facts.accepted_at,
            metadata=facts.metadata, participant=facts.participant, recovery_of=facts.recovery_of,
            traceparent=job.span.traceparent, otel_env=self._tracing.env,
        ), facts.id)
        if self._journal is not None:  # from here on, a host that dies leaves this call to the next one
            self._journal.add(Entry(facts.id, facts.agent, facts.room, facts.dispatch_id, facts.dispatched_metadata,
                                    facts.participant.identity, self._credentials.url, self._journal.pid,
                                    self._journal.start, time.time(), facts.attempt, facts.recovery_of))

    async def _supervise(self, job: Job, process: JobProcess) -> None:
        fields = {**job.facts.log_fields, "pid": process.pid}
        await process.wait_shutting_down()
        timeout = job.facts.definition.shutdown.timeout
        end = await process.wait_exit(timeout)
        result = outcome(end, job.failure, timeout)
        job.span.event("exited", code=end.code, **({"shutdown_reason": end.shutdown_reason} if end.shutdown_reason
                                                   else {}))
        job.span.set(**{"exit.code": end.code if end.code >= 0 else None,
                        "exit.signal": signal_name(-end.code) if end.code < 0 else None,
                        "cpu.seconds": end.cpu_seconds, "memory.peak_bytes": end.peak_memory_bytes,
                        "shutdown.reason": end.shutdown_reason})
        job.span.end(result.reason or "ok", result.error)
        if job.started_at is not None:
            self._metrics.job_duration.labels(job.agent).observe(max(0.0, time.time() - job.started_at))
        self._log_outcome(result, {**fields, "reason": end.shutdown_reason})
        if not self._judge_version(job, process, result) and result.reason in CRASHES:
            self._crashed(job.facts)
        self._jobs.pop(job.id, None)
        if self._journal is not None:  # it ended while this host lived, however it ended: not a call to recover
            self._journal.remove(job.id)
        await self._report(job.facts, result, fields)
        await self.report_load(job.agent)

    def _crashed(self, facts: JobFacts) -> None:
        """A job whose process died while this host lives: its call gets the agent again, after a backoff, if its
        agent says so (recovery.on_crash) and the call still has a caller and no other agent."""
        backoff = crash_backoff(facts.definition, facts.attempt)
        if backoff is None or self.draining:
            return
        lost_at = time.time()
        entry = Entry(facts.id, facts.agent, facts.room, facts.dispatch_id, facts.dispatched_metadata,
                      facts.participant.identity, self._credentials.url, 0, 0, facts.accepted_at, facts.attempt,
                      facts.recovery_of)
        logger.info("job process died: its call is dispatched again in %gs (recovery.on_crash), if it still has a "
                    "caller", backoff, extra=facts.log_fields)

        async def later() -> None:
            await asyncio.sleep(backoff)
            if not self.draining:
                await self._recoverer.recover(entry, self._agents, CRASH, since=lost_at)

        self._tasks.spawn(later(), name=f"crash-{facts.id}")

    def _judge_version(self, job: Job, process: JobProcess, result: Outcome) -> bool:
        """A versioned agent's job ended: count it for its version, take a version failing too often out of
        rotation, and give a call whose job failed before it was in the room another version (True: it is
        dispatched again)."""
        facts = job.facts
        if facts.version is None:
            return False
        failed = result.reason in VERSION_FAILURES  # a drain, a stop or the server ending it is no fault of it
        self._note_version(facts, failed)
        vitals = process.vitals
        in_room = vitals is not None and vitals.participants > 0
        agent = self._agents.get(facts.agent)
        if not failed or in_room or facts.avoided is not None or agent is None or len(agent.versions) < 2 \
                or self.draining:
            return False
        self._retries[(facts.agent, facts.room)] = facts.version
        asyncio.get_running_loop().call_later(ASSIGNMENT_TIMEOUT, self._retries.pop, (facts.agent, facts.room),
                                              None)  # its offer comes soon, or another host took it
        logger.warning("job failed before it joined its call on version %s: dispatching the call again, on another "
                       "version", facts.version, extra=facts.log_fields)
        self._tasks.spawn(self._dispatch_again(facts), name=f"retry-{facts.id}")
        return True

    def _note_version(self, facts: JobFacts, failed: bool) -> None:
        assert facts.version is not None
        self._metrics.version_jobs.labels(facts.agent, facts.version, "failed" if failed else "ok").inc()
        if self.health.record(facts.definition, failed=failed):
            take_out = facts.definition.take_out
            logger.warning("version %s of agent %s taken out of rotation until a reload changes it: %d of its last "
                           "%d jobs failed", facts.version, facts.agent, self.health.failures(facts.definition),
                           take_out.of_last, extra=facts.log_fields)

    async def _dispatch_again(self, facts: JobFacts) -> None:
        try:
            await create_dispatch(self._credentials, facts.definition.registered_name, facts.room,
                                  facts.dispatched_metadata)
        except Exception as exc:
            self._retries.pop((facts.agent, facts.room), None)
            logger.error("could not dispatch the call again: %s", exc, extra=facts.log_fields)

    def _log_outcome(self, result: Outcome, fields: dict[str, Any]) -> None:
        if result.ok:
            self._metrics.jobs_finished.labels(fields["agent"]).inc()
            logger.info("job ended", extra=fields)
        else:
            self._metrics.jobs_failed.labels(fields["agent"], result.reason).inc()
            logger.error("job failed: %s", result.error, extra=fields)

    async def _report(self, facts: JobFacts, result: Outcome, fields: dict[str, Any]) -> None:
        if facts.worker.closed:  # its agent was removed or re-registered by a reload: no one to tell
            logger.debug("job status not reported: its worker was unregistered", extra=fields)
            return
        status = agent_pb.JobStatus.JS_SUCCESS if result.ok else agent_pb.JobStatus.JS_FAILED
        await facts.worker.update_job(facts.id, status, result.error or "")

    def _release_unassigned(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.reserved is not None:
            logger.warning("accepted job was never assigned; released", extra=job.facts.log_fields)
            self._drop_unassigned(job, "never_assigned")

    def _drop_unassigned(self, job: Job, why: str) -> None:
        assert job.reserved is not None
        job.span.end(why)
        del self._jobs[job.id]
        job.reserved.add_done_callback(kill_reserved)
        job.reserved.cancel()


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
