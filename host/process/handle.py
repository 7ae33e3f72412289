"""A job process as the host sees it: start, hand it a job, ask it to stop, kill it.

Each process is forked by `multiprocessing`'s fork server (never a plain fork of the
host, with its event loop, threads and sockets). The pipe and the process sentinel are
watched by the host's asyncio loop, so no thread is needed per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from host.config.definitions import AgentDefinition
from host.process import child as job_child
from host.process.messages import (
    InitFailed,
    JobDone,
    JobStarted,
    ProcessMessage,
    Ready,
    ShutdownJob,
    ShuttingDown,
    StartJob,
)
from host.process.tree import kill_tree

logger = logging.getLogger("agenthost.process")
# forkserver: a clean server process (never the host, with its event loop and sockets) forks each
# job process. It has imported the libraries every job needs, so their pages are shared between
# job processes; agent code is imported after the fork, in each process, so reloads see new code.
_ctx = multiprocessing.get_context("forkserver")
def _main_script_imports() -> list[str]:
    """What a job process would import again when the host runs as a script (the `agenthost` command):
    multiprocessing runs the host's main script in every process it starts, unless the host runs as a
    module (`python -m host`). Preloaded, those imports cost each job process nothing."""
    main = sys.modules.get("__main__")
    return ["host.cli"] if getattr(main, "__spec__", None) is None and getattr(main, "__file__", None) else []


_PRELOAD = ["host.process.forkserver", "host.process.child", "host.context", *_main_script_imports()]
_FREEZE = ["host.process.freeze"]  # always last
_ctx.set_forkserver_preload(_PRELOAD + _FREEZE)
# livekit-agents' framework and its warm-up (imports, the VAD, the rtc library), shared by every job process
LIVEKIT_AGENTS_PRELOAD = ["host.lkagents.runner", "livekit.agents.ipc._preload"]


def preload_livekit_agents() -> None:
    """Have the fork server preload livekit-agents. Takes effect if called before the first process starts
    (the host calls it at start when any agent has `api: livekit-agents`)."""
    _ctx.set_forkserver_preload([*_PRELOAD, *LIVEKIT_AGENTS_PRELOAD, *_FREEZE])


class ProcessState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"  # prewarmed, waiting for a job
    RUNNING = "running"
    SHUTTING_DOWN = "shutting_down"
    EXITED = "exited"


# the only moves a process makes; anything else is a bug in the caller (or a late message) and is ignored
TRANSITIONS: dict[ProcessState, frozenset[ProcessState]] = {
    ProcessState.STARTING: frozenset({ProcessState.IDLE, ProcessState.EXITED}),
    ProcessState.IDLE: frozenset({ProcessState.RUNNING, ProcessState.EXITED}),
    ProcessState.RUNNING: frozenset({ProcessState.SHUTTING_DOWN, ProcessState.EXITED}),
    ProcessState.SHUTTING_DOWN: frozenset({ProcessState.EXITED}),
    ProcessState.EXITED: frozenset(),
}


@dataclass(frozen=True)
class ProcessExit:
    """The facts of a job process's end, gathered where they are known: when its exit is seen."""

    code: int  # negative: killed by that signal
    killed_by_host: bool
    kill_reason: str | None  # what the host said when it killed it on purpose (a stop, not a timeout)
    result: JobDone | None  # what the job reported before it exited; None if it never did
    shutdown_reason: str | None


class ProcessStartError(Exception):
    """The process did not become ready: it failed to import or set up, crashed, or timed out."""


