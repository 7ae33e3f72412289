"""The host: serves every loaded agent, decides on job offers, and supervises job processes.

Data flows one way: a validated `Catalog` -> this host state (workers, pools, jobs) ->
processes. Signal handlers only enqueue; `run` dispatches them (SIGTERM/SIGINT drain,
a second one stops at once, SIGHUP reloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol import agent as agent_pb

from host import __version__
from host.definitions import AgentDefinition, render_template
from host.ipc import Credentials, StartJob
from host.loader import Catalog, import_problems, load
from host.metadata import MetadataChecker
from host.metrics import Metrics
from host.pool import ProcessPool
from host.process import JobProcess, ProcessStartError
from host.reload import Plan, plan
from host.report import problem_line
from host.resources import MB, CpuLoad, memory_of, worker_load
from host.sources import Snapshot
from host.worker import WorkerConnection
from host.yamlsource import display_path

logger = logging.getLogger("agenthost.host")

ASSIGNMENT_TIMEOUT = 15.0  # an accepted offer whose assignment never comes is released after this
MEMORY_INTERVAL = 1.0  # how often each job process's memory is sampled
LOAD_INTERVAL = 2.5  # how often CPU is sampled and the load reported to the server
MEMORY_WARN_EVERY = 60.0  # at most one memory warning per job in this many seconds


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
    started_at: float | None = None  # time.time() when its process got the job
    memory: int | None = None  # bytes, last sample
    memory_warned_at: float | None = None  # time.monotonic() of the last memory warning
    failure: tuple[str, str] | None = None  # (reason, message) decided by the host, e.g. the memory limit

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
                 watch: bool = False, import_timeout: float = 10.0, http: tuple[str, int] | None = None,
                 load_threshold: float = 0.9) -> None:
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
        self.http_address = http
        self.load_threshold = load_threshold
        self.started_at = time.time()
        self.metrics = Metrics(self)
        self.cpu = CpuLoad()
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    # -- start and stop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until drained by a signal (or `stop`)."""
        loop = asyncio.get_running_loop()
        http = None
        if self.http_address is not None:
            from host.httpserver import HttpServer

            http = HttpServer(self, self.http_address)
            await http.start()  # first: a taken port stops the host before it registers anything
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._signals.put_nowait, sig.name)
        self._spawn(self._monitor())
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
            if http is not None:
                await http.close()

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
            try:
                return await self._reload(trigger)
            except Exception as exc:  # a bug, not bad input (that is reported as problems): keep serving
                logger.exception("reload (%s) failed, still serving the previous configuration: %s", trigger, exc)
                self.metrics.reloads.labels("failed").inc()
                return False

    async def _reload(self, trigger: str) -> bool:
        """Validate -> diff -> apply, once; the caller holds the reload lock."""
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
            self.metrics.reloads.labels("refused").inc()
            logger.error("reload (%s) refused, still serving the previous configuration: %s", trigger,
                         "; ".join(problem_line(p) for p in sorted(problems)),
                         extra={"reload": "refused", "reload_ms": round(took)})
            return False
        self._apply(change, sources)
        self.catalog = catalog
        self.metrics.reloads.labels("unchanged" if change.empty else "applied").inc()
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
        logger.debug("job offer", extra=fields)
        refused = self.metrics.jobs_refused
        if self.draining:
            logger.info("declined job offer: host is draining", extra=fields)
            refused.labels(worker.agent, "draining").inc()
            return agent_pb.AvailabilityResponse(job_id=job.id, available=False)
        if agent is None or agent.worker is not worker:
            logger.info("declined job offer: the agent was removed or re-registered by a reload", extra=fields)
            refused.labels(worker.agent, "removed").inc()
            return agent_pb.AvailabilityResponse(job_id=job.id, available=False)
        d = agent.definition
        if d.limits.max_jobs and self._count(d.name) >= d.limits.max_jobs:
            logger.info("declined job offer: at max_jobs (%d)", d.limits.max_jobs, extra=fields)
            refused.labels(d.name, "max_jobs").inc()
            return agent_pb.AvailabilityResponse(job_id=job.id, available=False)
        metadata, problems = agent.checker.check(job.metadata, source=f"job {job.id} metadata")
        if problems:
            errors = "; ".join(f"{p.path}: {p.message}" for p in problems)
            logger.error("refused job: invalid metadata: %s", errors, extra=fields)
            refused.labels(d.name, "invalid_metadata").inc()
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
        logger.debug("job assigned", extra={"agent": worker.agent, "job_id": pb.id})
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
            self.metrics.jobs_failed.labels(job.agent, "no_process").inc()
            self.jobs.pop(job.id, None)
            await worker.update_job(job.id, agent_pb.JobStatus.JS_FAILED, f"job process failed to start: {exc}")
            return
        job.process = process
        job.started_at = time.time()
        process.on_started = lambda at: self.metrics.offer_to_entrypoint.labels(job.agent).observe(
            max(0.0, at - job.accepted_at))
        self.metrics.jobs_started.labels(job.agent).inc()
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
        kind, error = self._outcome(job, process, code, timeout)
        status = agent_pb.JobStatus.JS_FAILED if error else agent_pb.JobStatus.JS_SUCCESS
        if job.started_at is not None:
            self.metrics.job_duration.labels(job.agent).observe(max(0.0, time.time() - job.started_at))
        if error:
            self.metrics.jobs_failed.labels(job.agent, kind).inc()
            logger.error("job failed: %s", error, extra={**fields, "reason": process.shutdown_reason})
        else:
            self.metrics.jobs_finished.labels(job.agent).inc()
            logger.info("job ended", extra={**fields, "reason": process.shutdown_reason})
        self.jobs.pop(job.id, None)
        if job.worker.closed:  # its agent was removed or re-registered by a reload: no one to tell
            logger.debug("job status not reported: its worker was unregistered", extra=fields)
        else:
            await job.worker.update_job(job.id, status, error or "")
        await self._report_load(job.agent)

    @staticmethod
    def _outcome(job: Job, process: JobProcess, code: int, timeout: float) -> tuple[str, str | None]:
        """(failure reason for metrics, error message or None) of a job whose process has exited."""
        killed = f"shutdown did not finish within {timeout:g}s; process killed"
        if job.failure is not None:
            kind, message = job.failure
            return kind, message + ("; " + killed if process.killed_by_host and not process.kill_reason else "")
        if process.killed_by_host:
            if process.kill_reason:
                return "host_stopped", process.kill_reason
            return "shutdown_timeout", killed
        if process.result is None:
            return "process_exited", f"job process exited with code {code} before the job ended"
        return "job_error", process.result.error

    def _release_unassigned(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.process is None:
            logger.warning("accepted job was never assigned; released", extra={"job_id": job_id})
            del self.jobs[job_id]

    def _count(self, agent: str) -> int:
        return sum(1 for j in self.jobs.values() if j.agent == agent)

    async def _report_load(self, name: str) -> None:
        agent = self.agents.get(name)
        if agent is None or self.draining or not agent.worker.registered:
            return  # a worker sends its figures again when it registers
        count = self._count(name)
        load, full = worker_load(self.cpu.value, count, agent.definition.limits.max_jobs, self.load_threshold)
        await agent.worker.update_worker(full=full, load=load, job_count=count)

    # -- bounds: memory of each job, CPU of the machine ----------------------------------------------
    async def _monitor(self) -> None:
        """Sample job memory every second and CPU every few; a failed round is logged, not fatal."""
        next_load = time.monotonic() + LOAD_INTERVAL
        saturated = False
        while True:
            try:
                now = time.monotonic()
                await self._sample_memory(now)
                if now >= next_load:
                    next_load = now + LOAD_INTERVAL
                    saturated = self._sample_cpu(saturated)
                    for name in list(self.agents):
                        await self._report_load(name)
            except Exception:
                logger.exception("sampling memory and load failed; trying again")
            await asyncio.sleep(MEMORY_INTERVAL)

    async def _sample_memory(self, now: float) -> None:
        sampled = [(j, j.process.pid) for j in self.jobs.values()
                   if j.process is not None and j.process.pid is not None and not j.process.exited]
        if sampled:
            sizes = await asyncio.to_thread(memory_of, [pid for _job, pid in sampled])
            for (job, _pid), size in zip(sampled, sizes, strict=True):
                job.memory = size
                self._check_memory(job, now)

    def _sample_cpu(self, saturated: bool) -> bool:
        """Sample CPU; log when it crosses --load-threshold. Returns whether it is at or above it."""
        cpu = self.cpu.sample()
        now_saturated = bool(self.load_threshold) and cpu >= self.load_threshold
        if now_saturated and not saturated:
            logger.warning("CPU use %.0f%% reached --load-threshold %.0f%%: the host reports itself full",
                           cpu * 100, self.load_threshold * 100)
        elif saturated and not now_saturated:
            logger.info("CPU use %.0f%% is below --load-threshold again: taking jobs", cpu * 100)
        return now_saturated

    def _check_memory(self, job: Job, now: float) -> None:
        if job.memory is None or job.process is None:
            return
        limits = job.definition.limits
        mb = job.memory / MB
        fields = {"agent": job.agent, "job_id": job.id, "room": job.room, "pid": job.process.pid,
                  "memory_mb": round(mb)}
        if limits.memory_limit_mb and mb > limits.memory_limit_mb:
            if job.failure is None:
                job.failure = ("memory_limit", f"memory limit exceeded: {mb:.0f} MB > limits.memory_limit_mb "
                                               f"{limits.memory_limit_mb} MB")
                logger.error("job is over its memory limit (%.0f MB > %d MB); shutting it down", mb,
                             limits.memory_limit_mb, extra=fields)
                job.process.request_shutdown("memory_limit")
        elif limits.memory_warn_mb and mb > limits.memory_warn_mb and (
                job.memory_warned_at is None or now - job.memory_warned_at >= MEMORY_WARN_EVERY):
            job.memory_warned_at = now
            logger.warning("job memory %.0f MB is above limits.memory_warn_mb (%d MB)", mb, limits.memory_warn_mb,
                           extra=fields)

    # -- what operators see: /status, /readyz, /metrics ----------------------------------------------
    def not_ready(self) -> list[str]:
        if self.draining:
            return ["the host is draining"]
        if not self.agents:
            return ["no enabled agents"]
        reasons = []
        for name, agent in self.agents.items():
            if not agent.worker.registered:
                reasons.append(f"agent {name} is not registered with {self.credentials.url}: "
                               f"{agent.worker.last_error or 'connecting'}")
            if agent.pool.last_error is not None and not agent.pool.idle_count:
                # a rollout should not count on a host whose agent cannot start a job process
                reasons.append(f"agent {name} cannot start job processes: {agent.pool.last_error}")
        return reasons

    def status(self) -> dict[str, Any]:
        agents = []
        for name, agent in sorted(self.agents.items()):
            d = agent.definition
            agents.append({
                "name": name, "file": d.file, "dispatch": d.dispatch, **agent.worker.status,
                "idle_processes": agent.pool.idle_count, "process_error": agent.pool.last_error,
                "running_jobs": self._count(name),
                "limits": {"max_jobs": d.limits.max_jobs, "memory_warn_mb": d.limits.memory_warn_mb,
                           "memory_limit_mb": d.limits.memory_limit_mb},
            })
        jobs = [{
            "id": job.id, "agent": job.agent, "room": job.room, "state": job.state,
            "pid": job.process.pid if job.process is not None else None,
            "started_at": _iso(job.started_at), "memory_mb": round(job.memory / MB, 1) if job.memory else None,
        } for job in sorted(self.jobs.values(), key=lambda j: j.accepted_at)]
        return {
            "host": {"version": __version__, "pid": os.getpid(), "started_at": _iso(self.started_at),
                     "draining": self.draining, "cpu_load": round(self.cpu.value, 3), "url": self.credentials.url},
            "agents": agents, "jobs": jobs,
        }

    def gauges(self) -> tuple[dict[str, int], dict[str, int], dict[str, bool], list[tuple[str, str, int]], float]:
        # every served agent (0 when idle), and any removed agent whose jobs still run
        running = {name: 0 for name in self.agents} | Counter(job.agent for job in self.jobs.values())
        idle = {name: a.pool.idle_count for name, a in self.agents.items()}
        registered = {name: a.worker.registered for name, a in self.agents.items()}
        memory = [(j.agent, j.id, j.memory) for j in self.jobs.values() if j.memory is not None]
        return running, idle, registered, memory, self.cpu.value

    def metrics_text(self) -> bytes:
        return self.metrics.render()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(
        timespec="seconds")
