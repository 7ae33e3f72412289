"""The code that runs inside a job process: prewarm, then one job, then exit.

Its agent's template forks it (host.job.template_main), or the fork server starts it, with a pipe.
The process imports the entrypoint (nothing to import when forked from the template) and runs `setup`,
says Ready, waits for StartJob, runs the job's lifecycle (host.job.context_api or
host.lkagents.runner, by the agent's `api`), reports JobDone and exits. Bounds on all of it are enforced by the host,
which kills the process when a bound passes; nothing here needs to be trusted to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
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
from host.job.answer_priority import answer_levels
from host.job.environment import apply_environment
from host.job.inherited import let_go_of_the_hosts_descriptors
from host.job.pipe import send, watch_host_process
from host.sandbox import harden_job
from host.tracing import JobTracing, otel_env
from host.tree import become_subreaper, descendants, end_all
from host.wire.messages import InitFailed, JobDone, Ready, StartJob
from host.wire.protocol import ProtocolError, receive_output

logger = logging.getLogger("agenthost.job")

MB = 1024 * 1024


class JobRuntime(Protocol):
    """What runs a job inside the process, for one `api`: built at prewarm (imports and setup), run once."""

    async def run(self, conn: Connection, start: StartJob, job_filter: logs.JobFields,
                  spans_dropped: Callable[[], int]) -> str | None:
        """Run the job to its end; the error to report, or None. `spans_dropped` reads how many of the job's
        spans its tracing could not deliver, for its reports to the host."""
        ...


def main(conn: Connection, definition: AgentDefinition, log_format: str, log_level: int, host_pid: int,
         template_sources: Snapshot | None = None, tracing_env: tuple[tuple[str, str], ...] | None = None,
         levels: int | None = None) -> None:
    """Process target (module-level so that it can be pickled to the fork server). Forked from a template,
    `template_sources` are the files the template imported, as they were when it did, and `tracing_env` the
    host's OTEL_* settings as the template had them before the agent's env was applied, and `levels` the most
    it may run above the host (host.job.answer_priority), as the template read it before any agent code."""
    # No .pyc for project code: a file edited twice within a second (same size) would otherwise be
    # loaded from a stale cache by the next process, and hot reload would serve old code.
    sys.dont_write_bytecode = True
    let_go_of_the_hosts_descriptors()  # before any agent code runs (forked from a template: already done)
    levels = answer_levels() if levels is None else levels
    if not take_output(conn):  # the host sends it once the process is in its cgroup: until then, nothing runs
        return
    try:
        harden_job(definition.limits.memory_limit_mb * MB, levels)
    except RuntimeError as exc:  # it could not be made to run as it must: it runs nothing
        send(conn, InitFailed(str(exc)))
        return
    # only the host decides when a job stops: Ctrl-C or a stop signal sent to the whole process group (a
    # terminal, systemd's default) reaches the host, which drains; the job processes do nothing with it. A
    # handler, not SIG_IGN: a program the job runs (ffmpeg, a recorder) starts with the default again, and
    # can be stopped gracefully
    signal.signal(signal.SIGINT, not_ours)
    signal.signal(signal.SIGTERM, not_ours)
    become_subreaper()  # what a job starts stays below this process, to be ended with it
    fields: dict[str, Any] = {"agent": definition.name, "pid": os.getpid()}
    job_filter = logs.JobFields(fields)
    logs.setup("json", log_level, job_filter)  # read by the host, which logs it again in its own format
    watchdog = watch_host_process(host_pid, definition.shutdown.timeout)
    if tracing_env is None:
        tracing_env = otel_env(os.environ)  # the host's settings, before the agent's env may change them
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
    # set up while it waits, off the path of its job, from the host's settings: a provider is set once per
    # process, and the spans of the job (the agent's, livekit-agents') go to the one set first
    tracing = JobTracing(tracing_env, definition.name)
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        return  # the host went away or retired this idle process
    if not isinstance(msg, StartJob):
        return
    job_filter.fields.update({"job_id": _job_id(msg), "worker_id": msg.worker_id, **dict(msg.definition.log_fields)})
    watchdog.timeout = msg.definition.shutdown.timeout  # the job's own definition, as accepted
    if tracing.provider is None and msg.otel_env != tracing.env:  # not set up while it waited: now, once
        tracing = JobTracing(msg.otel_env, msg.definition.name)
    if msg.traceparent and tracing.join(msg.traceparent):  # before the job's context is made
        job_filter.fields["trace_id"] = msg.traceparent.split("-")[1]
    error = asyncio.run(runtime.run(conn, msg, job_filter, lambda: tracing.dropped.value))
    end_what_the_job_started()  # first: what they used, once reaped, is counted in the job's CPU time
    send(conn, JobDone(error, *_used(), spans_dropped=tracing.dropped.value))
    tracing.close()  # the job's last spans, bounded; the host's span of the job needs none of them


def _used() -> tuple[float, int]:
    """CPU seconds and peak resident bytes of this process and the processes it reaped."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    return cpu, max(me.ru_maxrss, children.ru_maxrss) * 1024  # kilobytes on Linux


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
    from host.job.context_api import ContextRuntime

    return ContextRuntime(definition)


def _start_rtc_runtime() -> None:
    """Start the rtc library's native runtime (its threads) while the process is idle, not when a job
    arrives: the first job of the process does not wait for it. Per process: threads do not survive a fork."""
    from host.job.native import start_runtime

    start_runtime()


def _job_id(start: StartJob) -> str:
    from livekit.protocol import agent as agent_pb

    job = agent_pb.Job()
    job.ParseFromString(start.job)
    return job.id


def not_ours(_signum: int, _frame: object) -> None:
    """A stop signal meant for the host (see `main`)."""
