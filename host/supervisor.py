"""The host: serves every loaded agent, decides on job offers, and supervises job processes.

Data flows one way: a validated `Catalog` -> this host state (workers, pools, jobs) ->
processes. Signal handlers only enqueue; `run` dispatches them (SIGTERM/SIGINT drain,
a second one stops at once, SIGHUP reloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol import agent as agent_pb

from host.definitions import AgentDefinition, render_template
from host.ipc import Credentials, StartJob
from host.loader import Catalog, import_problems, load
from host.metadata import MetadataChecker
from host.pool import ProcessPool
from host.process import JobProcess, ProcessStartError
from host.reload import Plan, plan
from host.report import problem_line
from host.sources import Snapshot
from host.worker import WorkerConnection
from host.yamlsource import display_path

logger = logging.getLogger("agenthost.host")

ASSIGNMENT_TIMEOUT = 15.0  # an accepted offer whose assignment never comes is released after this


@dataclass
class Job:
    """A job this host accepted: from the offer until its process has exited and been reported."""

    id: str
    agent: str
    room: str
    dispatch_id: str
    definition: AgentDefinition
    worker: WorkerConnection
    accepted_at: float = field(default_factory=time.time)
    metadata: object = None  # parsed and validated when the offer was accepted
    process: JobProcess | None = None
    task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str:
        return "accepted" if self.process is None else self.process.state.value


@dataclass
class Agent:
    """What the host keeps for one enabled agent."""

    definition: AgentDefinition
    checker: MetadataChecker
    pool: ProcessPool
    worker: WorkerConnection


class Host:
    def __init__(self, catalog: Catalog, credentials: Credentials, *, paths: Sequence[str] = (),
                 log_format: str = "text", log_level: int = logging.INFO, drain_timeout: float = 60.0,
                 watch: bool = False, import_timeout: float = 10.0) -> None:
        self.catalog = catalog
        self.credentials = credentials
        self.paths = tuple(paths)  # what a reload loads again
        self.log_format = log_format
        self.log_level = log_level
        self.drain_timeout = drain_timeout
        self.watch = watch
        self.import_timeout = import_timeout
        self.agents: dict[str, Agent] = {}
        self.jobs: dict[str, Job] = {}
        self.draining = False
        self._signals: asyncio.Queue[str] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    # -- start and stop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until drained by a signal (or `stop`)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._signals.put_nowait, sig.name)
        for definition in self.catalog.agents:
            if definition.enabled:
                self._add_agent(definition, self.catalog.sources.get(definition.name))
        logger.info("serving %d agent(s): %s", len(self.agents), ", ".join(self.agents) or "none")
        drain: asyncio.Task[None] | None = None
        stop_waiter = loop.create_task(self._stopped.wait())
        stop_watching = asyncio.Event()
        if self.watch:
            from host.watch import watch

            self._spawn(watch(self.watched_folders, self._on_files_changed, stop_watching))
        try:
            while not self._stopped.is_set():
                getter = loop.create_task(self._signals.get())
                await asyncio.wait({getter, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                name = getter.result()
                if name in ("SIGTERM", "SIGINT"):
                    if drain is None:
                        logger.info("%s: draining (up to %gs); send it again to stop at once", name,
                                    self.drain_timeout)
                        drain = loop.create_task(self.drain())
                        drain.add_done_callback(lambda _t: self._stopped.set())
                    else:
                        logger.warning("%s again: stopping now", name)
                        await self.stop_now()
                        break
                elif name == "SIGHUP":
                    self._spawn(self.reload("SIGHUP"))
        finally:
            stop_waiter.cancel()
            stop_watching.set()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            await self._close_agents()
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)

    def request_stop(self) -> None:
        """Drain as on SIGTERM (for embedding and tests)."""
        self._signals.put_nowait("SIGTERM")

    async def drain(self) -> None:
        """Take no new jobs, let running ones finish up to the drain timeout, then shut them down."""
        self.draining = True
        for agent in self.agents.values():
            await agent.worker.update_worker(full=True, load=1.0, job_count=self._count(agent.definition.name))
        deadline = time.monotonic() + self.drain_timeout
        while self.jobs and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for job in list(self.jobs.values()):
            if job.process is not None:
                job.process.request_shutdown("host_draining")
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop_now(self) -> None:
        for job in list(self.jobs.values()):
            if job.process is not None:
                job.process.kill("host stopped at once (second signal); process killed")
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5.0)

    def _add_agent(self, definition: AgentDefinition, sources: Snapshot | None = None) -> None:
        pool = ProcessPool(definition, self.log_format, self.log_level, sources)
        worker = WorkerConnection(definition, self.credentials, self)
        self.agents[definition.name] = Agent(definition, MetadataChecker(definition.metadata), pool, worker)
        pool.start()
        worker.start()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reload: validate -> diff -> apply ------------------------------------------------------------
    def watched_folders(self) -> frozenset[str]:
        """The agent paths and the folders of every project file the agents are made of."""
        from host.watch import folders

        files: list[str] = list(self.paths)
        for agent in self.agents.values():
            files.extend(agent.pool.sources)
            d = agent.definition
            files.extend(ref.file for ref in (d.entrypoint, d.setup) if ref is not None and ref.file)
            if d.metadata.schema_file:
                files.append(d.metadata.schema_file)
        return folders(files)

    async def _on_files_changed(self, paths: list[str]) -> None:
        shown = ", ".join(display_path(p) for p in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        await self.reload(f"changed {shown}{more}")

    async def reload(self, trigger: str) -> bool:
        """Load the agent paths again and apply the difference; on any problem keep everything as it is.

        Returns whether the new configuration is now served. Logs one line either way.
        """
        async with self._reload_lock:
            if self.draining:
                logger.warning("reload (%s) ignored: the host is draining", trigger)
                return False
            started = time.monotonic()
            catalog = await asyncio.to_thread(load, self.paths, check_imports=False)
            problems = list(catalog.problems)
            code_changed = {name for name, agent in self.agents.items() if agent.pool.changed_sources()}
            change = plan({name: a.definition for name, a in self.agents.items()}, catalog.agents, code_changed)
            sources: dict[str, Snapshot] = {}
            to_import = [*change.added, *(c.new for c in change.changes if c.needs_new_processes)]
            if not problems and to_import:
                found, sources = await asyncio.to_thread(import_problems, to_import, self.import_timeout)
                problems.extend(found)
            took = (time.monotonic() - started) * 1000
            if problems:
                logger.error("reload (%s) refused, still serving the previous configuration: %s", trigger,
                             "; ".join(problem_line(p) for p in sorted(problems)),
                             extra={"reload": "refused", "reload_ms": round(took)})
                return False
            self._apply(change, sources)
            self.catalog = catalog
            logger.info("reload (%s): %s", trigger, change.summary(),
                        extra={"reload": "applied" if not change.empty else "unchanged", "reload_ms": round(took)})
            return True

    def _apply(self, change: Plan, sources: dict[str, Snapshot]) -> None:
        """Make the served agents match a valid plan. Running jobs are not touched."""
        for definition in change.removed:
            agent = self.agents.pop(definition.name)
            self._spawn(agent.worker.close())
            self._spawn(agent.pool.close())
        for c in change.changes:
            agent = self.agents[c.name]
            worker, pool = agent.worker, agent.pool
            if c.needs_registration:
                self._spawn(worker.close())
                worker = WorkerConnection(c.new, self.credentials, self)
                worker.start()
            else:
                worker.definition = c.new
            if c.needs_new_processes:
                self._spawn(pool.close())
                pool = ProcessPool(c.new, self.log_format, self.log_level, sources.get(c.name))
                pool.start()
            else:
                pool.definition = c.new
            self.agents[c.name] = Agent(c.new, MetadataChecker(c.new.metadata), pool, worker)
        for definition in change.added:
            self._add_agent(definition, sources.get(definition.name))

    async def _close_agents(self) -> None:
        agents = list(self.agents.values())
        await asyncio.gather(*(a.worker.close() for a in agents), return_exceptions=True)
        await asyncio.gather(*(a.pool.close() for a in agents), return_exceptions=True)

    # -- JobHandler: what the server asks of a worker ---------------------------------------------
    def on_registered(self, worker: WorkerConnection) -> None:
        if self.draining:
            asyncio.get_running_loop().create_task(worker.update_worker(full=True, load=1.0, job_count=0))

    async def on_offer(self, worker: WorkerConnection,
                       request: agent_pb.AvailabilityRequest) -> agent_pb.AvailabilityResponse:
        job = request.job
        agent = self.agents.get(worker.agent)
        fields = {"agent": worker.agent, "job_id": job.id, "dispatch_id": job.dispatch_id,
                  "room": job.room.name}
        if self.draining:
            logger.info("declined job offer: host is draining", extra=fields)
            return agent_pb.AvailabilityResponse(job_id=job.id, available=False)
        if agent is None or agent.worker is not worker:
            logger.info("declined job offer: the agent was removed or re-registered by a reload", extra=fields)
            return agent_pb.AvailabilityResponse(job_id=job.id, available=False)
        d = agent.definition
        if d.limits.max_jobs and self._count(d.name) >= d.limits.max_jobs:
            logger.info("declined job offer: at max_jobs (%d)", d.limits.max_jobs, extra=fields)
            return agent_pb.AvailabilityResponse(job_id=job.id, available=False)
        metadata, problems = agent.checker.check(job.metadata, source=f"job {job.id} metadata")
        if problems:
            errors = "; ".join(f"{p.path}: {p.message}" for p in problems)
            logger.error("refused job: invalid metadata: %s", errors, extra=fields)
            return agent_pb.AvailabilityResponse(job_id=job.id, available=False, terminate=True)
        self.jobs[job.id] = Job(job.id, d.name, job.room.name, job.dispatch_id, d, worker, metadata=metadata)
        asyncio.get_running_loop().call_later(ASSIGNMENT_TIMEOUT, self._release_unassigned, job.id)
        names = {"job_id": job.id, "agent": d.name, "room": job.room.name}
        p = d.participant
        return agent_pb.AvailabilityResponse(
            job_id=job.id, available=True,
            participant_identity=render_template(p.identity, **names),
            participant_name=render_template(p.name, **names),
            participant_metadata=p.metadata,
            participant_attributes=dict(p.attributes),
        )

    async def on_assignment(self, worker: WorkerConnection, assignment: agent_pb.JobAssignment) -> None:
        pb = assignment.job
        job = self.jobs.get(pb.id)
        if job is None or job.process is not None:
            logger.warning("assignment for a job this host did not accept", extra={"job_id": pb.id})
            await worker.update_job(pb.id, agent_pb.JobStatus.JS_FAILED, "job was not accepted by this host")
            return
        agent = self.agents.get(job.agent)
        fields = {"agent": job.agent, "job_id": job.id, "room": job.room}
        try:
            if agent is None:
                raise ProcessStartError("agent was removed")
            process = await agent.pool.take()
        except ProcessStartError as exc:
            logger.error("job failed: no process: %s", exc, extra=fields)
            self.jobs.pop(job.id, None)
            await worker.update_job(job.id, agent_pb.JobStatus.JS_FAILED, f"job process failed to start: {exc}")
            return
        job.process = process
        process.start_job(StartJob(
            job=pb.SerializeToString(), definition=job.definition,
            url=assignment.url or self.credentials.url, token=assignment.token,
            credentials=self.credentials, worker_id=worker.worker_id or "", accepted_at=job.accepted_at,
            metadata=job.metadata,
        ), job.id)
        logger.info("job running in process %s", process.pid, extra={**fields, "pid": process.pid})
        await worker.update_job(job.id, agent_pb.JobStatus.JS_RUNNING)
        job.task = asyncio.get_running_loop().create_task(self._supervise(job, process))
        await self._report_load(job.agent)

    def on_termination(self, worker: WorkerConnection, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.process is not None:
            logger.info("server terminated the job", extra={"agent": job.agent, "job_id": job_id})
            job.process.request_shutdown("terminated_by_server")

    # -- supervising a job process ------------------------------------------------------------------
    async def _supervise(self, job: Job, process: JobProcess) -> None:
        fields = {"agent": job.agent, "job_id": job.id, "room": job.room, "pid": process.pid}
        await process.wait_shutting_down()
        timeout = job.definition.shutdown.timeout
        code = await process.wait_exit(timeout)
        result = process.result
        error: str | None
        if process.killed_by_host:
            error = process.kill_reason or f"shutdown did not finish within {timeout:g}s; process killed"
        elif result is None:
            error = f"job process exited with code {code} before the job ended"
        else:
            error = result.error
        status = agent_pb.JobStatus.JS_FAILED if error else agent_pb.JobStatus.JS_SUCCESS
        if error:
            logger.error("job failed: %s", error, extra={**fields, "reason": process.shutdown_reason})
        else:
            logger.info("job ended", extra={**fields, "reason": process.shutdown_reason})
        self.jobs.pop(job.id, None)
        if job.worker.closed:  # its agent was removed or re-registered by a reload: no one to tell
            logger.debug("job status not reported: its worker was unregistered", extra=fields)
        else:
            await job.worker.update_job(job.id, status, error or "")
        await self._report_load(job.agent)

    def _release_unassigned(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.process is None:
            logger.warning("accepted job was never assigned; released", extra={"job_id": job_id})
            del self.jobs[job_id]

    def _count(self, agent: str) -> int:
        return sum(1 for j in self.jobs.values() if j.agent == agent)

    async def _report_load(self, name: str) -> None:
        agent = self.agents.get(name)
        if agent is None or self.draining:
            return
        count = self._count(name)
        limit = agent.definition.limits.max_jobs
        load = min(1.0, count / limit) if limit else 0.0
        await agent.worker.update_worker(full=bool(limit) and count >= limit, load=load, job_count=count)
