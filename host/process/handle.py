"""A job process as the host sees it: start, hand it a job, ask it to stop, kill it.

Each process is forked by its agent's template process (host.process.template), or, when there is none, by
`multiprocessing`'s fork server: never by a plain fork of the host, with its event loop, threads and
sockets. Its pipe and its exit (the process sentinel, or the template's report) are watched by the host's
asyncio loop, so no thread is needed per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from multiprocessing.process import BaseProcess

from host.config.definitions import AgentDefinition
from host.job import main as job_main
from host.process.cgroupfs import CgroupError, JobGroup
from host.process.cgroups import Confinement, bounds_for
from host.process.channel import Channel
from host.process.errors import ProcessStartError
from host.process.exits import GroupEnd, ProcessExit, end_group, kill_job, used
from host.process.mp import mp_context, start_off_loop
from host.process.output import ProcessOutput, give_output
from host.process.priority import ANSWER_BOOST, AnswerBoost
from host.process.reports import JobReports
from host.process.states import ProcessLife, ProcessState
from host.process.template import EXIT_UNKNOWN, AgentTemplate
from host.process.usage import used_so_far
from host.wire.messages import Answering, InitFailed, Ready, ShutdownJob, ShuttingDown, StartJob
from host.wire.protocol import decode_job, down

__all__ = ["JobProcess", "ProcessExit", "ProcessStartError", "ProcessState"]

logger = logging.getLogger("agenthost.process")


class JobProcess:
    """One job process: it serves at most one job. Forked by `template` when given, else by the fork server."""

    def __init__(self, definition: AgentDefinition, log_format: str, log_level: int,
                 template: AgentTemplate | None = None, confinement: Confinement | None = None) -> None:
        self.definition = definition
        self.pid: int | None = None
        self.job_id: str | None = None
        self.life = ProcessLife(self.kill, lambda: self.pid)  # its state, and the waits for its moments
        self.killed_by_host = False
        self.kill_reason: str | None = None
        self.reports = JobReports()  # what the process said of itself
        self.ready_cpu = 0.0  # CPU seconds it had used when it said Ready, as the host read them: not its job's
        self.warm = False  # handed to its job from the pool's idle processes (not started for it)
        self._template = template
        self._confinement = confinement
        self.group: JobGroup | None = None  # its cgroup, where the host gives each job process one
        self._channel: Channel | None = None
        self._output: ProcessOutput | None = None
        self._proc: BaseProcess | None = None  # started by the fork server
        self._pidfd: int | None = None  # forked by the template
        self._launch_args = (log_format, log_level)
        self._answers = AnswerBoost(confinement.answer_levels if confinement is not None else ANSWER_BOOST)

    @property
    def state(self) -> ProcessState:
        return self.life.state

    @property
    def shutdown_reason(self) -> str | None:
        return self.life.shutdown_reason

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._template is not None:
            await self._template.fork(self)  # on_forked is called before it returns
        else:
            await self._start_from_fork_server()

    async def _start_from_fork_server(self) -> None:
        conn, child = mp_context.Pipe(duplex=True)
        proc = mp_context.Process(target=job_main.main, args=(child, self.definition, *self._launch_args, os.getpid()),
                                  name=f"agenthost-{self.definition.name}", daemon=True)
        try:
            await start_off_loop(proc)
        finally:
            child.close()
        self.pid, self._proc = proc.pid, proc
        self._attach(os.dup(conn.fileno()))
        conn.close()
        asyncio.get_running_loop().add_reader(proc.sentinel, self._on_sentinel)
        assert proc.pid is not None
        self._confine(proc.pid)
        self._give_output(proc.pid)

    def _attach(self, fd: int) -> None:
        self._channel = Channel(fd, decode_job, self._on_message, self._on_channel_end)
        self._channel.start()

    # -- ForkedProcess: what the template tells of a process it forked ----------------------------
    def on_forked(self, pid: int, fd: int, pidfd: int) -> None:
        self.pid, self._pidfd = pid, pidfd
        self._attach(fd)
        self._confine(pid)
        self._give_output(pid)

    def _confine(self, pid: int) -> None:
        """Put the new process under its agent's limits before it runs a job; one that cannot be bounded is
        killed (it must not run unbounded), and its start fails with the reason."""
        if self._confinement is None:
            return
        try:
            self.group = self._confinement.confine(pid, f"{self.definition.name}-{pid}",
                                                   bounds_for(self.definition.limits))
        except Exception as exc:  # a CgroupError, or anything else: the process must not run unbounded
            self._kill_at_start(pid, str(exc) if isinstance(exc, CgroupError) else
                                f"cannot bound job process {pid}: {exc!r}")

    def _give_output(self, pid: int) -> None:
        """After `_confine`: the process is in its cgroup before it runs anything (it waits for its pipe). One
        that cannot be given its pipe (no descriptor left) is killed: it would wait for it forever."""
        assert self._channel is not None
        if self.killed_by_host:
            return
        try:
            self._output = give_output(self._channel, {"agent": self.definition.name, "pid": pid})
        except OSError as exc:
            self._kill_at_start(pid, f"cannot give job process {pid} its output pipe: {exc}")

    def _kill_at_start(self, pid: int, why: str) -> None:
        logger.error("job process %d killed: %s", pid, why, extra={"agent": self.definition.name, "pid": pid})
        self.life.not_ready = why
        self.kill(why)

    def on_exit(self, code: int) -> None:
        self._finish(code)

    def on_orphaned(self) -> None:
        assert self._pidfd is not None
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(pidfd)
            self._finish(EXIT_UNKNOWN)

        pidfd = self._pidfd
        loop.add_reader(pidfd, gone)  # readable once the process has exited (at once if it has)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the process is prewarmed; kill it and raise ProcessStartError otherwise."""
        await self.life.wait_ready(timeout)

    def start_job(self, start: StartJob, job_id: str) -> None:
        """Hand the process its job: at once when it is idle, or queued in its pipe while it is starting (it
        reads it right after it says Ready, and runs from then on). Raises ProcessStartError when it is
        neither, OSError when it can no longer be told (it is gone)."""
        if self.job_id is not None or self._channel is None or self.state not in (ProcessState.IDLE,
                                                                                   ProcessState.STARTING):
            raise ProcessStartError(f"process {self.pid} is {self.state.value}, not idle")
        if self.state is ProcessState.IDLE:
            self.life.move(ProcessState.RUNNING)
        self.job_id = job_id
        if self._output is not None:
            self._output.fields["job_id"] = job_id
        if self._confinement is not None:
            self._confinement.job_running(self.group, True)
        self._channel.send(down(start))  # queued: written as the process reads

    def request_shutdown(self, reason: str) -> None:
        """Ask the job to shut down; the caller bounds the wait (see `wait_exit`)."""
        if self.state in (ProcessState.RUNNING,):
            self.life.shutting_down(reason)
            assert self._channel is not None
            with contextlib.suppress(OSError):
                self._channel.send(down(ShutdownJob(reason)))
        elif self.state in (ProcessState.IDLE, ProcessState.STARTING):
            self.kill()

    def kill(self, reason: str | None = None) -> None:
        """SIGKILL the process and every process it started; `reason` is reported as the job's error when
        given."""
        if self.pid is not None and self.state is not ProcessState.EXITED and self._alive():
            self.killed_by_host = True
            self.kill_reason = self.kill_reason or reason
            kill_job(self.pid, self.group, {"agent": self.definition.name, "pid": self.pid, "job_id": self.job_id})

    async def wait_exit(self, timeout: float | None = None) -> ProcessExit:
        """How the process ended; kill it at `timeout` (then its code is the kill signal's)."""
        return await self.life.wait_exit(timeout)

    async def wait_shutting_down(self) -> None:
        await self.life.wait_shutting_down()

    @property
    def exited(self) -> bool:
        return self.state is ProcessState.EXITED

    # -- event plumbing -----------------------------------------------------------------------
    def _alive(self) -> bool:
        """Not known to have exited: its pid is still its own (a process is reaped only after its exit is
        reported, by the fork server or the template)."""
        return self._proc.is_alive() if self._proc is not None else self.state is not ProcessState.EXITED

    def _on_channel_end(self, violation: str | None) -> None:
        if violation is not None:  # agent code wrote to the pipe: the job is not to be believed any more
            logger.error("job process %s broke the protocol, killed: %s", self.pid, violation,
                         extra={"agent": self.definition.name, "pid": self.pid, "job_id": self.job_id})
            self.life.not_ready = self.life.not_ready or f"broke the protocol: {violation}"
            self.kill(f"the job process broke the protocol: {violation}")

    def _on_message(self, msg: object, _fds: tuple[int, ...]) -> None:
        if self.reports.take(msg):
            return
        if isinstance(msg, Ready):
            self.reports.ready(msg)
            self.ready_cpu = used_so_far(self.group, self.pid) or 0.0
            self.life.ready(job_queued=self.job_id is not None)
        elif isinstance(msg, InitFailed):
            self.life.start_failed(msg.error)
        elif isinstance(msg, ShuttingDown):
            self.life.shutting_down(msg.reason)
        elif isinstance(msg, Answering) and self.pid is not None:  # favoured only while its job runs
            self._answers.waiting(self.pid, msg.waiting and self.state is ProcessState.RUNNING)

    def _on_sentinel(self) -> None:
        assert self._proc is not None
        asyncio.get_running_loop().remove_reader(self._proc.sentinel)
        # the sentinel is readable once the fork server has the exit status: reading it does not block
        exitcode = self._proc.exitcode
        self._finish(exitcode if exitcode is not None else EXIT_UNKNOWN)

    def _finish(self, code: int) -> None:
        """The process has exited with `code`: read what it said before, then settle its end."""
        if self.state is ProcessState.EXITED:
            return
        self._answers.close()  # first: what it said last is read below, and its pid is no longer its own
        assert self._channel is not None
        self._channel.drain()
        if self._output is not None:
            self._output.drain()
            self._output.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        group: GroupEnd | None = None
        if self._confinement is not None and self.job_id is not None:
            self._confinement.job_running(self.group, False)
        if self.group is not None:
            group = end_group(self.group, self.definition.limits.memory_limit_mb,
                              {"agent": self.definition.name, "pid": self.pid, "job_id": self.job_id})
        self.life.exited(ProcessExit(code, self.killed_by_host, self.kill_reason, self.reports.result,
                                     self.shutdown_reason, group.memory_killed if group else None,
                                     *used(group, self.reports, self.ready_cpu)))
        self._channel.close()
