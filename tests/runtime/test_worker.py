"""The worker protocol against a small fake agent service, to inject faults a real server won't."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web
from livekit.protocol import agent as agent_pb

from host.aio import backoff_delay
from host.config.credentials import Credentials
from host.config.loader import load
from host.runtime.host import Host, HostOptions
from host.runtime.worker import BACKOFF_MAX, BACKOFF_START


class FakeAgentService:
    """Refuses the first `refuse` connections, then registers workers and records what they send."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.connections = 0
        self.registrations: list[agent_pb.RegisterWorkerRequest] = []
        self.received: asyncio.Queue[agent_pb.WorkerMessage] = asyncio.Queue()
        self.sockets: list[web.WebSocketResponse] = []
        self.auth_headers: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        self.auth_headers.append(request.headers.get("Authorization", ""))
        if self.connections <= self.refuse:
            return web.Response(status=401, text="no")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for raw in ws:
            msg = agent_pb.WorkerMessage()
            msg.ParseFromString(raw.data)
            if msg.WhichOneof("message") == "register":
                self.registrations.append(msg.register)
                await ws.send_bytes(agent_pb.ServerMessage(register=agent_pb.RegisterWorkerResponse(
                    worker_id=f"AW_fake{len(self.registrations)}")).SerializeToString())
            else:
                await self.received.put(msg)
        return ws

    async def offer(self, job: agent_pb.Job) -> agent_pb.AvailabilityResponse:
        await self.sockets[-1].send_bytes(agent_pb.ServerMessage(
            availability=agent_pb.AvailabilityRequest(job=job)).SerializeToString())
        while True:
            msg = await asyncio.wait_for(self.received.get(), 10)
            if msg.WhichOneof("message") == "availability":
                return msg.availability


async def serve(fake: FakeAgentService) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/agent", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"ws://127.0.0.1:{port}"


def write_agents(tmp_path):
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx): pass\n")
    (tmp_path / "a.yaml").write_text(
        "name: support\nentrypoint: mod.py:entrypoint\nprocesses: {idle: 0}\nlimits: {max_jobs: 1}\n"
        "participant: {identity: 'bot-{room}', name: Support, attributes: {team: blue}}\n"
        "metadata:\n  required: true\n  schema: {type: object, required: [user_id]}\n"
        "---\nname: auto\nentrypoint: mod.py:entrypoint\ndispatch: automatic\njob_type: publisher\n"
        "processes: {idle: 0}\n")
    return load([str(tmp_path)], check_imports=False).require_ok()


async def wait_until(predicate, timeout=10.0):
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


def test_backoff_is_capped_and_jittered():
    assert all(0.25 <= backoff_delay(0, BACKOFF_START, BACKOFF_MAX) <= 0.5 for _ in range(50))
    assert all(BACKOFF_MAX / 2 <= backoff_delay(30, BACKOFF_START, BACKOFF_MAX) <= BACKOFF_MAX for _ in range(50))


@contextlib.asynccontextmanager
async def host_against(fake: FakeAgentService, tmp_path) -> AsyncIterator[Host]:
    """A host serving write_agents' agents against `fake`, stopped (drained) on the way out."""
    runner, url = await serve(fake)
    host = Host(write_agents(tmp_path), Credentials(url, "key", "secret-secret-secret-secret-secret"),
                HostOptions(drain_timeout=1.0))
    task = asyncio.create_task(host.run())
    try:
        yield host
    finally:
        host.request_stop()
        await asyncio.wait_for(task, 20)
        await runner.cleanup()


