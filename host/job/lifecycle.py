"""One job's life inside its process, the same for every `api`: the job started, its entrypoint run, the one
shutdown request it ends by (the host's, the room's, the entrypoint's, the agent's own), pending work drained
or cancelled within the shutdown timeout, the room left in the api's order, and the agent file's room policy.

What differs between `api: host` (host.job.context_api) and `api: livekit-agents` (host.lkagents.runner) is a
`JobApi`: how the entrypoint is called, what else is pending, and how the room is left and cleaned up after.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any, Protocol

from livekit import api, rtc

from host.config.definitions import AgentDefinition
from host.context import DEFAULT_PARTICIPANT_KINDS as CALLERS
from host.context import Shutdown
from host.job import vitals
from host.job.pipe import send, watch_host
from host.job.room import delete_room, taken_over
from host.wire.messages import JobStarted, ShuttingDown, StartJob

logger = logging.getLogger("agenthost.job")


class JobApi(Protocol):
    """What one `api` does in a job's life."""

    room: rtc.Room
    # whether an entrypoint that raises once the job is ending fails the job: livekit-agents reports it; an
    # `api: host` job ends by its own request, whatever its entrypoint does while it is cancelled or drained
    late_errors_fail: bool

    def entrypoint(self) -> Coroutine[Any, Any, None]:
        """The agent's entrypoint, called with the api's context."""
        ...

    def connected(self) -> bool:
        """Whether the entrypoint connected to the room (an entrypoint that returns before it did ends the job)."""
        ...

    def pending(self) -> list[asyncio.Task[Any]]:
        """Work of the job besides its entrypoint, drained or cancelled with it."""
        ...

    async def leave(self, reason: str) -> None:
        """Leave the room, in the api's order (its session closed, the shutdown callbacks run)."""
        ...

    def server(self) -> api.LiveKitAPI:
        """The server API, to delete the room with."""
        ...

    async def close(self) -> None:
        """What is left once the job has left its room (last, whatever happened)."""
        ...


def run_setup(setup: Any, proc: Any) -> None:
    """Run a setup (prewarm) function, sync or async, with the process context it takes."""
    result = setup(proc)
    if inspect.isawaitable(result):
        asyncio.run(_await(result))


async def _await(aw: Any) -> None:
    await aw


def end_with_the_room(room: rtc.Room, definition: AgentDefinition, shutdown: Shutdown,
                      connected: Callable[[], bool]) -> None:
    """The room's part in the job's end: disconnected, or (`shutdown.when: participants_left`) left by its last
    caller once the job had connected."""

    def on_left(_p: rtc.RemoteParticipant) -> None:
        if definition.shutdown.when != "participants_left" or not connected():
            return
        if not any(p.kind in CALLERS for p in room.remote_participants.values()):  # a person, a phone call
            shutdown.request("participants_left")

    room.on("participant_disconnected", on_left)
    room.on("disconnected", lambda *_: shutdown.request("room_disconnected"))


async def run_job(conn: Connection, start: StartJob, job: JobApi, shutdown: Shutdown,
                  spans_dropped: Callable[[], int] = lambda: 0) -> str | None:
    """Run one job to its end; the error to report, or None."""
    definition = start.definition
    error: str | None = None

    def on_entrypoint_done(task: asyncio.Task[None]) -> None:
        nonlocal error
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and (job.late_errors_fail or not shutdown.requested):
            error = f"entrypoint raised {type(exc).__name__}: {exc}"
            logger.error("entrypoint failed", exc_info=exc)
            shutdown.request("entrypoint_failed")
        elif not job.connected():
            shutdown.request("entrypoint_returned")

    end_with_the_room(job.room, definition, shutdown, job.connected)
    watch_host(conn, shutdown.request)
    reporting = vitals.start(conn, lambda: len(job.room.remote_participants), spans_dropped)
    try:
        send(conn, JobStarted(time.time()))
        logger.info("job started", extra={"offer_to_entrypoint_ms": round((time.time() - start.accepted_at) * 1000)})
        task = asyncio.create_task(job.entrypoint(), name="entrypoint")
        task.add_done_callback(on_entrypoint_done)
        reason, drain = await shutdown.wait()
        reporting.cancel()
        send(conn, ShuttingDown(reason))
        logger.info("job shutting down", extra={"reason": reason, "drain": drain})
        await finish_pending([task, *job.pending()], drain, definition.shutdown.timeout)
        asyncio.get_running_loop().remove_reader(conn.fileno())
        await job.leave(reason)
        if definition.shutdown.delete_room and not taken_over(definition, reason):
            failed = await delete_room(job.server(), job.room.name)
            if failed is None:
                logger.info("room deleted")
            else:
                logger.warning("%s", failed)
            error = error or failed
    finally:
        reporting.cancel()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(conn.fileno())
        await job.close()
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
