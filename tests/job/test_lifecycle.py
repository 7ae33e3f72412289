"""One job's life inside its process, for any api: how it ends (the first request wins), what it tells the host,
how pending work is drained or cancelled, the room left, and the room policy."""

from __future__ import annotations

import asyncio
from multiprocessing import Pipe
from typing import Any

import pytest
from livekit import rtc

from host.config.credentials import Credentials
from host.config.loader import load
from host.context import Shutdown
from host.job.lifecycle import end_with_the_room, finish_pending, run_job
from host.wire.messages import JobStarted, Participant, ShutdownJob, ShuttingDown, StartJob
from host.wire.protocol import decode_job


def definition(tmp_path, shutdown: str = "{}"):
    (tmp_path / "a.yaml").write_text(f"name: a\nentrypoint: m:f\nshutdown: {shutdown}\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


def start(d) -> StartJob:
    return StartJob(b"", d, "ws://x", "t", Credentials("ws://x", "k", "s" * 32), "AW", 0.0, None,
                    Participant("agent-1", "", "", ()))


class Room:
    """What the lifecycle reads of a room: its events, its name and who is in it."""

    def __init__(self) -> None:
        self.name = "room-1"
        self.remote_participants: dict[str, Any] = {}
        self._handlers: dict[str, list[Any]] = {}

    def on(self, event: str, handler: Any) -> None:
        self._handlers.setdefault(event, []).append(handler)

    def emit(self, event: str, *args: Any) -> None:
        for handler in self._handlers.get(event, []):
            handler(*args)


class Person:
    def __init__(self, kind: int) -> None:
        self.kind = kind


class Server:
    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.room = self

    async def delete_room(self, request: Any) -> None:
        self.deleted.append(request.room)


class FakeJob:
    """A JobApi whose entrypoint is given; it records what the lifecycle asked of it, in order."""

    late_errors_fail = True

    def __init__(self, entrypoint: Any, extra: list[asyncio.Task[Any]] | None = None) -> None:
        self.room = Room()
        self._entrypoint = entrypoint
        self._extra = extra or []
        self.is_connected = False
        self.calls: list[str] = []
        self.api = Server()

    def entrypoint(self) -> Any:
        return self._entrypoint(self)

    def connected(self) -> bool:
        return self.is_connected

    def pending(self) -> list[asyncio.Task[Any]]:
        return self._extra

    async def leave(self, reason: str) -> None:
        self.calls.append(f"leave {reason}")

    def server(self) -> Any:
        return self.api

    async def close(self) -> None:
        self.calls.append("close")


def told(host_end) -> list[Any]:
    found = []
    while host_end.poll():
        found.append(decode_job(host_end.recv_bytes()))
    return [m for m in found if isinstance(m, (JobStarted, ShuttingDown))]


async def test_an_entrypoint_that_returns_before_it_connected_ends_the_job(tmp_path):
    d = definition(tmp_path)
    host_end, job_end = Pipe()

    async def entrypoint(job):
        return None

    job = FakeJob(entrypoint)
    error = await run_job(job_end, start(d), job, Shutdown(d.shutdown.drain))
    assert error is None
    assert job.calls == ["leave entrypoint_returned", "close"]
    messages = told(host_end)
    assert isinstance(messages[0], JobStarted) and messages[1] == ShuttingDown("entrypoint_returned")


async def test_an_entrypoint_that_raises_fails_the_job_with_its_error(tmp_path):
    d = definition(tmp_path)
    _, job_end = Pipe()

    async def entrypoint(job):
        raise ValueError("no such table")

    job = FakeJob(entrypoint)
    error = await run_job(job_end, start(d), job, Shutdown(d.shutdown.drain))
    assert error == "entrypoint raised ValueError: no such table"
    assert job.calls == ["leave entrypoint_failed", "close"]


async def test_the_hosts_shutdown_ends_a_connected_job_and_the_room_is_deleted_by_policy(tmp_path):
    d = definition(tmp_path, "{delete_room: true}")
    host_end, job_end = Pipe()
    running = asyncio.Event()

    async def entrypoint(job):
        job.is_connected = True
        running.set()
        await asyncio.Event().wait()

    job = FakeJob(entrypoint)
    run = asyncio.create_task(run_job(job_end, start(d), job, Shutdown(d.shutdown.drain)))
    await running.wait()
    host_end.send(ShutdownJob("host_draining"))  # pickled down, as the host sends it
    assert await asyncio.wait_for(run, 10) is None
    assert job.calls == ["leave host_draining", "close"] and job.api.deleted == ["room-1"]


async def test_a_call_taken_over_keeps_its_room(tmp_path):
    d = definition(tmp_path, "{delete_room: true}")
    _, job_end = Pipe()
    shutdown = Shutdown(d.shutdown.drain)

    async def entrypoint(job):
        job.is_connected = True
        shutdown.request("taken_over")
        await asyncio.Event().wait()

    job = FakeJob(entrypoint)
    assert await asyncio.wait_for(run_job(job_end, start(d), job, shutdown), 10) is None
    assert job.api.deleted == []


@pytest.mark.parametrize(("when", "connected", "left", "ends"), [
    ("participants_left", True, [], "participants_left"),
    ("participants_left", True, [rtc.ParticipantKind.PARTICIPANT_KIND_SIP], None),  # a phone caller is still in
    ("participants_left", True, [rtc.ParticipantKind.PARTICIPANT_KIND_AGENT], "participants_left"),  # no person
    ("participants_left", False, [], None),  # before the job connected, nobody has left it yet
    ("manual", True, [], None),
])
async def test_the_last_caller_leaving_ends_a_participants_left_job(tmp_path, when, connected, left, ends):
    d = definition(tmp_path, f"{{when: {when}}}")
    room, shutdown = Room(), Shutdown(d.shutdown.drain)
    end_with_the_room(room, d, shutdown, lambda: connected)
    room.remote_participants = {str(i): Person(kind) for i, kind in enumerate(left)}
    room.emit("participant_disconnected", Person(rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD))
    room.emit("participant_disconnected", Person(rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD))
    if ends is None:
        room.emit("disconnected")  # something to wait for: the room's own end comes after
        assert (await shutdown.wait())[0] == "room_disconnected"
    else:
        assert (await shutdown.wait())[0] == ends


async def test_the_first_request_wins_and_drain_defaults_to_the_agent_file():
    shutdown = Shutdown(drain=False)
    shutdown.request("participants_left")
    shutdown.request("host_draining", drain=True)
    assert await shutdown.wait() == ("participants_left", False)


async def test_pending_work_is_drained_within_half_the_timeout_then_cancelled():
    done = []

    async def quick():
        await asyncio.sleep(0.05)
        done.append("quick")

    async def endless():
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(quick()), asyncio.create_task(endless())]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await finish_pending(tasks, drain=True, timeout=0.4)
    assert done == ["quick"] and tasks[1].cancelled() and loop.time() - began < 5
    late = asyncio.create_task(quick())
    await finish_pending([late], drain=False, timeout=10)  # no drain: cancelled at once
    assert late.cancelled() and done == ["quick"]


@pytest.mark.parametrize(("late_errors_fail", "expected"), [(True, "entrypoint raised RuntimeError: on my way out"),
                                                            (False, None)])
async def test_an_entrypoint_that_raises_while_the_job_ends_fails_it_only_where_the_api_says(
        tmp_path, late_errors_fail, expected):
    d = definition(tmp_path)
    _, job_end = Pipe()
    shutdown = Shutdown(d.shutdown.drain)

    async def entrypoint(job):
        job.is_connected = True
        shutdown.request("host_draining")
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("on my way out")  # cancelled at the end, it raises instead

    job = FakeJob(entrypoint)
    job.late_errors_fail = late_errors_fail
    assert await asyncio.wait_for(run_job(job_end, start(d), job, shutdown), 10) == expected
