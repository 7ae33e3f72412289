"""One job of an `api: livekit-agents` agent, run as livekit-agents' own job process runs it.

The process builds a genuine `livekit.agents.JobContext` (so `get_job_context()`, `AgentSession`, RoomIO,
plugins' `http_session()` and `ctx.api` work as under livekit-agents' server), and agenthost keeps what it
adds: metadata checked at the offer, the agent file's shutdown policy and bounds, and its own reports to
the host. The shutdown keeps livekit-agents' order: the entrypoint (drained or cancelled), the primary
AgentSession closed, the session-end function, the session report, leaving the room, the shutdown
callbacks with the reason, deleting the room if the agent file says so; then pending tasks are cancelled,
the context cleaned up, the HTTP session closed and the context variable reset. All of it runs within the
agent's `shutdown.timeout`, after which the host kills the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from livekit import rtc
from livekit.agents import JobContext, JobExecutorType, JobProcess
from livekit.agents.job import JobAcceptArguments, RunningJobInfo, _JobContextVar
from livekit.agents.utils import http_context
from livekit.protocol import agent as agent_pb

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import load_function, load_object
from host.lkagents import compat
from host.process import vitals
from host.process.child import finish_pending, run_setup, send, watch_host
from host.process.messages import JobStarted, ShuttingDown, StartJob
from host.process.room import delete_job_room, taken_over

logger = logging.getLogger("agenthost.job")

STANDARD_KINDS = (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, rtc.ParticipantKind.PARTICIPANT_KIND_SIP)


class _NoInference:
    """livekit-agents' inference executor: agenthost runs no separate inference process (checked at
    prewarm, so nothing should ask)."""

    async def do_inference(self, method: str, data: bytes) -> bytes | None:
        raise RuntimeError(f"agenthost runs no livekit-agents inference process (asked for {method!r})")


def import_agent(definition: AgentDefinition) -> None:
    """Import what a job of this agent needs before its job, without running anything (an agent's template)."""
    compat.check_compatible()
    from livekit.agents.ipc import _preload  # noqa: F401  livekit-agents' own warm-up (a no-op if preloaded)

    compat.intercept_run_app()
    compat.resolve(load_object(definition.entrypoint))


class AgentsRuntime:
    """Built at prewarm: the agent's code imported, its entry resolved, `setup` run on a JobProcess."""

    def __init__(self, definition: AgentDefinition) -> None:
        compat.check_compatible()
        from livekit.agents.ipc import _preload  # noqa: F401  livekit-agents' own warm-up (a no-op if preloaded)

        compat.intercept_run_app()  # a module calling cli.run_app at import is imported, not run
        self.entry = compat.resolve(load_object(definition.entrypoint))
        compat.check_no_inference_runners()
        self.proc = JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)
        setup = load_function(definition.setup) if definition.setup is not None else self.entry.setup
        if setup is not None:
            run_setup(setup, self.proc)

    async def run(self, conn: Connection, start: StartJob, job_filter: logs.JobFields) -> str | None:
        job = agent_pb.Job()
        job.ParseFromString(start.job)
        job_filter.fields["room"] = job.room.name
        if start.traceparent:
            _trace_with_the_job()
        return await _Job(self, conn, start, job).run()


def _trace_with_the_job() -> None:
    """livekit-agents' spans (job_entrypoint, agent_session, user_turn, ...) go to the job process's tracer
    provider (set up from the host's OTEL_* settings), under the host's span of the job."""
    from livekit.agents import telemetry
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        telemetry.set_tracer_provider(provider)


