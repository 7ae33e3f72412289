"""The API entrypoints are written against: `JobContext`, `ProcessContext`, `AutoSubscribe`.

Names follow the LiveKit job-lifecycle document, so an entrypoint written for the
framework runs here with only its imports changed:

    from host.context import AutoSubscribe, JobContext

This module runs inside job processes only; the host never imports it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from livekit import api, rtc
from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.definitions import AgentDefinition

logger = logging.getLogger("agenthost.job")

DEFAULT_PARTICIPANT_KINDS = (
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
)
# the RPC method `agenthost console` calls on the agent's participant at Ctrl-C: stop the agent's speech. An
# `api: livekit-agents` job answers it for its AgentSession; an `api: host` agent may register it itself
INTERRUPT_METHOD = "agenthost.interrupt"


class AutoSubscribe(str, Enum):
    SUBSCRIBE_ALL = "subscribe_all"
    SUBSCRIBE_NONE = "subscribe_none"
    AUDIO_ONLY = "audio_only"
    VIDEO_ONLY = "video_only"


@dataclass
class ProcessContext:
    """What `setup` receives: one per job process; `userdata` is kept for the job (ctx.proc)."""

    pid: int = field(default_factory=os.getpid)
    userdata: dict[str, Any] = field(default_factory=dict)


ShutdownCallback = Callable[..., Any]
ParticipantEntrypoint = Callable[["JobContext", rtc.RemoteParticipant], Awaitable[None]]


class Shutdown:
    """The one request a job ends by (the host's, the room's, the entrypoint's, the agent's own): the first
    reason wins. Made by the job's runtime (host.job.lifecycle), which waits for it."""

    def __init__(self, drain: bool) -> None:
        self._drain = drain  # the agent file's shutdown.drain, unless a request says otherwise
        self._requested: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()

    def request(self, reason: str, drain: bool | None = None) -> None:
        if not self._requested.done():
            self._requested.set_result((reason, self._drain if drain is None else drain))

    @property
    def requested(self) -> bool:
        return self._requested.done()

    async def wait(self) -> tuple[str, bool]:
        """(reason, drain) of the first request."""
        return await asyncio.shield(self._requested)


