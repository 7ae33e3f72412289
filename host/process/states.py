"""The states of a job process as the host sees it, the only moves between them, and what waits on them.

`ProcessLife` is the one writer of a process's state: the handle (host.process.handle) tells it what the process
said or did, and those who wait for the process to be ready, to shut down or to exit wait on it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from host.process.errors import ProcessStartError
from host.process.exits import ProcessExit

logger = logging.getLogger("agenthost.process")


class ProcessState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"  # prewarmed, waiting for a job
    RUNNING = "running"
    SHUTTING_DOWN = "shutting_down"
    EXITED = "exited"


# the only moves a process makes; anything else is a bug in the caller (or a late message) and is ignored
TRANSITIONS: dict[ProcessState, frozenset[ProcessState]] = {
    ProcessState.STARTING: frozenset({ProcessState.IDLE, ProcessState.RUNNING, ProcessState.EXITED}),
    ProcessState.IDLE: frozenset({ProcessState.RUNNING, ProcessState.EXITED}),
    ProcessState.RUNNING: frozenset({ProcessState.SHUTTING_DOWN, ProcessState.EXITED}),
    ProcessState.SHUTTING_DOWN: frozenset({ProcessState.EXITED}),
    ProcessState.EXITED: frozenset(),
}


class ProcessLife:
    """One process's state, and its three moments others wait for: ready, shutting down, exited. Made on the
    host's loop. `kill` ends the process when a bounded wait runs out; `who` names it in the debug log."""

    def __init__(self, kill: Callable[[], None], who: Callable[[], object]) -> None:
        self.state = ProcessState.STARTING
        self.shutdown_reason: str | None = None
        self.not_ready: str | None = None  # why the host killed it before it was ready
        self._kill = kill
        self._who = who
        loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] = loop.create_future()
        # a failure nobody waits for (an idle process retired) is not an unhandled error
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._exited: asyncio.Future[ProcessExit] = loop.create_future()
        self._shutting_down = asyncio.Event()

    def move(self, to: ProcessState) -> bool:
        """The one place the state changes; False (and no change) for a move the state machine forbids."""
        if to not in TRANSITIONS[self.state]:
            logger.debug("process %s: ignored move %s -> %s", self._who(), self.state.value, to.value)
            return False
        self.state = to
        return True

    def ready(self, job_queued: bool) -> None:
        """It said Ready: idle, or running when a job was queued for it while it started."""
        if self.move(ProcessState.RUNNING if job_queued else ProcessState.IDLE) and not self._ready.done():
            self._ready.set_result(None)

    def start_failed(self, error: str) -> None:
        """It said its start failed (its import or setup raised); it exits next."""
        if not self._ready.done():
            self._ready.set_exception(ProcessStartError(error))

    def shutting_down(self, reason: str) -> None:
        """The job is on its way out, for `reason` (the first one given is kept)."""
        if self.shutdown_reason is None and self.move(ProcessState.SHUTTING_DOWN):
            self.shutdown_reason = reason
            self._shutting_down.set()

    def exited(self, end: ProcessExit) -> None:
        self.move(ProcessState.EXITED)
        if not self._ready.done():
            why = self.not_ready or f"exited with code {end.code} before it was ready"
            self._ready.set_exception(ProcessStartError(why))
        self._exited.set_result(end)
        self._shutting_down.set()

    async def wait_ready(self, timeout: float) -> None:
        """Until the process is prewarmed; kill it and raise ProcessStartError otherwise."""
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except asyncio.TimeoutError:
            # said to every waiter (the pool and the job that took it wait with the same bound)
            self.not_ready = self.not_ready or f"not ready within {timeout:g}s (import and setup)"
            self._kill()
            raise ProcessStartError(self.not_ready) from None

    async def wait_exit(self, timeout: float | None = None) -> ProcessExit:
        """How the process ended; kill it at `timeout` (then its code is the kill signal's)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._exited), timeout)
        except asyncio.TimeoutError:
            self._kill()
            return await asyncio.shield(self._exited)

    async def wait_shutting_down(self) -> None:
        await self._shutting_down.wait()
