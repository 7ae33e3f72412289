"""The host's lifecycle: start its parts, dispatch signals, drain, stop.

Data flows one way: a validated `Catalog` -> the `AgentSet` (workers, pools) and the `JobTable`
(accepted jobs) -> processes. Signal handlers only enqueue a signal's name; `run` dispatches it to
`handle_<name>`, as gunicorn's arbiter does: SIGTERM/SIGINT drain (a second one stops at once),
SIGHUP reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from host.aio import TaskSet
from host.config.credentials import Credentials
from host.config.loader import Catalog
from host.ops.joblogs import JobLogs
from host.ops.metrics import Metrics
from host.ops.monitor import ResourceMonitor
from host.ops.resources import CpuLoad
from host.process.detect import detect
from host.process.mp import preload
from host.process.pool import ProcessSettings
from host.process.priority import ANSWER_BOOST, this_host_may_raise
from host.reload.reloader import Reloader
from host.runtime.agents import AgentSet
from host.runtime.jobs import JobTable
from host.runtime.journal import Entry, JobJournal, Journal
from host.runtime.load import LoadPolicy
from host.runtime.recovery import Recoverer
from host.runtime.shared_journal import SharedJournal
from host.runtime.view import HostView
from host.tracing import HostTracing

if TYPE_CHECKING:
    from host.ops.httpserver import HttpServer

logger = logging.getLogger("agenthost.host")

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_NOW_WAIT = 5.0  # after a second signal: how long killed job processes get to be reaped and reported


@dataclass(frozen=True)
class HostOptions:
    paths: tuple[str, ...] = ()  # what a reload loads again
    log_format: str = "text"
    log_level: int = logging.INFO
    drain_timeout: float = 60.0
    watch: bool = False
    import_timeout: float = 10.0
    http: tuple[str, int] | None = None
    http_token: str | None = None  # required by /status and /metrics when set
    job_logs: bool = False  # each call's recent log lines kept and served at /logs
    load: LoadPolicy = field(default_factory=LoadPolicy)
    job_limits: str = "auto"  # how job limits are enforced (host.process.detect)
    state_dir: str | None = None  # where the journal of running jobs is kept; None: no journal, no recovery
    redis_url: str | None = None  # a journal shared by several hosts, in Redis, instead of the state dir's
    redis_prefix: str = "agenthost:"
    answer_priority: int = ANSWER_BOOST  # nice levels a voice job waiting for its answer is favoured by


class Host:
    def __init__(self, catalog: Catalog, credentials: Credentials, options: HostOptions = HostOptions()) -> None:
        self.catalog = catalog
        self.options = options
        self.tracing = HostTracing()
        preload(livekit_agents=any(d.api == "livekit-agents" for d in catalog.agents),
                tracing=self.tracing.on and self.tracing.protocol != "grpc")  # gRPC must not be loaded before a fork
        self.metrics = Metrics()
        self.metrics.observe_dropped_spans(lambda: {"host": self.tracing.dropped.value,
                                                     "job": self.tracing.jobs_dropped.value})
        self.confinement = detect(options.job_limits)
        self.confinement.answer_levels = options.answer_priority
        if not this_host_may_raise(options.answer_priority):
            logger.warning("--answer-priority %d: this host may not raise a process's priority (it needs root with "
                           "CAP_SYS_NICE, or an RLIMIT_NICE that allows it): answers are not favoured",
                           options.answer_priority)
        cpu = CpuLoad()
        self.journal: JobJournal | None = None
        if options.redis_url:
            self.journal = SharedJournal(options.redis_url, options.redis_prefix)
        elif options.state_dir:
            self.journal = Journal(options.state_dir)
        self.jobs = JobTable(credentials, self.metrics, cpu, options.load, self.journal, self.tracing)
        self._credentials = credentials
        self.agents = AgentSet(credentials, self.jobs, ProcessSettings(options.log_format, options.log_level,
                                                                          self.confinement),
                               self.metrics)
        self.jobs.attach(self.agents)
        self.monitor = ResourceMonitor(self.jobs, cpu)
        self.reloader = Reloader(options.paths, self.agents, self.metrics, import_timeout=options.import_timeout,
                                 refused_while=lambda: "the host is draining" if self.jobs.draining else None,
                                 applied=self.jobs.reloaded)
        self.view = HostView(self.agents, self.jobs, self.monitor, self.metrics, credentials.shown_url, time.time(),
                             self.confinement.mode, self.journal)
        self.metrics.observe(self.view)
        self._signals: asyncio.Queue[str] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._drain: asyncio.Task[None] | None = None
        self._background = TaskSet("host")
        # the recoveries under way of calls whose host is gone: a drain lets them settle before the host stops
        # (a dispatch left in flight would have the next host give the call a second agent)
        self._recoveries = TaskSet("recovery")
        self.job_logs = JobLogs() if options.job_logs else None  # each call's recent log lines, for /logs

    # -- start and stop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until drained by a signal (or `request_stop`)."""
        loop = asyncio.get_running_loop()
        http = await self._start_http()  # first: a taken port stops the host before it registers anything
        if http is not None and self.job_logs is not None:
            logging.getLogger("agenthost").addHandler(self.job_logs)
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._signals.put_nowait, sig.name)
        self._background.spawn(self.monitor.run(), name="monitor")
        for definition in self.catalog.agents:
            if definition.enabled:
                self.agents.add(definition, self.catalog.sources.get(definition.key))
        logger.info("job limits: %s", self.confinement.describe())
        logger.info("serving %d agent(s): %s", len(self.agents), ", ".join(self.agents.names()) or "none")
        if isinstance(self.journal, SharedJournal):
            self._share(self.journal)
        elif self.journal is not None:
            self._recover(self.journal)
        stop_watching = asyncio.Event()
        if self.options.watch:
            from host.reload.watch import watch

            self._background.spawn(watch(self.reloader.watched_folders, self.reloader.on_files_changed,
                                         stop_watching), name="watch")
        try:
            await self._dispatch_signals()
        finally:
            stop_watching.set()
            for sig in SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            await self.agents.close()
            await self._recoveries.cancel_all()
            await self._background.cancel_all()
            if http is not None:
                await http.close()
            if self.job_logs is not None:
                logging.getLogger("agenthost").removeHandler(self.job_logs)
            self.confinement.close()
            await asyncio.to_thread(self.tracing.shutdown)  # the last spans, bounded; not on the loop
            if self.journal is not None:
                self.journal.close()

    def _share(self, journal: SharedJournal) -> None:
        """Hold this host's lease and take over the calls of hosts whose lease is gone."""
        recoverer = self._recoverer(journal.put_back, journal.hand_over)

        def take_over(entry: Entry) -> None:
            logger.warning("the call of a host that is gone, claimed here: recovering", extra={
                "agent": entry.agent, "job_id": entry.job_id, "room": entry.room})
            self._recoveries.spawn(recover_held(entry), name=f"recover-{entry.job_id}")

        async def recover_held(entry: Entry) -> None:
            if await recoverer.recover(entry, self.agents, holds=lambda: journal.holds(entry.job_id)):
                journal.remove(entry.job_id)  # held under this host until now (the new job has its own row)

        def taken(job_id: str, by: str) -> None:
            self._background.spawn(leave_or_keep(job_id, by), name=f"taken-{job_id}")

        async def leave_or_keep(job_id: str, by: str) -> None:
            """This host's job, claimed by `by` while its lease lapsed: it leaves the call to the other host's
            agent once that one is in the room; with none there, it serves on, back in the journal."""
            job = self.jobs.get(job_id)
            if job is None:  # a call this host had claimed, claimed by `by` while this host was cut off
                if not await journal.holds(job_id):  # (unless claimed here again since)
                    journal.remove(job_id)
                return
            agent = self.agents.get(job.facts.agent)
            name = agent.definition.registered_name if agent is not None else job.facts.agent
            if await recoverer.others_in_room(job.facts.room, job.facts.participant.identity, name):
                self.jobs.fail(job_id, "taken_over", f"its call was taken over by host {by} while this host could "
                                                     "not renew its lease")
            else:
                logger.warning("this host's call was claimed by host %s, which gave it no agent: it serves on", by,
                               extra=job.facts.log_fields)
                journal.keep(job_id)

        def claimable() -> set[str]:  # a draining host takes over no calls: it would soon leave them again
            return set() if self.jobs.draining else set(self.agents.names())

        self._background.spawn(journal.run(claimable, take_over, taken), name="shared-journal")

    def _recoverer(self, put_back: Callable[[Entry], None],
                   hand_over: Callable[[Entry], None] | None = None) -> Recoverer:
        return Recoverer(self._credentials, self.jobs.expect_recovery, self.metrics, put_back,
                         leaving=lambda: self.jobs.draining, hand_over=hand_over)

    def _recover(self, journal: JobJournal) -> None:
        """Give the calls of a host that died here before (the journal's rows it left) their agent again."""
        orphans = journal.orphans(self._credentials.url, set(self.agents.names()))
        if not orphans:
            return
        logger.warning("%d call(s) of a host that is gone found in %s: recovering", len(orphans), journal.path)
        recoverer = self._recoverer(journal.add)
        for entry in orphans:
            self._recoveries.spawn(recoverer.recover(entry, self.agents), name=f"recover-{entry.job_id}")

    async def _start_http(self) -> HttpServer | None:
        if self.options.http is None:
            return None
        from host.ops.httpserver import HttpOptions, HttpServer

        http = HttpServer(self.view, self.options.http, HttpOptions(token=self.options.http_token), self.job_logs)
        await http.start()
        return http

    async def _dispatch_signals(self) -> None:
        """Hand each signal to `handle_<name>` until the host has stopped."""
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            while not self._stopped.is_set():
                getter = asyncio.ensure_future(self._signals.get())
                await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return
                await getattr(self, f"handle_{getter.result().lower()}")()
        finally:
            stopped.cancel()

    async def handle_sigterm(self) -> None:
        await self._stop_signal("SIGTERM")

    async def handle_sigint(self) -> None:
        await self._stop_signal("SIGINT")

    async def _stop_signal(self, name: str) -> None:
        """The first stop signal drains; a second one stops at once."""
        if self._drain is None:
            logger.info("%s: draining (up to %gs); send it again to stop at once", name, self.options.drain_timeout)
            self._drain = self._background.spawn(self.drain(), name="drain")
            self._drain.add_done_callback(lambda _t: self._stopped.set())
        else:
            logger.warning("%s again: stopping now", name)
            await self.stop_now()

    async def handle_sighup(self) -> None:
        self._background.spawn(self.reloader.reload("SIGHUP"), name="reload")

    def request_stop(self) -> None:
        """Drain as on SIGTERM (for embedding and tests)."""
        self._signals.put_nowait("SIGTERM")

    async def drain(self) -> None:
        """Take no new jobs, let running ones finish, and recoveries under way settle, up to the drain timeout;
        then shut the jobs down."""
        self.jobs.stop_taking()
        for agent in self.agents:
            await self.jobs.report_draining(agent.worker, self.jobs.count(agent.name))
        deadline = time.monotonic() + self.options.drain_timeout
        if len(self._recoveries):
            logger.info("draining: %d recovery(ies) under way are let settle first", len(self._recoveries))
        while (len(self.jobs) or len(self._recoveries)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.jobs.shutdown_all("host_draining")
        await self.jobs.wait_supervised()

    async def stop_now(self) -> None:
        self.jobs.kill_all("host stopped at once (second signal); process killed")
        await self.jobs.wait_supervised(STOP_NOW_WAIT)
        self._stopped.set()
