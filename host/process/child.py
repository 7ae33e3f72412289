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
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import load_function
from host.config.sources import loaded_snapshot
from host.process.messages import InitFailed, JobDone, JobStarted, Ready, ShutdownJob, ShuttingDown, StartJob

logger = logging.getLogger("agenthost.job")


def main(conn: Connection, definition: AgentDefinition, log_format: str, log_level: int) -> None:
    """Process target (module-level so that it can be pickled to the fork server)."""
    # No .pyc for project code: a file edited twice within a second (same size) would otherwise be
    # loaded from a stale cache by the next process, and hot reload would serve old code.
    sys.dont_write_bytecode = True
    fields: dict[str, Any] = {"agent": definition.name, "pid": os.getpid()}
    job_filter = logs.JobFields(fields)
    logs.setup(log_format, log_level, job_filter)
    for key, value in definition.env:
        os.environ[key] = value
    try:
        from host.context import ProcessContext

        entrypoint = load_function(definition.entrypoint)
        proc = ProcessContext()
        if definition.setup is not None:
            result = load_function(definition.setup)(proc)
            if inspect.isawaitable(result):
                asyncio.run(_await(result))
    except BaseException as exc:
        _send(conn, InitFailed(f"{type(exc).__name__}: {exc}"))
        return
    if not _send(conn, Ready(os.getpid(), loaded_snapshot())):
        return
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        return  # the host went away or retired this idle process
    if not isinstance(msg, StartJob):
        return
    error = asyncio.run(_run_job(conn, msg, entrypoint, proc, job_filter))
    _send(conn, JobDone(error))


def _send(conn: Connection, msg: object) -> bool:
    """Tell the host; False when it is gone (the job still ends by its own lifecycle)."""
    try:
        conn.send(msg)
    except (BrokenPipeError, ConnectionError, OSError):
        logger.warning("the host is gone; could not report %s", type(msg).__name__)
        return False
    return True


async def _await(aw: Any) -> None:
    await aw


async def _run_job(conn: Connection, start: StartJob, entrypoint: Any, proc: Any,
                   job_filter: logs.JobFields) -> str | None:
    from livekit.protocol import agent as agent_pb

    from host.context import JobContext

    job = agent_pb.Job()
    job.ParseFromString(start.job)
    definition = start.definition
    job_filter.fields.update({"job_id": job.id, "room": job.room.name, "worker_id": start.worker_id,
                              **dict(definition.log_fields)})
    ctx = JobContext(job=job, definition=definition, metadata=start.metadata, url=start.url, token=start.token,
                     credentials=start.credentials, worker_id=start.worker_id, proc=proc)
    job_filter.extra = lambda: ctx.log_context_fields

    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), _on_host_message, conn, ctx)
    error: str | None = None
    _send(conn, JobStarted(time.time()))
    logger.info("job started", extra={"offer_to_entrypoint_ms": round((time.time() - start.accepted_at) * 1000)})
    task = asyncio.create_task(entrypoint(ctx))
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
    _send(conn, ShuttingDown(reason))
    logger.info("job shutting down", extra={"reason": reason, "drain": drain})
    pending = [t for t in (task, *ctx._participant_tasks.values()) if not t.done()]
    if drain and pending:
        # pending work may finish while the room is still connected, within half the shutdown timeout so
        # that the shutdown callbacks keep the other half
        await asyncio.wait(pending, timeout=definition.shutdown.timeout / 2)
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    loop.remove_reader(conn.fileno())
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


def _on_host_message(conn: Connection, ctx: Any) -> None:
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        ctx.shutdown("host_gone")
        return
    if isinstance(msg, ShutdownJob):
        ctx.shutdown(msg.reason)

