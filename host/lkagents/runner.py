"""One job of an `api: livekit-agents` agent, run as livekit-agents' own job process runs it.

The process builds a genuine `livekit.agents.JobContext` (so `get_job_context()`, `AgentSession`, RoomIO,
plugins' `http_session()` and `ctx.api` work as under livekit-agents' server), and agenthost keeps what it
adds: metadata checked at the offer, the agent file's shutdown policy and bounds, and its own reports to
the host. The shutdown keeps livekit-agents' order: the entrypoint (drained or cancelled), the primary
AgentSession closed, the session-end function, the session report, leaving the room, the shutdown
callbacks with the reason, deleting the room if the agent file says so; then pending tasks are cancelled,
the context cleaned up, the HTTP session closed and the context variable reset. All of it runs within the
agent's `shutdown.timeout`, after which the host kills the process. Once in the room, its participant also
answers INTERRUPT_METHOD, an RPC any participant may call to stop the agent's current speech.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

from livekit import api, rtc
from livekit.agents import JobContext, JobExecutorType, JobProcess
from livekit.agents.job import JobAcceptArguments, RunningJobInfo, _JobContextVar
from livekit.agents.utils import http_context
from livekit.protocol import agent as agent_pb

from host import logs
from host.config.definitions import AgentDefinition
from host.config.entrypoints import load_function, load_object
from host.context import INTERRUPT_METHOD, Shutdown
from host.job.answer_priority import AnswerWatch
from host.job.lifecycle import finish_pending, run_job, run_setup
from host.job.pipe import send
from host.lkagents import compat
from host.wire.messages import Answering, StartJob

logger = logging.getLogger("agenthost.job")


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

    async def run(self, conn: Connection, start: StartJob, job_filter: logs.JobFields,
                  spans_dropped: Callable[[], int]) -> str | None:
        job = agent_pb.Job()
        job.ParseFromString(start.job)
        job_filter.fields["room"] = job.room.name
        if start.traceparent:
            _trace_with_the_job()
        shutdown = Shutdown(start.definition.shutdown.drain)
        return await run_job(conn, start, _Job(self, start, job, shutdown, conn), shutdown, spans_dropped)


def _trace_with_the_job() -> None:
    """livekit-agents' spans (job_entrypoint, agent_session, user_turn, ...) go to the job process's tracer
    provider (set up from the host's OTEL_* settings), under the host's span of the job."""
    from livekit.agents import telemetry
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        telemetry.set_tracer_provider(provider)


class _Context(JobContext):
    """livekit-agents' JobContext, which also sees its primary AgentSession start (AgentSession.start sets it):
    from then on, the host hears when the call waits for its agent's answer (host.job.answer_priority)."""

    answers: AnswerWatch | None = None

    @property
    def _primary_agent_session(self) -> Any:
        return self.__dict__.get("_primary")

    @_primary_agent_session.setter
    def _primary_agent_session(self, session: Any) -> None:
        if session is not None and self.__dict__.get("_primary") is None and self.answers is not None:
            self.answers.watch(session)
        self.__dict__["_primary"] = session


class _Job:
    """livekit-agents' part in the job's life (host.job.lifecycle runs it)."""

    late_errors_fail = True

    def __init__(self, runtime: AgentsRuntime, start: StartJob, job: agent_pb.Job, shutdown: Shutdown,
                 conn: Connection) -> None:
        self.runtime, self.start, self.job, self.shutdown = runtime, start, job, shutdown
        self.definition = start.definition
        self._connected = False
        self.room = rtc.Room()
        self.room._info.name = job.room.name  # what livekit-agents does: ctx.room.name before connecting
        p = start.participant
        info = RunningJobInfo(
            accept_arguments=JobAcceptArguments(name=p.name, identity=p.identity, metadata=p.metadata,
                                                attributes=dict(p.attributes)),
            job=job, url=start.url, token=start.token, worker_id=start.worker_id,
            fake_job=False)  # a real job: delete_room works
        if hasattr(info, "accepted_at"):  # 1.8 added the dispatch timeline
            info.accepted_at = start.accepted_at

        def on_connect() -> None:
            self._connected = True
            self.room.local_participant.register_rpc_method(INTERRUPT_METHOD, self._interrupt)

        # what livekit-agents' server gives a job: its credentials, for ctx.api and the plugins
        c = start.credentials
        os.environ.update(LIVEKIT_URL=c.url, LIVEKIT_API_KEY=c.api_key, LIVEKIT_API_SECRET=c.api_secret)
        self.ctx = _Context(proc=runtime.proc, info=info, room=self.room, on_connect=on_connect,
                            on_shutdown=lambda reason: shutdown.request(reason or "user requested"),
                            inference_executor=_NoInference())
        self.ctx.answers = AnswerWatch(lambda waiting: send(conn, Answering(waiting)))
        self.ctx._on_setup()
        self._token = _JobContextVar.set(self.ctx)
        http_context._new_session_ctx()

    def entrypoint(self) -> Coroutine[Any, Any, None]:
        return self.runtime.entry.entrypoint(self.ctx)

    def connected(self) -> bool:
        return self._connected

    def pending(self) -> list[asyncio.Task[Any]]:
        return []

    async def leave(self, reason: str) -> None:
        """livekit-agents' order: the primary AgentSession closed, the session-end function, the session report,
        leaving the room, then the shutdown callbacks with the reason."""
        ctx = self.ctx
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
        try:
            await ctx.room.disconnect()
        except Exception as exc:
            logger.warning("leaving the room failed: %s", exc)
        results = await asyncio.gather(*(cb(reason) for cb in ctx._shutdown_callbacks), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.error("shutdown callback failed: %s", result, exc_info=result)

    def server(self) -> api.LiveKitAPI:
        return self.ctx.api

    async def _interrupt(self, _data: rtc.RpcInvocationData) -> str:
        """What a participant asks with INTERRUPT_METHOD (`agenthost console`'s Ctrl-C): the primary session
        stops its current speech, as the caller's own speech would stop it (a speech made not to be
        interrupted goes on)."""
        session: Any = self.ctx._primary_agent_session
        if session is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, "no AgentSession is running")
        await session.interrupt()
        return "interrupted"

    async def close(self) -> None:
        ctx = self.ctx
        if ctx._pending_tasks:
            await finish_pending(list(ctx._pending_tasks), False, 0)
        await ctx._on_cleanup()
        await http_context._close_http_ctx()
        _JobContextVar.reset(self._token)