class JobProcess:
    """One job process: it serves at most one job."""

    def __init__(self, definition: AgentDefinition, log_format: str, log_level: int) -> None:
        self.definition = definition
        self.state = ProcessState.STARTING
        self.pid: int | None = None
        self.job_id: str | None = None
        self.shutdown_reason: str | None = None
        self.result: JobDone | None = None
        self.killed_by_host = False
        self.kill_reason: str | None = None
        self.sources: dict[str, tuple[int, int]] = {}  # project files it imported, from Ready
        self.on_started: Callable[[float], None] | None = None  # called with entrypoint_at
        self._conn, child = _ctx.Pipe(duplex=True)
        self._proc: BaseProcess = _ctx.Process(
            target=job_child.main, args=(child, definition, log_format, log_level, os.getpid()),
            name=f"agenthost-{definition.name}", daemon=True)
        self._child_conn: Connection | None = child
        self._ready: asyncio.Future[None] | None = None
        self._exited: asyncio.Future[ProcessExit] | None = None
        self._shutting_down_event: asyncio.Event | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        # a failure nobody waits for (an idle process retired) is not an unhandled error
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._exited = loop.create_future()
        self._shutting_down_event = asyncio.Event()
        # off the loop: the first start waits for the fork server to import what it preloads
        starting = asyncio.ensure_future(asyncio.to_thread(self._proc.start))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            await starting  # a started process must not be left behind unwatched
            self._proc.kill()
            await asyncio.to_thread(self._proc.join, 5.0)
            raise
        self.pid = self._proc.pid
        if self._child_conn is not None:
            self._child_conn.close()
            self._child_conn = None
        loop.add_reader(self._conn.fileno(), self._on_readable)
        loop.add_reader(self._proc.sentinel, self._on_exit)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the process is prewarmed; kill it and raise ProcessStartError otherwise."""
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except asyncio.TimeoutError:
            self.kill()
            raise ProcessStartError(f"not ready within {timeout:g}s (import and setup)") from None

    def start_job(self, start: StartJob, job_id: str) -> None:
        """Hand the process its job. Raises OSError when it can no longer be told (it is gone)."""
        if not self._move(ProcessState.RUNNING):
            raise ProcessStartError(f"process {self.pid} is {self.state.value}, not idle")
        self.job_id = job_id
        self._conn.send(start)

    def request_shutdown(self, reason: str) -> None:
        """Ask the job to shut down; the caller bounds the wait (see `wait_exit`)."""
        if self.state in (ProcessState.RUNNING,):
            self._mark_shutting_down(reason)
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(ShutdownJob(reason))
        elif self.state in (ProcessState.IDLE, ProcessState.STARTING):
            self.kill()

    def kill(self, reason: str | None = None) -> None:
        """SIGKILL the process and every process it started; `reason` is reported as the job's error when
        given."""
        if self.pid is not None and self.state is not ProcessState.EXITED and self._proc.is_alive():
            self.killed_by_host = True
            self.kill_reason = self.kill_reason or reason
            left = kill_tree(self.pid)
            if left:
                logger.warning("killed %d process(es) the job process had started: %s", len(left),
                               ", ".join(map(str, left)), extra={"agent": self.definition.name, "pid": self.pid,
                                                                 "job_id": self.job_id})

    async def wait_exit(self, timeout: float | None = None) -> ProcessExit:
        """How the process ended; kill it at `timeout` (then its code is the kill signal's)."""
        assert self._exited is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._exited), timeout)
        except asyncio.TimeoutError:
            self.kill()
            return await asyncio.shield(self._exited)

    async def wait_shutting_down(self) -> None:
        assert self._shutting_down_event is not None
        await self._shutting_down_event.wait()

    @property
    def exited(self) -> bool:
        return self.state is ProcessState.EXITED

    @property
    def exitcode(self) -> int | None:
        return self._proc.exitcode

    # -- event plumbing -----------------------------------------------------------------------
    def _move(self, to: ProcessState) -> bool:
        """The one place the state changes; False (and no change) for a move the state machine forbids."""
        if to not in TRANSITIONS[self.state]:
            logger.debug("process %s: ignored move %s -> %s", self.pid, self.state.value, to.value)
            return False
        self.state = to
        return True

    def _mark_shutting_down(self, reason: str) -> None:
        if self.shutdown_reason is None and self._move(ProcessState.SHUTTING_DOWN):
            self.shutdown_reason = reason
            assert self._shutting_down_event is not None
            self._shutting_down_event.set()

    def _on_readable(self) -> None:
        if not self._read_one():
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._conn.fileno())

    def _read_one(self) -> bool:
        """Handle one message; False at end of stream."""
        try:
            msg: ProcessMessage = self._conn.recv()
        except (EOFError, OSError):
            return False
        assert self._ready is not None
        if isinstance(msg, Ready):
            self.sources = msg.sources
            if self._move(ProcessState.IDLE) and not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(msg, InitFailed):
            if not self._ready.done():
                self._ready.set_exception(ProcessStartError(msg.error))
        elif isinstance(msg, JobStarted):
            if self.on_started is not None:
                self.on_started(msg.entrypoint_at)
        elif isinstance(msg, ShuttingDown):
            self._mark_shutting_down(msg.reason)
        elif isinstance(msg, JobDone):
            self.result = msg
        return True

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._proc.sentinel)
        # drain what the process said before it exited
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self._conn.fileno())
        with contextlib.suppress(EOFError, OSError):
            while self._conn.poll() and self._read_one():
                pass
        # the sentinel is readable once the fork server has the exit status: reading it does not block
        exitcode = self._proc.exitcode
        code = exitcode if exitcode is not None else -1
        self._move(ProcessState.EXITED)
        assert self._ready is not None and self._exited is not None
        if not self._ready.done():
            self._ready.set_exception(ProcessStartError(f"exited with code {code} before it was ready"))
        self._exited.set_result(ProcessExit(code, self.killed_by_host, self.kill_reason, self.result,
                                            self.shutdown_reason))
        self._conn.close()
        if self._shutting_down_event is not None:
            self._shutting_down_event.set()