async def test_registration_retries_then_answers_offers(tmp_path):
    fake = FakeAgentService(refuse=2)
    async with host_against(fake, tmp_path):
        await wait_until(lambda: len(fake.registrations) == 2)
        assert fake.connections >= 4  # two refusals for the first worker, then retries with backoff
        assert all(h.startswith("Bearer ") for h in fake.auth_headers)
        regs = {r.agent_name: r for r in fake.registrations}
        assert set(regs) == {"support", ""}  # automatic dispatch registers the empty agent name
        assert regs[""].type == agent_pb.JobType.JT_PUBLISHER
        assert regs["support"].type == agent_pb.JobType.JT_ROOM

        support_ws = next(ws for ws, r in zip(fake.sockets, fake.registrations, strict=False)
                          if r.agent_name == "support")
        fake.sockets.remove(support_ws)
        fake.sockets.append(support_ws)

        def job(i: int, metadata: str) -> agent_pb.Job:
            return agent_pb.Job(id=f"AJ_{i}", dispatch_id=f"AD_{i}", agent_name="support", metadata=metadata,
                                room={"name": f"room-{i}"})

        bad = await fake.offer(job(1, json.dumps({"name": "x"})))
        assert (bad.available, bad.terminate) == (False, True)
        empty = await fake.offer(job(2, ""))
        assert (empty.available, empty.terminate) == (False, True)
        good = await fake.offer(job(3, json.dumps({"user_id": "u"})))
        assert good.available and not good.terminate
        assert (good.participant_identity, good.participant_name) == ("bot-room-3", "Support")
        assert dict(good.participant_attributes) == {"team": "blue"}
        full = await fake.offer(job(4, json.dumps({"user_id": "u"})))  # max_jobs: 1, job 3 holds the slot
        assert (full.available, full.terminate) == (False, False)


async def test_unreachable_server_is_retried_without_a_traceback(tmp_path, caplog):
    host = Host(write_agents(tmp_path), Credentials("ws://127.0.0.1:9", "k", "s" * 32))
    task = asyncio.create_task(host.run())
    try:
        await wait_until(lambda: "retrying in" in caplog.text)
        assert "Traceback" not in caplog.text
        assert not any(a.worker.registered for a in host.agents)
    finally:
        host.request_stop()
        await asyncio.wait_for(task, 20)



async def test_a_url_with_credentials_is_retried_and_never_shown(tmp_path, caplog):
    host = Host(write_agents(tmp_path), Credentials("ws://admin:hunter2secret@127.0.0.1:9", "k", "s" * 32))
    task = asyncio.create_task(host.run())
    try:
        await wait_until(lambda: caplog.text.count("retrying in") >= 2)  # the loop lives on
        status = json.dumps(host.view.status())
        assert "ws://***@127.0.0.1:9" in status and "ws://***@127.0.0.1:9" in caplog.text
        assert "hunter2secret" not in caplog.text and "hunter2secret" not in status
        assert "hunter2secret" not in " ".join(host.view.not_ready())
    finally:
        host.request_stop()
        await asyncio.wait_for(task, 20)


async def updates(fake: FakeAgentService, count: int) -> list[agent_pb.UpdateWorkerStatus]:
    """The next `count` status updates the workers sent (other messages skipped)."""
    found = []
    while len(found) < count:
        msg = await asyncio.wait_for(fake.received.get(), 10)
        if msg.WhichOneof("message") == "update_worker":
            found.append(msg.update_worker)
    return found


async def test_a_worker_that_registers_again_is_told_its_status_again(tmp_path):
    """A new connection starts with the server's defaults: the host's one writer of the status says it again."""
    fake = FakeAgentService()
    async with host_against(fake, tmp_path):
        await wait_until(lambda: len(fake.registrations) == 2)
        first = await updates(fake, 2)  # one for each agent's worker, as it registered
        assert all(u.status == agent_pb.WorkerStatus.WS_AVAILABLE and u.job_count == 0 for u in first)
        support = next(ws for ws, r in zip(fake.sockets, fake.registrations, strict=False)
                       if r.agent_name == "support")
        await support.close()  # the connection is lost; the worker registers again
        await wait_until(lambda: len(fake.registrations) == 3)
        [again] = await updates(fake, 1)
        assert again.status == agent_pb.WorkerStatus.WS_AVAILABLE and again.job_count == 0
