"""End to end: `agenthost init` on livekit-agents projects as their authors wrote them; the file it writes
validates, `agenthost run` serves it, and a caller gets the agent as under livekit-agents: dispatched by
name when the module names it, joining every new room when it does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from host.testing.harness import ROOT, Client, dispatch, new_room

pytest.importorskip("livekit.agents", reason="needs the extra: pip install 'agenthost[agents]'")

PROJECT = ROOT / "tests" / "agents" / "lkproject"


def init(module: str, folder: Path) -> Path:
    """`agenthost init` run from the project's folder, writing into its agents.d, as a user would."""
    done = subprocess.run([sys.executable, "-m", "host", "init", f"{module}.py"], cwd=folder, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("ok: 1 agent in 1 file\n"), done.stdout
    [written] = (folder / "agents.d").glob("*.yaml")
    checked = subprocess.run([sys.executable, "-m", "host", "validate", "--strict"], cwd=folder,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return written


def project(tmp_path: Path, module: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{module}.py").write_text((PROJECT / f"{module}.py").read_text())
    return folder


@pytest.mark.parametrize(("module", "agent", "greeting"), [
    ("server_agent", "proj-server", "proj-server prewarmed"),  # an AgentServer, its setup_fnc carried over
    ("options_at_import", "proj-options", "proj-options prewarmed"),  # cli.run_app at import, prewarm_fnc
])
async def test_an_explicitly_named_agent_is_dispatched_by_its_name(livekit_server, start_host, tmp_path, module,
                                                                   agent, greeting):
    folder = project(tmp_path, module)
    written = init(module, folder)
    assert written.name == f"{agent}.yaml" and "dispatch: explicit" in written.read_text()
    host = start_host(livekit_server, written)
    await host.wait_log(rf"registered agent {agent} ")
    client = Client(livekit_server, new_room())
    client.listen("greeting")
    await client.connect()
    await dispatch(livekit_server, agent, client.room_name)
    assert await client.wait_text("greeting") == [greeting]
    await client.disconnect()
    await host.wait_log(rf"job ended .*room={client.room_name}")
    assert "Traceback" not in host.log()


async def test_a_module_without_agent_name_joins_every_new_room(fresh_server, start_host, tmp_path):
    folder = project(tmp_path, "automatic")
    written = init("automatic", folder)
    assert "dispatch: automatic" in written.read_text()
    host = start_host(fresh_server, written)
    await host.wait_log(r"registered agent automatic ")
    client = Client(fresh_server, new_room())  # nobody dispatches: joining the room is enough
    client.listen("greeting")
    await client.connect()
    assert await client.wait_text("greeting") == ["automatic agent here"]
    await client.disconnect()
    await host.wait_log(rf"job ended .*room={client.room_name}")


async def test_a_published_style_vad_agent_under_its_main_guard_answers(livekit_server, start_host, tmp_path):
    folder = project(tmp_path, "published_style")
    written = init("published_style", folder)
    text = written.read_text()
    assert "entrypoint: ../published_style.py:entrypoint" in text and "setup: ../published_style.py:prewarm" in text
    host = start_host(livekit_server, written)
    await host.wait_log(r"registered agent proj-published ")
    client = Client(livekit_server, new_room())
    client.listen("lk.transcription")
    await client.connect()
    await dispatch(livekit_server, "proj-published", client.room_name)
    await client.wait_participant("agent-")
    for _ in range(10):  # its RoomIO may not listen yet when it has joined
        await client.room.local_participant.send_text("good morning", topic="lk.chat")
        try:
            answer = await client.wait_text("lk.transcription", 1, timeout=3.0)
        except AssertionError:
            continue
        assert answer == ["you said: good morning"]
        break
    else:
        raise AssertionError("no answer")
    await client.disconnect()
    await host.wait_log(rf"job ended .*room={client.room_name}")
