"""`api: host`: a job whose entrypoint takes agenthost's own `host.context.JobContext` (host.lkagents.runner
runs the livekit-agents one). Built at prewarm (imports and setup), run once by host.job.lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

from livekit import api, rtc
from livekit.protocol import agent as agent_pb

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import load_function
from host.context import JobContext, ProcessContext, Shutdown
from host.job.lifecycle import run_job, run_setup
from host.wire.messages import StartJob

logger = logging.getLogger("agenthost.job")


class ContextRuntime:
    """`api: host`: the entrypoint takes agenthost's own `host.context.JobContext`."""

    def __init__(self, definition: AgentDefinition) -> None:
        self.entrypoint = load_function(definition.entrypoint)
        self.proc = ProcessContext()
        if definition.setup is not None:
            run_setup(load_function(definition.setup), self.proc)

    async def run(self, conn: Connection, start: StartJob, job_filter: logs.JobFields,
                  spans_dropped: Callable[[], int]) -> str | None:
        job = agent_pb.Job()
        job.ParseFromString(start.job)
        job_filter.fields["room"] = job.room.name
        shutdown = Shutdown(start.definition.shutdown.drain)
        ctx = JobContext(job=job, definition=start.definition, metadata=start.metadata, url=start.url,
                         token=start.token, credentials=start.credentials, worker_id=start.worker_id,
                         proc=self.proc, recovery_of=start.recovery_of, shutdown=shutdown)
        job_filter.extra = lambda: ctx.log_context_fields
        return await run_job(conn, start, _ContextJob(self.entrypoint, ctx), shutdown, spans_dropped)


class _ContextJob:
    late_errors_fail = False

    def __init__(self, entrypoint: Callable[[JobContext], Coroutine[Any, Any, None]], ctx: JobContext) -> None:
        self._entrypoint, self.ctx = entrypoint, ctx
        self.room: rtc.Room = ctx.room

    def entrypoint(self) -> Coroutine[Any, Any, None]:
        return self._entrypoint(self.ctx)

    def connected(self) -> bool:
        return self.ctx.is_connected

    def pending(self) -> list[asyncio.Task[Any]]:
        return self.ctx.participant_tasks()

    async def leave(self, reason: str) -> None:
        await self.ctx.run_shutdown_callbacks(reason)
        try:
            await self.ctx.leave()
        except Exception as exc:
            logger.warning("leaving the room failed: %s", exc)

    def server(self) -> api.LiveKitAPI:
        return self.ctx.api

    async def close(self) -> None:
        await self.ctx.close()
