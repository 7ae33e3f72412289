"""An agent's template process as the host sees it: start it, have it fork job processes, retire it.

One template per agent and code version (its pool's): the fork server forks it, it imports the agent's code
once (see host.job.template_main), and each job process is then a fork of it, which shares that code's
pages and imports nothing. The template reports each forked process's pid, pipe and pidfd, then its exit
code. Its messages are read on the host's event loop, like a job process's; no thread is needed.

If the template dies (killed by someone), the job processes it forked keep running: the host watches their
pidfds to see them exit (with an unknown exit code), and the pool starts a new template for the next process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from multiprocessing.connection import Connection
from typing import Protocol

from host.config.definitions import AgentDefinition
from host.config.sources import Snapshot
from host.job import template_main
from host.process.cgroupfs import JobGroup
from host.process.cgroups import Confinement, template_bounds
from host.process.channel import Channel
from host.process.errors import NotForkSafeError, ProcessStartError
from host.process.exits import kill_what_is_left, remove_when_empty
from host.process.forked import forked_mismatch
from host.process.mp import mp_context, start_off_loop
from host.process.output import ProcessOutput, give_output
from host.process.priority import PRIORITY_BOOST, favour
from host.wire.messages import FORK, RETIRE, Exited, Forked, ForkFailed, InitFailed, NotForkSafe, TemplateReady
from host.wire.protocol import decode_template, fds_after, frame

logger = logging.getLogger("agenthost.process")

EXIT_UNKNOWN = 255  # the exit code of a job process whose template died before it could report it


class ForkedProcess(Protocol):
    """A job process forked by a template: how it hears of its start and of its end."""

    def on_forked(self, pid: int, fd: int, pidfd: int) -> None:
        """It was forked: its pid, the host's end of its pipe, its pidfd (both now owned by it)."""

    def on_exit(self, code: int) -> None:
        """It exited with `code` (negative: killed by that signal)."""

    def on_orphaned(self) -> None:
        """The template died first: watch the pidfd (the exit code will not be known)."""