class _Job:
    def __init__(self, runtime: AgentsRuntime, conn: Connection, start: StartJob, job: agent_pb.Job) -> None:
        self.runtime, self.conn, self.start, self.job = runtime, conn, start, job
        self.definition = start.definition
        self.connected = False
        self.error: str | None = None
        self.shutdown: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()

    def request_shutdown(self, reason: str, drain: bool | None = None) -> None:
        if not self.shutdown.done():
            self.shutdown.set_result((reason, self.definition.shutdown.drain if drain is None else drain))

    def _context(self) -> JobContext:
        p = self.start.participant
        info = RunningJobInfo(
            accept_arguments=JobAcceptArguments(name=p.name, identity=p.identity, metadata=p.metadata,
                                                attributes=dict(p.attributes)),
            job=self.job, url=self.start.url, token=self.start.token, worker_id=self.start.worker_id,
            fake_job=False)  # a real job: delete_room works
        if hasattr(info, "accepted_at"):  # 1.8 added the dispatch timeline
            info.accepted_at = self.start.accepted_at
        room = rtc.Room()
        room._info.name = self.job.room.name  # what livekit-agents does: ctx.room.name before connecting
        room.on("disconnected", lambda *_: self.request_shutdown("room_disconnected"))
        room.on("participant_disconnected", self._on_participant_left)

        def on_connect() -> None:
            self.connected = True

        return JobContext(proc=self.runtime.proc, info=info, room=room, on_connect=on_connect,
                          on_shutdown=lambda reason: self.request_shutdown(reason or "user requested"),
                          inference_executor=_NoInference())

    def _on_participant_left(self, _p: rtc.RemoteParticipant) -> None:
        if self.definition.shutdown.when != "participants_left" or not self.connected:
            return
        room = self.ctx.room
        if not any(rp.kind in STANDARD_KINDS for rp in room.remote_participants.values()):
            self.request_shutdown("participants_left")

    async def run(self) -> str | None:
        # what livekit-agents' server gives a job: its credentials, for ctx.api and the plugins
        c = self.start.credentials
        os.environ.update(LIVEKIT_URL=c.url, LIVEKIT_API_KEY=c.api_key, LIVEKIT_API_SECRET=c.api_secret)
        self.ctx = ctx = self._context()
        ctx._on_setup()
        token = _JobContextVar.set(ctx)
        http_context._new_session_ctx()
        watch_host(self.conn, self.request_shutdown)
        reporting = vitals.start(self.conn, lambda: len(ctx.room.remote_participants))
        try:
            send(self.conn, JobStarted(time.time()))
            logger.info("job started", extra={"offer_to_entrypoint_ms": round((time.time() - self.start.accepted_at)
                                                                              * 1000)})
            task = asyncio.create_task(self.runtime.entry.entrypoint(ctx), name="entrypoint")
            task.add_done_callback(self._on_entrypoint_done)
            reason, drain = await self.shutdown
            reporting.cancel()
            send(self.conn, ShuttingDown(reason))
            logger.info("job shutting down", extra={"reason": reason, "drain": drain})
            await finish_pending([task], drain, self.definition.shutdown.timeout)
            await self._end_session(ctx)
            await self._leave(ctx, reason)
        finally:
            reporting.cancel()
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            if ctx._pending_tasks:
                await finish_pending(list(ctx._pending_tasks), False, 0)
            await ctx._on_cleanup()
            await http_context._close_http_ctx()
            _JobContextVar.reset(token)
        return self.error

    def _on_entrypoint_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.error = f"entrypoint raised {type(exc).__name__}: {exc}"
            logger.error("entrypoint failed", exc_info=exc)
            self.request_shutdown("entrypoint_failed")
        elif not self.connected:
            self.request_shutdown("entrypoint_returned")

    async def _end_session(self, ctx: JobContext) -> None:
        session: Any = ctx._primary_agent_session
        if session is not None:
            try:
                await session.aclose()
            except Exception:
                logger.exception("closing the AgentSession failed")
        entry = self.runtime.entry
        if entry.session_end is not None:
            try:
                await asyncio.wait_for(entry.session_end(ctx), entry.session_end_timeout)
            except Exception:
                logger.exception("the session-end function failed")
        try:
            await ctx._on_session_end()
        except Exception:
            logger.exception("the session report failed")

    async def _leave(self, ctx: JobContext, reason: str) -> None:
        try:
            await ctx.room.disconnect()
        except Exception as exc:
            logger.warning("leaving the room failed: %s", exc)
        results = await asyncio.gather(*(cb(reason) for cb in ctx._shutdown_callbacks), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.error("shutdown callback failed: %s", result, exc_info=result)
        if self.definition.shutdown.delete_room and not taken_over(self.definition, reason):
            self.error = self.error or await delete_job_room(ctx.api, self.job.room.name)
