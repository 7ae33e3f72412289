"""`api: host`: one job run with agenthost's own `host.context.JobContext` (see host.lkagents.runner for the
livekit-agents one). Built at prewarm (imports and setup), run once, inside the job process."""

from __future__ import annotations

import asyncio
import logging
import time
from multiprocessing.connection import Connection

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import load_function
from host.process import vitals
from host.process.child import finish_pending, run_setup, send, watch_host
from host.process.messages import JobStarted, ShuttingDown, StartJob
from host.process.room import delete_job_room, taken_over

logger = logging.getLogger("agenthost.job")


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
                         proc=self.proc, recovery_of=start.recovery_of)
        job_filter.extra = lambda: ctx.log_context_fields
        watch_host(conn, ctx.shutdown)
        error: str | None = None
        send(conn, JobStarted(time.time()))
        reporting = vitals.start(conn, lambda: len(ctx.room.remote_participants))
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
        reporting.cancel()
        send(conn, ShuttingDown(reason))
        logger.info("job shutting down", extra={"reason": reason, "drain": drain})
        await finish_pending([task, *ctx._participant_tasks.values()], drain, definition.shutdown.timeout)
        asyncio.get_running_loop().remove_reader(conn.fileno())
        await ctx._run_shutdown_callbacks(reason)
        try:
            await ctx._leave()
        except Exception as exc:
            logger.warning("leaving the room failed: %s", exc)
        if definition.shutdown.delete_room and not taken_over(definition, reason):
            error = error or await delete_job_room(ctx.api, ctx.job.room.name)
        await ctx._close_api()
        return error