class AgentTemplate:
    def __init__(self, definition: AgentDefinition, log_format: str, log_level: int,
                 confinement: Confinement | None = None) -> None:
        self.definition = definition
        self._confinement = confinement
        self.group: JobGroup | None = None  # its cgroup, under its agent's limits (cgroup mode)
        self.pid: int | None = None
        self.sources: Snapshot = {}
        self.retired = False
        conn, child = mp_context.Pipe(duplex=True)
        self._channel = Channel(os.dup(conn.fileno()), decode_template, self._on_message, self._on_end,
                                fds_per_message=fds_after)
        conn.close()
        self._proc = mp_context.Process(target=template_main.main,
                                        args=(child, definition, log_format, log_level, os.getpid()),
                                        name=f"agenthost-{definition.name}-template", daemon=True)
        self._child_conn: Connection | None = child
        self._ready: asyncio.Future[None] | None = None
        self._forks: deque[tuple[asyncio.Future[None], ForkedProcess]] = deque()  # asked, in order
        self._children: dict[int, ForkedProcess] = {}
        self._exited = asyncio.Event()
        self._output: ProcessOutput | None = None

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    @property
    def serving(self) -> int:
        """Job processes it forked that have not exited yet (or are being forked)."""
        return len(self._children) + len(self._forks)

    async def start(self, timeout: float) -> None:
        """Start it and wait until it imported the agent's code; ProcessStartError otherwise (it is killed)."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await start_off_loop(self._proc)
        except OSError:  # not started (no descriptors, no fork): nothing to watch, its pipe is closed
            self._channel.close()
            if self._child_conn is not None:
                self._child_conn.close()
            raise
        self.pid = pid = self._proc.pid
        assert self._child_conn is not None and pid is not None
        self._child_conn.close()
        self._child_conn = None
        self._channel.start()
        try:  # bounded before it imports anything: it waits for its output pipe, given below
            if self._confinement is not None:
                self.group = self._confinement.confine_template(pid, f"{self.definition.name}-template-{pid}",
                                                                template_bounds(self.definition.limits))
        except Exception as exc:  # a CgroupError, or anything else: agent code must not run unbounded
            self.kill()
            raise ProcessStartError(f"cannot bound the template process: {exc}") from exc
        try:
            self._output = give_output(self._channel, {"agent": self.definition.name, "pid": self.pid,
                                                       "template": True})
        except OSError as exc:  # no descriptor left: it would wait for its pipe forever
            self.kill()
            raise ProcessStartError(f"cannot give the template process its output pipe: {exc}") from exc
        loop.add_reader(self._proc.sentinel, self._on_exit)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except asyncio.TimeoutError:
            self.kill()
            raise ProcessStartError(f"the agent's code was not imported within {timeout:g}s") from None
        except BaseException:
            self.kill()
            raise

    async def fork(self, child: ForkedProcess) -> None:
        """Fork a job process for `child`, which is told its pid, pipe and pidfd, then its exit. Cancelled, the
        process it would have been is killed as soon as it is reported."""
        if self.exited or self.retired:
            raise ProcessStartError("the template process is gone")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._forks.append((waiter, child))
        try:
            self._channel.send(frame(FORK))
        except OSError as exc:
            self._forks.remove((waiter, child))
            raise ProcessStartError(f"the template process is gone: {exc}") from exc
        await waiter

    def retire(self) -> None:
        """Fork nothing more; it exits once the job processes it forked have."""
        if not self.retired and not self.exited:
            self.retired = True
            with contextlib.suppress(OSError):
                self._channel.send(frame(RETIRE))

    def kill(self) -> None:
        """SIGKILL the template alone (the job processes it forked keep running, then watched by pidfd)."""
        if self.pid is not None and not self.exited:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def wait_exit(self, timeout: float) -> None:
        """Until it has exited; killed at `timeout`."""
        try:
            await asyncio.wait_for(self._exited.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self._exited.wait()

    # -- event plumbing -----------------------------------------------------------------------
    def _on_end(self, violation: str | None) -> None:
        """The end of its messages: it is exiting, or it wrote something that is not a message. Either way its
        exit (the sentinel) settles what waits on it."""
        if violation is not None:
            logger.error("the template process of %s broke the protocol, killed: %s", self.definition.name,
                         violation, extra={"agent": self.definition.name, "pid": self.pid})
        self.kill()

    def _on_message(self, msg: object, fds: tuple[int, ...]) -> None:
        assert self._ready is not None
        if isinstance(msg, TemplateReady):
            self.sources = msg.sources
            if not self._ready.done():
                if self.pid is not None:  # it serves forks from now
                    favour(self.pid, PRIORITY_BOOST, os.getpriority(os.PRIO_PROCESS, 0))
                self._ready.set_result(None)
        elif isinstance(msg, NotForkSafe) and not self._ready.done():
            self._ready.set_exception(NotForkSafeError(msg.reason))
        elif isinstance(msg, InitFailed) and not self._ready.done():
            self._ready.set_exception(ProcessStartError(msg.error))
        elif isinstance(msg, Forked):
            self._on_forked(msg.pid, *fds)
        elif isinstance(msg, ForkFailed):
            if not self._forks:
                self._channel.fail("a ForkFailed for no fork asked")
                return
            waiter, _child = self._forks.popleft()
            if not waiter.done():
                waiter.set_exception(ProcessStartError(msg.error))
        elif isinstance(msg, Exited):
            child = self._children.pop(msg.pid, None)
            if child is not None:
                child.on_exit(msg.code)

    def _on_forked(self, pid: int, fd: int, pidfd: int) -> None:
        # agent code runs in the template: the pid is believed only as the pidfd's, and the pipe only if it is one
        wrong = forked_mismatch(pid, fd, pidfd, self.pid or 0) if self._forks else \
            f"a Forked process {pid} that was not asked for"
        if wrong is not None:
            os.close(fd)
            os.close(pidfd)
            self._channel.fail(wrong)
            return
        waiter, child = self._forks.popleft()
        if waiter.done():  # whoever asked gave up (cancelled): nobody will run this process
            logger.info("job process %s was forked for a start that was given up; killed", pid,
                        extra={"agent": self.definition.name, "pid": pid})
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.close(fd)
            os.close(pidfd)
            return
        # told at once, not when the asker resumes: the process's exit may be the very next message
        self._children[pid] = child
        try:
            child.on_forked(pid, fd, pidfd)
        finally:  # whatever happened there, the start is not left waiting
            waiter.set_result(None)

    def _on_exit(self) -> None:  # the sentinel: the template process has exited
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._proc.sentinel)
        self._channel.drain()
        self._channel.close()
        if self._output is not None:
            self._output.drain()
            self._output.close()
        assert self._ready is not None
        code = self._proc.exitcode
        self._end_group()
        if not self._ready.done():
            self._ready.set_exception(ProcessStartError(f"exited with code {code} before it was ready"))
        elif not self.retired:
            logger.warning("the template process of %s exited (code %s); its running jobs go on", self.definition.name,
                           code, extra={"agent": self.definition.name, "pid": self.pid})
        while self._forks:
            waiter, _child = self._forks.popleft()
            if not waiter.done():
                waiter.set_exception(ProcessStartError(f"the template process exited (code {code})"))
        children, self._children = self._children, {}
        for child in children.values():
            child.on_orphaned()
        self._exited.set()

    def _end_group(self) -> None:
        """It has exited: end what is left in its group (what its agent's code started at import; the job
        processes it forked are in groups of their own), and remove the group once empty."""
        group, self.group = self.group, None
        if group is not None:
            kill_what_is_left(group, "template", {"agent": self.definition.name, "pid": self.pid})
            remove_when_empty(group)
