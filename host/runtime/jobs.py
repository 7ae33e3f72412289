"""The jobs a host has accepted, from the offer until their process has exited and been reported.

`JobTable` is the only writer of that collection and of each job's run state. It implements the
worker's `JobHandler`: an offer is answered by the `OfferDesk` (host.runtime.offers), an assignment takes
the process reserved at the offer, and each running job is supervised until its end (host.runtime.ending)
is known and reported to the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator

from livekit.protocol import agent as agent_pb

from host.aio import TaskSet
from host.config.credentials import Credentials
from host.config.definitions import AgentDefinition
from host.logs import job_fields
from host.ops.metrics import Metrics
from host.ops.monitor import Sampled
from host.ops.resources import CpuLoad
from host.process.errors import ProcessStartError
from host.process.handle import JobProcess
from host.runtime.accepted import AgentLookup, Job, NoAgents, journal_entry, kill_reserved, pool_error, start_message
from host.runtime.admission import Admission
from host.runtime.ending import JobEnding
from host.runtime.journal import Entry, JobJournal
from host.runtime.load import LoadPolicy, LoadReporter
from host.runtime.offers import OfferDesk
from host.runtime.outcome import Failure
from host.runtime.redispatch import Redispatch
from host.runtime.versions import Health, bounded
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
        self._cpu = cpu
        self._load = LoadReporter(cpu, load)
        self._tasks = TaskSet("job table")
        self._jobs: dict[str, Job] = {}
        self._journal = journal
        self._tracing = tracing or HostTracing({})
        self.health = Health()  # each version's last jobs, and those taken out of rotation
        self.draining = False
        self._redispatch = Redispatch(credentials, metrics, lambda: self._agents, lambda: self.draining, journal)
        self._desk = OfferDesk(metrics, self._tracing, self.health, self._redispatch, lambda: self._agents,
                               self._count_version, lambda: self.draining)
        self._endings = JobEnding(metrics, self.health, self._redispatch, lambda: self._agents, lambda: self.draining,
                                  cpu.jobs)

    def reloaded(self) -> None:
        """A reload was applied: versions taken out of rotation are back in (`Health.reloaded`), each said."""
        for definition in self.health.reloaded():
            logger.info("version %s of agent %s back in rotation after the reload (taken out again if its jobs "
                        "still fail)", definition.version, definition.name,
                        extra={"agent": definition.name, "version": definition.version})

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

    async def expect_recovery(self, agent: str, room: str, entry: Entry | None) -> None:
        """The next offer of `agent` in `room` takes over the call of `entry`, whose host died (None: it will not
        come: its dispatch failed)."""
        await self._redispatch.expect_recovery(agent, room, entry)

    # -- JobHandler: what the server asks of a worker ------------------------------------------
    def on_registered(self, worker: WorkerConnection) -> None:
        """A worker (re)registered: the server hears its status and load from the one writer of them, as they
        are now (a new connection starts with the server's default: available, no load)."""
        if self.draining:
            self._tasks.spawn(self._load.draining(worker, self.count(worker.agent)), name="report-draining")
        else:
            self._tasks.spawn(self.report_load(worker.agent), name="report-load")

    async def on_offer(self, worker: WorkerConnection, request: agent_pb.AvailabilityRequest) -> Admission:
        answer, job = await self._desk.answer(worker, request)
        if job is not None:
            self._jobs[job.id] = job
            asyncio.get_running_loop().call_later(ASSIGNMENT_TIMEOUT, self._release_unassigned, job.id)
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
            job.span.event("process taken", warm=process.warm, pid=process.pid or 0)
            self._hand(job, process, assignment, worker)
            await process.wait_ready(job.facts.definition.processes.init_timeout)
        except (ProcessStartError, OSError) as exc:
            self._jobs.pop(job.id, None)
            if self._journal is not None:
                self._journal.remove(job.id)
            if process is not None:
                process.kill()
            await self._endings.no_process(job, exc)
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
        return [Sampled(j.id, j.process.pid, j.facts.definition.limits, j.facts.log_fields, j.process.group, j.agent,
                        j.process.ready_cpu, j.process.reports.own_bytes)
                for j in self._jobs.values()
                if j.process is not None and j.process.pid is not None and not j.process.exited]

    async def report_load_all(self) -> None:
        for name in sorted({j.agent for j in self._jobs.values()} | set(self._agents.names())):
            await self.report_load(name)

    async def report_draining(self, worker: WorkerConnection, jobs: int) -> None:
        await self._load.draining(worker, jobs)

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
            jobs = self.count(name)
            if len(agent.versions) > 1:  # the bound, and the jobs held against it, of the versions taking calls
                against = bounded([v.definition for v in agent.versions], self.health,
                                  [pool_error(v.pool) is not None for v in agent.versions], self._count_version)
            else:  # its one version: every job of the agent (of a definition a reload replaced too)
                against = (jobs, agent.definition.limits.max_jobs)
            await self._load.report(agent, jobs, len(self._jobs), against)

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

        process.reports.on_started = started
        process.reports.on_spans_dropped = self._tracing.jobs_dropped.add
        process.start_job(start_message(job, assignment, worker, self._credentials, self._tracing.env), facts.id)
        if self._journal is not None:  # from here on, a host that dies leaves this call to the next one
            self._journal.add(journal_entry(facts, self._credentials.url, self._journal.pid, self._journal.start))

    async def _supervise(self, job: Job, process: JobProcess) -> None:
        result = await self._endings.wait(job, process)
        self._jobs.pop(job.id, None)
        if self._journal is not None:  # it ended while this host lived, however it ended: not a call to recover
            self._journal.remove(job.id)
        await self._endings.report(job.facts, result, {**job.facts.log_fields, "pid": process.pid})
        await self.report_load(job.agent)

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
