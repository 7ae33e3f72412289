"""The code that runs inside a job process: prewarm, then one job, then exit.

The host starts this through `multiprocessing`'s fork server, with a pipe. The process imports the
entrypoint (and runs `setup`), says Ready, waits for StartJob, runs the job's
lifecycle, reports JobDone and exits. Bounds on all of it are enforced by the host,
which kills the process when a bound passes; nothing here needs to be trusted to stop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import load_function, module_name_for_file
from host.config.sources import ImportRecorder, Snapshot, project_files, snapshot
from host.process.messages import InitFailed, JobDone, JobStarted, Ready, ShutdownJob, ShuttingDown, StartJob
from host.process.tree import become_subreaper, descendants, end_all

logger = logging.getLogger("agenthost.job")


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
    # only the host decides when a job stops: Ctrl-C or a stop signal sent to the whole process group (a
    # terminal, systemd's default) reaches the host, which drains; the job processes ignore it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    become_subreaper()  # what a job starts stays below this process, to be ended with it
    fields: dict[str, Any] = {"agent": definition.name, "pid": os.getpid()}
    job_filter = logs.JobFields(fields)
    logs.setup(log_format, log_level, job_filter)
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
    error = asyncio.run(runtime.run(conn, msg, job_filter))
    send(conn, JobDone(error))
    end_what_the_job_started()


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


class HostWatchdog(threading.Thread):
    """Ends this process when the host is gone (killed with SIGKILL, say): at once when no job runs, else
    after asking the job to shut down and giving it its shutdown timeout. Nothing is left behind."""

    def __init__(self, host_pid: int, timeout: float) -> None:
        super().__init__(name="agenthost-watchdog", daemon=True)
        self.host_pid = host_pid
        self.timeout = timeout
        self.on_host_gone: Callable[[], object] | None = None  # set while a job runs: asks it to shut down

    def run(self) -> None:
        self._wait_for_host_exit()
        hook = self.on_host_gone
        logger.warning("the host (pid %d) is gone; this job process ends%s", self.host_pid,
                       f" within its shutdown timeout ({self.timeout:g}s)" if hook else "")
        if hook is not None:
            hook()
            time.sleep(self.timeout)
        end_all(descendants(os.getpid()), grace=0.5)
        os._exit(70)

    def _wait_for_host_exit(self) -> None:
        try:
            fd = os.pidfd_open(self.host_pid)
        except (AttributeError, OSError):
            while True:  # no pidfd (an old kernel): poll
                try:
                    os.kill(self.host_pid, 0)
                except ProcessLookupError:
                    return
                except PermissionError:
                    pass
                time.sleep(0.5)
        select.select([fd], [], [])  # readable once the host has exited


BASIC_ENV = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"})


def apply_environment(definition: AgentDefinition) -> None:
    """The job's environment: the host's (all of it, or the names `inherit_env` lists, with the basics),
    then the agent's own `env`. The LiveKit API secret is never there: the host removed it from its own
    environment before the fork server started (a livekit-agents job gets it back, as livekit-agents'
    server gives it)."""
    if definition.inherit_env is not None:
        keep = set(definition.inherit_env)
        for key in list(os.environ):
            if key not in keep and key not in BASIC_ENV and not key.startswith("LC_"):
                del os.environ[key]
    for key, value in definition.env:
        os.environ[key] = value


def _prewarm(definition: AgentDefinition) -> JobRuntime:
    if definition.api == "livekit-agents":
        from host.lkagents.runner import AgentsRuntime

        return AgentsRuntime(definition)
    return HostRuntime(definition)


def _start_rtc_runtime() -> None:
    """Start the rtc library's native runtime (its threads) while the process is idle, not when a job
    arrives: the first job of the process does not wait for it. Per process: threads do not survive a fork."""
    from livekit.rtc._ffi_client import FfiClient

    FfiClient.instance  # noqa: B018  the first access starts it


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


def send(conn: Connection, msg: object) -> bool:
    """Tell the host; False when it is gone (the job still ends by its own lifecycle)."""
    try:
        conn.send(msg)
    except (BrokenPipeError, ConnectionError, OSError):
        logger.warning("the host is gone; could not report %s", type(msg).__name__)
        return False
    return True


async def _await(aw: Any) -> None:
    await aw


class HostRuntime:
    """`api: host`: the entrypoint takes agenthost's own `host.context.JobContext`."""

    def __init__(self, definition: AgentDefinition) -> None:
        from host.context import ProcessContext

        self.entrypoint = load_function(definition.entrypoint)
        self.proc = ProcessContext()
        if definition.setup is not None:
            run_setup(load_function(definition.setup), self.proc)

    async def run(self, conn: Connection, start: StartJob, job_filter: logs.JobFields) -> str | None:
        from livekit.protocol import agent as agent_pb

        from host.context import JobContext

        job = agent_pb.Job()
        job.ParseFromString(start.job)
        definition = start.definition
        job_filter.fields["room"] = job.room.name
        ctx = JobContext(job=job, definition=definition, metadata=start.metadata, url=start.url,
                         token=start.token, credentials=start.credentials, worker_id=start.worker_id,
                         proc=self.proc)
        job_filter.extra = lambda: ctx.log_context_fields
        watch_host(conn, ctx.shutdown)
        error: str | None = None
        send(conn, JobStarted(time.time()))
        logger.info("job started",
                    extra={"offer_to_entrypoint_ms": round((time.time() - start.accepted_at) * 1000)})
        task = asyncio.create_task(self.entrypoint(ctx))
        shutdown = asyncio.create_task(ctx._wait_shutdown())
        await asyncio.wait({task, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and not shutdown.done():
            exc = task.exception()
            if exc is not None:
                error = f"entrypoint raised {type(exc).__name__}: {exc}"
                logger.error("entrypoint failed", exc_info=exc)
                ctx.shutdown("entrypoint_failed")
            elif not ctx.is_connected:
                ctx.shutdown("entrypoint_returned")
            await shutdown
        reason, drain = shutdown.result()
        send(conn, ShuttingDown(reason))
        logger.info("job shutting down", extra={"reason": reason, "drain": drain})
        await finish_pending([task, *ctx._participant_tasks.values()], drain, definition.shutdown.timeout)
        asyncio.get_running_loop().remove_reader(conn.fileno())
        await ctx._run_shutdown_callbacks(reason)
        try:
            await ctx._leave()
        except Exception as exc:
            logger.warning("leaving the room failed: %s", exc)
        if definition.shutdown.delete_room:
            try:
                await ctx.delete_room()
                logger.info("room deleted")
            except Exception as exc:
                error = error or f"deleting the room failed: {exc}"
                logger.warning("deleting the room failed: %s", exc)
        await ctx._close_api()
        return error


async def finish_pending(tasks: list[asyncio.Task[Any]], drain: bool, timeout: float) -> None:
    """With drain, let pending work finish within half the shutdown timeout (the shutdown callbacks keep
    the other half); then cancel what is left."""
    pending = [t for t in tasks if not t.done()]
    if drain and pending:
        await asyncio.wait(pending, timeout=timeout / 2)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
