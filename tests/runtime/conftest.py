from __future__ import annotations

import asyncio

import pytest

from host.config.loader import load
from host.runtime.recovery import InRoom


@pytest.fixture
def make_agent(tmp_path):
    """The definition of one agent file written with `body` (an entrypoint module beside it); each agent
    name has a folder of its own, so a second call for the same name is an edit of the same file."""

    def make(body: str = "", name: str = "a", module: str = "async def entrypoint(ctx):\n    pass\n"):
        folder = tmp_path / f"agent-{name}"
        folder.mkdir(exist_ok=True)
        (folder / "mod.py").write_text(module)
        (folder / f"{name}.yaml").write_text(f"name: {name}\nentrypoint: mod.py:entrypoint\n{body}")
        return load([str(folder)], check_imports=False).require_ok().agents[0]

    return make


class FakeServer:
    """livekit-server as a recovery sees it: one room, with a caller, and each agent a dispatch brought
    (`on_dispatch`: by default the new agent joins a moment after the dispatch)."""

    def __init__(self) -> None:
        self.dispatched: list[str] = []
        self.participants = [InRoom("user", False, True)]
        self.on_dispatch = self.joins

    async def joins(self) -> None:
        await asyncio.sleep(0.05)
        self.participants.append(InRoom(f"agent-AJ_new{len(self.dispatched)}", True, False, "a"))

    def client(self, *_args):
        server = self

        class Dispatches:
            async def create_dispatch(self, request):
                server.dispatched.append(request.agent_name)
                await server.on_dispatch()
                return type("Dispatch", (), {"id": f"AD_{len(server.dispatched)}"})()

        class Client:
            agent_dispatch = Dispatches()

            async def aclose(self):
                pass

        return Client()


@pytest.fixture
def fake_server(monkeypatch):
    """A FakeServer the host's recoveries talk to (its API client, and its room's participants)."""
    from host.runtime import recovery
    from host.runtime.recovery import Recoverer

    server = FakeServer()
    monkeypatch.setattr(recovery.api, "LiveKitAPI", server.client)

    async def room(self, client, name):
        await asyncio.sleep(0.01)  # the server's answer takes a moment: another recovery could interleave
        return list(server.participants)

    monkeypatch.setattr(Recoverer, "_room", room)
    return server
