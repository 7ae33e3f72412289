"""Prewarmed job processes for one agent, with backoff for processes that fail to start.

A pool serves one definition and code version. Its template process (host.process.template) imports the
agent's code once; each job process is a fork of it that runs `setup`. An agent whose imports start a thread
or open a connection cannot be forked safely: its processes then start from the fork server and import the
code each (logged once).
The pool keeps `processes.idle` processes that have imported the entrypoint and run
`setup`. Taking one for a job starts a replacement; a job that finds none starts its own at once.
When getting a process ready is costly (its `setup`, or its imports without a template), such a job
also makes the pool one larger for a while (up to MAX_GROWTH; see `target`), so a burst is met by
processes started in parallel (PARALLEL_STARTS at a time), and the pool shrinks back when offers stop.
Repeated start failures back off (capped) instead of respawning in a loop, and each failure is logged
with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from host.aio import TaskSet, backoff_delay
from host.config.definitions import AgentDefinition
from host.config.sources import Snapshot, snapshot
from host.process.cgroups import Confinement
from host.process.errors import ProcessStartError
from host.process.handle import JobProcess
from host.process.template_slot import TemplateSlot

logger = logging.getLogger("agenthost.pool")

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
PARALLEL_STARTS = 4  # processes started at once (a start is mostly import and setup, on other cores)
GROW_WINDOW = 30.0  # seconds a job that found no idle process keeps the pool one larger
MAX_GROWTH = 8  # idle processes above processes.idle at most
GROW_MIN_PREWARM_CPU = 0.05  # CPU seconds to get a process ready under which the pool does not grow
PREWARM_SAMPLES = 5  # the last processes whose cost to get ready is considered
MAX_SOURCES = 5000  # project files watched per agent for a reload (what its processes say they imported)
VIRTUAL = ("/proc/", "/sys/", "/dev/")  # the kernel's file systems: no project file is there


def pool_target(idle: int, misses: int, prewarm_cpu: Sequence[float]) -> int:
    """How many idle processes to keep: `idle` (processes.idle), plus one for each of the `misses` (jobs that
    found no idle process lately), at most MAX_GROWTH more, but only when getting a process ready costs at
    least GROW_MIN_PREWARM_CPU (the median of `prewarm_cpu`, the last processes' costs). Below that, a job
    that finds none waits about as little for a fresh fork as for an idle process, and idle processes would
    cost memory for nothing."""
    costly = bool(prewarm_cpu) and statistics.median(prewarm_cpu) >= GROW_MIN_PREWARM_CPU
    return idle + (min(misses, MAX_GROWTH) if costly else 0)


@dataclass(frozen=True)
class ProcessSettings:
    """The host's settings for every pool: how job processes log, and how their limits are enforced."""

    log_format: str = "text"
    log_level: int = logging.INFO
    confinement: Confinement | None = None


def _real(path: str) -> bool:
    """Whether `path` is a real path outside the kernel's file systems. Through /proc (or a link to it) a path
    reaches into a job's namespace, where a file system the job mounted could hold a look at it for ever;
    resolving it reads each link's text, never what a namespace's root holds."""
    try:
        return os.path.realpath(path) == path and not path.startswith(VIRTUAL)
    except OSError:  # a link it may not read (a process's root in /proc, say): no project file's path
        return False


class ProcessPool:
    def __init__(self, definition: AgentDefinition, log_format: str, log_level: int,
                 sources: Snapshot | None = None, confinement: Confinement | None = None) -> None:
        self.definition = definition
        self._confinement = confinement
        # the project files this agent's code is made of, as last imported (by a check or a process)
        self.sources: dict[str, tuple[int, int]] = dict(sources or {})
        self._log_format = log_format
        self._log_level = log_level
        self._idle: list[JobProcess] = []
        self._warming = TaskSet(f"pool {definition.name}")
        self._settling: set[asyncio.Task[None]] = set()  # taken processes, until they are ready
        self._failures = 0
        self._closed = False
        self._wakeup = asyncio.Event()
        self._misses: list[float] = []  # time.monotonic() of each take that found no idle process
        self._prewarm_cpu: deque[float] = deque(maxlen=PREWARM_SAMPLES)
        self._keeper: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.templates = TemplateSlot(definition, log_format, log_level, confinement, self._learn_sources)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def update(self, definition: AgentDefinition) -> None:
        """Serve a new definition whose prewarm inputs (code, setup, env) are those of the current one."""
        self.definition = definition

    def start(self) -> None:
        self._keeper = asyncio.get_running_loop().create_task(self._keep_warm())

    async def take(self) -> JobProcess:
        """A process for a job: an idle (ready) one, or a fresh one started now (and the pool may grow). A fresh
        one is returned once it is started, before it is ready, so that its job can be handed to it at once
        (it reads it as soon as it is ready); the caller waits for it with `wait_ready`."""
        self._wakeup.set()
        while self._idle:
            proc = self._idle.pop(0)
            if not proc.exited:
                proc.warm = True
                return proc
        self._misses.append(time.monotonic())
        proc = await self._launch()
        logger.debug("job process %s started for a job that found no idle one", proc.pid,
                     extra={"agent": self.definition.name, "pid": proc.pid})
        # not cancelled with the pool: the process is its job's now
        settling = asyncio.get_running_loop().create_task(self._settle_taken(proc))
        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)
        return proc

    @property
    def target(self) -> int:
        """How many idle processes to keep now (`pool_target`): the pool grows while offers outpace it and
        shrinks back to `processes.idle` when they stop, if getting a process ready is costly."""
        now = time.monotonic()
        self._misses = [t for t in self._misses if now - t < GROW_WINDOW]
        return pool_target(self.definition.processes.idle, len(self._misses), self._prewarm_cpu)

    @property
    def template_pid(self) -> int | None:
        return self.templates.pid

    async def close(self) -> None:
        """Stop keeping processes warm and end the idle ones. The template forks nothing more and exits once
        the jobs it forked have ended (a reload's jobs on the old code run on)."""
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await self._warming.cancel_all()
        await self.templates.stop_starting()
        idle, self._idle = self._idle, []
        for proc in idle:
            proc.kill()
        await asyncio.gather(*(p.wait_exit(5.0) for p in idle), return_exceptions=True)
        await self.templates.retire()

    def _learn_sources(self, reported: Snapshot) -> None:
        """Add the project files a process says its imports loaded (what a reload checks for changes). Agent code
        runs there: only new absolute `.py` paths are taken, each a real path (as a process reports them) and
        none under the kernel's own file systems, at most MAX_SOURCES per agent, and each is stat'ed here, never
        believed."""
        new = [path for path in reported if path not in self.sources and os.path.isabs(path) and path.endswith(".py")
               and _real(path)]
        room = max(0, MAX_SOURCES - len(self.sources))
        if len(new) > room:
            logger.warning("a process of %s listed %d more source files than are watched per agent (%d); the rest "
                           "are not", self.definition.name, len(new) - room, MAX_SOURCES,
                           extra={"agent": self.definition.name})
        self.sources.update(snapshot(new[:room]))

    def _record_failure(self, pid: int | None, exc: BaseException) -> None:
        self._failures += 1
        self.last_error = str(exc)
        logger.error("job process for %s failed to start: %s", self.definition.key, exc,
                     extra={"agent": self.definition.name, "pid": pid, "failures": self._failures,
                            **({"version": self.definition.version} if self.definition.version else {})})

    async def _start(self) -> JobProcess:
        """A new process, once it is ready; its failure is recorded (for backoff) and raised."""
        proc = await self._launch()
        try:
            await self._settle(proc)
        except asyncio.CancelledError:
            proc.kill()
            raise
        return proc

    async def _launch(self) -> JobProcess:
        """A new process, started (forked) but perhaps not ready yet; a failure to start it is recorded and
        raised."""
        try:
            template = await self.templates.for_start(self._closed)
        except ProcessStartError as exc:
            self._record_failure(None, exc)
            raise
        try:
            proc = JobProcess(self.definition, self._log_format, self._log_level, template, self._confinement)
            await proc.start()
        except OSError as exc:  # no file descriptors, no fork under a pids or memory limit, ...
            error = ProcessStartError(f"cannot start a job process: {exc}")
            self._record_failure(None, error)
            raise error from exc
        except ProcessStartError as exc:  # its template died meanwhile (the next start has a new one)
            self._record_failure(None, exc)
            raise
        return proc

    async def _settle(self, proc: JobProcess) -> None:
        """Until `proc` is ready (killed at `init_timeout`): a failure is recorded (for backoff) and raised, a
        success resets the backoff and teaches the pool the process's code and cost."""
        try:
            await proc.wait_ready(self.definition.processes.init_timeout)
        except ProcessStartError as exc:
            self._record_failure(proc.pid, exc)
            raise
        self._failures = 0
        self.last_error = None
        self._learn_sources(proc.reports.sources)
        self._prewarm_cpu.append(proc.reports.prewarm_cpu)
        logger.debug("job process %s ready, after %.1f ms of CPU", proc.pid, proc.reports.prewarm_cpu * 1000,
                     extra={"agent": self.definition.name, "pid": proc.pid})

    async def _settle_taken(self, proc: JobProcess) -> None:
        with contextlib.suppress(ProcessStartError):  # recorded; the job that took it sees it too
            await self._settle(proc)

    async def _warm_one(self) -> None:
        try:
            proc = await self._start()
        except ProcessStartError:
            return
        if self._closed:
            proc.kill()
        else:
            self._idle.append(proc)

    async def _keep_warm(self) -> None:
        while not self._closed:
            self._idle = [p for p in self._idle if not p.exited]
            target = self.target
            missing = target - len(self._idle) - len(self._warming)
            if missing > 0 and len(self._warming) < PARALLEL_STARTS:
                if self._failures:  # after a failure: one at a time, backing off
                    if self._warming:
                        missing = 0
                    else:
                        delay = backoff_delay(self._failures - 1, BACKOFF_START, BACKOFF_MAX)
                        logger.warning("next process for %s in %.1fs after %d failed starts",
                                       self.definition.name, delay, self._failures)
                        await asyncio.sleep(delay)
                        missing = 1
                for _ in range(min(missing, PARALLEL_STARTS - len(self._warming))):
                    task = self._warming.spawn(self._warm_one())
                    task.add_done_callback(lambda _t: self._wakeup.set())
                if missing:
                    continue
            while len(self._idle) > target:  # quiet again: back to processes.idle
                retired = self._idle.pop()
                logger.debug("idle process %s of %s retired: the pool shrinks back to %d", retired.pid,
                             self.definition.name, target, extra={"agent": self.definition.name})
                retired.kill()
            self._wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), 1.0)
