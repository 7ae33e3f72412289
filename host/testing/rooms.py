"""Rooms as a test sees them: tokens, real rtc clients that collect what they receive, and dispatches."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import aiohttp
from livekit import api, rtc
from livekit.protocol import agent as agent_pb

from host.job.native import start_runtime
from host.runtime.worker import PROTOCOL_VERSION


class Server(Protocol):
    """What a room's clients need of a server (host.testing.harness.LiveKitServer is one)."""

    @property
    def url(self) -> str: ...

    def api(self) -> api.LiveKitAPI: ...


API_KEY = "devkey"
API_SECRET = "secret-for-agenthost-tests-0123456789"


def token(room: str, identity: str, attributes: dict[str, str] | None = None) -> str:
    at = api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_grants(
        api.VideoGrants(room_join=True, room=room, can_update_own_metadata=True))
    if attributes:
        at = at.with_attributes(attributes)
    return at.to_jwt()


class Client:
    """A real participant: collects the text streams it receives, by topic."""

    def __init__(self, server: Server, room: str, identity: str = "user",
                 attributes: dict[str, str] | None = None) -> None:
        self.server, self.room_name, self.identity, self.attributes = server, room, identity, attributes
        start_runtime()  # as a job process does: without it, idle clients keep the CPU busy with log records
        self.room = rtc.Room()
        self.texts: dict[str, list[str]] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def listen(self, topic: str) -> None:
        def handler(reader: rtc.TextStreamReader, _identity: str) -> None:
            async def read() -> None:
                self.texts.setdefault(topic, []).append(await reader.read_all())
                self._changed.set()
            task = asyncio.get_running_loop().create_task(read())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.room.register_text_stream_handler(topic, handler)

    async def connect(self) -> Client:
        await self.room.connect(self.server.url, token(self.room_name, self.identity, self.attributes))
        return self

    async def wait_text(self, topic: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.texts.get(topic, [])) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.identity}: {len(self.texts.get(topic, []))}/{count} texts on "
                                     f"{topic!r} after {timeout}s: {self.texts}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.texts[topic]

    async def wait_participant(self, prefix: str, timeout: float = 20.0) -> None:
        """Until a participant whose identity starts with `prefix` is in the room."""
        await self._until(lambda: any(i.startswith(prefix) for i in self.room.remote_participants), timeout,
                          f"no participant {prefix}*")

    async def wait_participant_gone(self, identity: str, timeout: float = 20.0) -> None:
        await self._until(lambda: identity not in self.room.remote_participants, timeout, f"{identity} still here")

    async def _until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.identity}: {what} after {timeout}s")
            await asyncio.sleep(0.05)

    async def disconnect(self) -> None:
        await self.room.disconnect()


@contextlib.asynccontextmanager
async def server_api(server: Server) -> AsyncIterator[api.LiveKitAPI]:
    client = server.api()
    try:
        yield client
    finally:
        await client.aclose()


def new_room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


async def job_in_new_room(server: Server, agent: str, topic: str, count: int = 1) -> Client:
    """Dispatch `agent` to a new room with a client in it; return once `count` texts arrived on `topic`."""
    client = Client(server, new_room())
    client.listen(topic)
    await client.connect()
    await dispatch(server, agent, client.room_name)
    await client.wait_text(topic, count)
    return client


async def renew_agent_list(server: Server) -> None:
    """Have the server look up its registered agents afresh when the next room starts, instead of within the
    minute after (its list is kept for a minute, and the look-up waits out its full 5 s request, holding every
    dispatch made meanwhile: livekit-server pkg/agent/client.go). A bench that lets the next rooms' look-up
    end before it dispatches then measures the hosts, not that wait. A worker registered under a name no one
    uses makes every node drop its list; it leaves at once."""
    grant = api.AccessToken(API_KEY, API_SECRET).with_grants(api.VideoGrants(agent=True)).to_jwt()
    register = agent_pb.WorkerMessage(register=agent_pb.RegisterWorkerRequest(
        type=agent_pb.JobType.JT_ROOM, agent_name=f"list-renewal-{uuid.uuid4().hex[:8]}"))
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{server.url}/agent?protocol={PROTOCOL_VERSION}", headers={"Authorization": f"Bearer {grant}"}) as ws:
        await ws.send_bytes(register.SerializeToString())
        answer = await asyncio.wait_for(ws.receive(), 10)
        if answer.type != aiohttp.WSMsgType.BINARY:
            raise AssertionError(f"the server did not register the worker: {answer.type.name}")


async def dispatch(server: Server, agent: str, room: str, metadata: str = "") -> str:
    async with server_api(server) as lk:
        d = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent, room=room, metadata=metadata))
        return d.id