class JobContext:
    """One job: its room, its metadata, and the means to connect to and leave that room."""

    def __init__(
        self,
        *,
        job: agent_pb.Job,
        definition: AgentDefinition,
        metadata: Any,
        url: str,
        token: str,
        credentials: Credentials,
        worker_id: str,
        proc: ProcessContext,
        recovery_of: str | None = None,
        shutdown: Shutdown | None = None,
    ) -> None:
        self.job = job
        # the job whose call this one takes over, when its host died during it (README: calls survive)
        self.recovery_of = recovery_of
        self.metadata = metadata
        self.room = rtc.Room()
        self.proc = proc
        self.worker_id = worker_id
        self.log_context_fields: dict[str, Any] = {}
        self._definition = definition
        self._url = url
        self._token = token
        self._credentials = credentials
        self._api: api.LiveKitAPI | None = None
        self._connected = False
        self._shutdown_callbacks: list[ShutdownCallback] = []
        self._participant_entrypoints: list[ParticipantEntrypoint] = []
        self._participant_tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._shutdown = shutdown or Shutdown(definition.shutdown.drain)
        self.room.on("participant_connected", self._on_participant_connected)

    # -- facts about the job -------------------------------------------------------------
    @property
    def agent_name(self) -> str:
        return self._definition.name

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def api(self) -> api.LiveKitAPI:
        """A LiveKit server API client with the host's credentials (created on first use)."""
        if self._api is None:
            c = self._credentials
            self._api = api.LiveKitAPI(c.http_url, c.api_key, c.api_secret)
        return self._api

    # -- connecting ------------------------------------------------------------------------
    async def connect(self, *, auto_subscribe: AutoSubscribe | str | None = None,
                      rtc_config: Any = None) -> None:
        """Join the room. `auto_subscribe` defaults to the agent file's `auto_subscribe`."""
        mode = AutoSubscribe(auto_subscribe or self._definition.auto_subscribe)
        options = rtc.RoomOptions(auto_subscribe=mode == AutoSubscribe.SUBSCRIBE_ALL, rtc_config=rtc_config)
        await self.room.connect(self._url, self._token, options)
        self._connected = True
        logger.debug("connected to the room")
        if mode in (AutoSubscribe.AUDIO_ONLY, AutoSubscribe.VIDEO_ONLY):
            wanted = rtc.TrackKind.KIND_AUDIO if mode == AutoSubscribe.AUDIO_ONLY else rtc.TrackKind.KIND_VIDEO

            def subscribe(pub: rtc.RemoteTrackPublication, *_: Any) -> None:
                if pub.kind == wanted:
                    pub.set_subscribed(True)

            self.room.on("track_published", subscribe)
            for p in self.room.remote_participants.values():
                for pub in p.track_publications.values():
                    subscribe(pub)
        for p in list(self.room.remote_participants.values()):
            self._start_participant_entrypoints(p)

    async def wait_for_participant(
        self, *, identity: str | None = None,
        kind: rtc.ParticipantKind.ValueType | Sequence[rtc.ParticipantKind.ValueType] = DEFAULT_PARTICIPANT_KINDS,
    ) -> rtc.RemoteParticipant:
        """The first remote participant (of `identity`, of one of `kind`) in the room, waiting for it."""
        kinds = (kind,) if isinstance(kind, int) else tuple(kind)

        def matches(p: rtc.RemoteParticipant) -> bool:
            return (identity is None or p.identity == identity) and p.kind in kinds

        for p in self.room.remote_participants.values():
            if matches(p):
                return p
        fut: asyncio.Future[rtc.RemoteParticipant] = asyncio.get_running_loop().create_future()

        def on_join(p: rtc.RemoteParticipant) -> None:
            if matches(p) and not fut.done():
                fut.set_result(p)

        self.room.on("participant_connected", on_join)
        try:
            return await fut
        finally:
            self.room.off("participant_connected", on_join)

    def add_participant_entrypoint(self, entrypoint: ParticipantEntrypoint) -> None:
        """Run `entrypoint(ctx, participant)` for each participant present now and each who joins."""
        self._participant_entrypoints.append(entrypoint)
        if self._connected:
            for p in list(self.room.remote_participants.values()):
                self._start_participant_entrypoint(entrypoint, p)

    # -- ending ------------------------------------------------------------------------------
    def add_shutdown_callback(self, callback: ShutdownCallback) -> None:
        """Run `callback()` or `callback(reason)` (sync or async) when the job shuts down."""
        self._shutdown_callbacks.append(callback)

    def shutdown(self, reason: str = "", *, drain: bool | None = None) -> None:
        """Ask the job to end. Returns at once; shutdown callbacks run afterwards."""
        self._shutdown.request(reason or "shutdown requested", drain)

    async def delete_room(self, room: str | None = None) -> None:
        """Delete the room on the server, disconnecting everyone in it."""
        await self.api.room.delete_room(api.DeleteRoomRequest(room=room or self.job.room.name))

    # -- what the job's runtime does with it at the end (host.job.context_api) -------------------
    def participant_tasks(self) -> list[asyncio.Task[None]]:
        """The participant entrypoints' tasks, drained or cancelled with the entrypoint."""
        return list(self._participant_tasks.values())

    async def run_shutdown_callbacks(self, reason: str) -> None:
        """Each shutdown callback, in the order added; one that fails is logged and the next runs."""
        for cb in self._shutdown_callbacks:
            try:
                try:
                    takes_reason = len(inspect.signature(cb).parameters) >= 1
                except (TypeError, ValueError):
                    takes_reason = False
                result = cb(reason) if takes_reason else cb()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("shutdown callback %r failed", getattr(cb, "__name__", cb))

    async def leave(self) -> None:
        """Stop the participant entrypoints and leave the room."""
        for task in self._participant_tasks.values():
            task.cancel()
        if self._connected:
            self._connected = False
            await self.room.disconnect()

    async def close(self) -> None:
        """Close the server API client, if `api` made one."""
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    def _start_participant_entrypoints(self, p: rtc.RemoteParticipant) -> None:
        for ep in self._participant_entrypoints:
            self._start_participant_entrypoint(ep, p)

    def _start_participant_entrypoint(self, ep: ParticipantEntrypoint, p: rtc.RemoteParticipant) -> None:
        key = (p.identity, id(ep))
        if key in self._participant_tasks and not self._participant_tasks[key].done():
            return

        async def run() -> None:
            try:
                await ep(self, p)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("participant entrypoint failed for %s", p.identity)

        self._participant_tasks[key] = asyncio.get_running_loop().create_task(run())

    def _on_participant_connected(self, p: rtc.RemoteParticipant) -> None:
        self._start_participant_entrypoints(p)
