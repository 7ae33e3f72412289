"""The code that runs inside a job process: prewarm, then one job, then exit.

Its agent's template forks it (host.process.template_child), or the fork server starts it, with a pipe.
The process imports the entrypoint (nothing to import when forked from the template) and runs `setup`,
says Ready, waits for StartJob, runs the job's lifecycle (host.process.host_api or
host.lkagents.runner, by the agent's `api`), reports JobDone and exits. Bounds on all of it are enforced by the host,
which kills the process when a bound passes; nothing here needs to be trusted to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import module_name_for_file
from host.config.sources import ImportRecorder, Snapshot, project_files, snapshot
from host.process.environment import apply_environment
from host.process.inherited import let_go_of_the_hosts_descriptors
from host.process.messages import InitFailed, JobDone, ProcessMessage, Ready, ShutdownJob, StartJob, TemplateMessage
from host.process.protocol import ProtocolError, encode, receive_output
from host.process.watchdog import HostWatchdog
from host.sandbox import harden_job
from host.tracing import JobTracing
from host.tree import become_subreaper, descendants, end_all

logger = logging.getLogger("agenthost.job")

MB = 1024 * 1024


class JobRuntime(Protocol):
    """What runs a job inside the process, for one `api`: built at prewarm (imports and setup), run once."""

    async def run(self, conn: Connection, start: StartJob, job_filter: logs.JobFields) -> str | None:
        """Run the job to its end; the error to report, or None."""
        ...


def main(conn: Connection, definition: AgentDefinition, log_format: str, log_level: int, host_pid: int,
         template_sources: Snapshot | None = None) -> None:
    """Process target (module-level so that it can be pickled to the fork server). Forked from a template,
    `template_sources` are the files the template imported, as they were when it did."""
    # No .pyc for project code: a file edited twice within a second (same size) would otherwise be
    # loaded from a stale cache by the next process, and hot reload would serve old code.
    sys.dont_write_bytecode = True
    let_go_of_the_hosts_descriptors()  # before any agent code runs (forked from a template: already done)
    if not take_output(conn):  # the host sends it once the process is in its cgroup: until then, nothing runs
        return
    harden_job(definition.limits.memory_limit_mb * MB)
    # only the host decides when a job stops: Ctrl-C or a stop signal sent to the whole process group (a
    # terminal, systemd's default) reaches the host, which drains; the job processes do nothing with it. A
    # handler, not SIG_IGN: a program the job runs (ffmpeg, a recorder) starts with the default again, and
    # can be stopped gracefully
    signal.signal(signal.SIGINT, _not_ours)
    signal.signal(signal.SIGTERM, _not_ours)
    become_subreaper()  # what a job starts stays below this process, to be ended with it
    fields: dict[str, Any] = {"agent": definition.name, "pid": os.getpid()}
    job_filter = logs.JobFields(fields)
    logs.setup("json", log_level, job_filter)  # read by the host, which logs it again in its own format
    global _watchdog
    _watchdog = HostWatchdog(host_pid, definition.shutdown.timeout)
    _watchdog.start()
    apply_environment(definition)
    try:
        with ImportRecorder() as imported:
            runtime = _prewarm(definition)
        _start_rtc_runtime()
    except BaseException as exc:
        send(conn, InitFailed(f"{type(exc).__name__}: {exc}"))
        return
    sources = {**imported_sources(definition, imported), **(template_sources or {})}
    if not send(conn, Ready(os.getpid(), sources, time.process_time())):  # a forked process's CPU counts from 0
        return
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        return  # the host went away or retired this idle process
    if not isinstance(msg, StartJob):
        return
    job_filter.fields.update({"job_id": _job_id(msg), "worker_id": msg.worker_id, **dict(msg.definition.log_fields)})
    _watchdog.timeout = msg.definition.shutdown.timeout  # the job's own definition, as accepted
    tracing = JobTracing(msg.traceparent, msg.otel_env, msg.definition.name)  # before the job's context is made
    if msg.traceparent and tracing.provider is not None:
        job_filter.fields["trace_id"] = msg.traceparent.split("-")[1]
    error = asyncio.run(runtime.run(conn, msg, job_filter))
    send(conn, JobDone(error))
    tracing.close()  # the job's last spans, bounded; the host's span of the job needs none of them
    end_what_the_job_started()


def take_output(conn: Connection) -> bool:
    """Make the pipe the host sends first this process's stdout and stderr; False when the host is gone or
    sent something else (the process then ends)."""
    try:
        fd = receive_output(conn.fileno())
    except (EOFError, OSError, ProtocolError):
        return False
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # what the process it was forked from had not written yet
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return True


def imported_sources(definition: AgentDefinition, imported: ImportRecorder) -> dict[str, tuple[int, int]]:
    """The project files the recorded imports loaded (with the agent's own files, loaded by path)."""
    by_file = [module_name_for_file(r.file) for r in (definition.entrypoint, definition.setup) if r and r.file]
    return snapshot(project_files(imported.modules(by_file)))


def end_what_the_job_started() -> None:
    """Whatever the job started and left running ends with it (SIGTERM, then SIGKILL)."""
    left = descendants(os.getpid())
    if left:
        killed = end_all(left, grace=1.0)
        logger.warning("ended %d process(es) the job left running: %s%s", len(left), ", ".join(map(str, left)),
                       f" (killed, they ignored SIGTERM: {', '.join(map(str, killed))})" if killed else "")


def _prewarm(definition: AgentDefinition) -> JobRuntime:
    if definition.api == "livekit-agents":
        from host.lkagents.runner import AgentsRuntime

        return AgentsRuntime(definition)
    from host.process.host_api import HostRuntime

    return HostRuntime(definition)


def _start_rtc_runtime() -> None:
    """Start the rtc library's native runtime (its threads) while the process is idle, not when a job
    arrives: the first job of the process does not wait for it. Per process: threads do not survive a fork."""
    from host.process.native import start_runtime

    start_runtime()


def _job_id(start: StartJob) -> str:
    from livekit.protocol import agent as agent_pb

    job = agent_pb.Job()
    job.ParseFromString(start.job)
    return job.id


def run_setup(setup: Any, proc: Any) -> None:
    """Run a setup (prewarm) function, sync or async, with the process context it takes."""
    result = setup(proc)
    if inspect.isawaitable(result):
        asyncio.run(_await(result))


_watchdog: HostWatchdog | None = None


def watch_host(conn: Connection, shutdown: Callable[[str], None]) -> None:
    """Turn the host's ShutdownJob (or its going away) into a shutdown of the running job."""
    loop = asyncio.get_running_loop()
    if _watchdog is not None:
        _watchdog.on_host_gone = lambda: loop.call_soon_threadsafe(shutdown, "host_gone")

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            shutdown("host_gone")
            return
        if isinstance(msg, ShutdownJob):
            shutdown(msg.reason)

    loop.add_reader(conn.fileno(), on_message)


def _not_ours(_signum: int, _frame: object) -> None:
    """A stop signal meant for the host (see `main`)."""


def send(conn: Connection, msg: ProcessMessage | TemplateMessage) -> bool:
    """Tell the host (in the form it reads: host.process.protocol); False when it is gone (the job still ends by
    its own lifecycle)."""
    try:
        conn.send_bytes(encode(msg))
    except (BrokenPipeError, ConnectionError, OSError):
        logger.warning("the host is gone; could not report %s", type(msg).__name__)
        return False
    return True


async def _await(aw: Any) -> None:
    await aw


async def finish_pending(tasks: list[asyncio.Task[Any]], drain: bool, timeout: float) -> None:
    """With drain, let pending work finish within half the shutdown timeout (the shutdown callbacks keep
    the other half); then cancel what is left."""
    pending = [t for t in tasks if not t.done()]
    if drain and pending:
        await asyncio.wait(pending, timeout=timeout / 2)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
