"""End to end: unchanged livekit-agents code (AgentSession, prewarm, AgentServer) served by agenthost with
`api: livekit-agents`, against the real server, with no STT/TTS/LLM provider and no network."""

from __future__ import annotations

import json
import re

import pytest
from livekit import api

from host.testing.harness import ROOT, Client, dispatch, new_room, server_api

pytest.importorskip("livekit.agents", reason="needs the extra: pip install 'agenthost[agents]'")

AGENTS = ROOT / "agents.d"


async def chat(livekit_server, agent: str, metadata: dict[str, str]) -> Client:
    """A client in a new room that has `agent` dispatched and is answered once on lk.transcription."""
    client = Client(livekit_server, new_room())
    client.listen("lk.transcription")
    await client.connect()
    await dispatch(livekit_server, agent, client.room_name, json.dumps(metadata))
    await client.wait_participant("agent-")
    return client


async def answer(client: Client, text: str) -> str:
    """Send `text` on lk.chat until the agent answers (its RoomIO may not listen yet when it has joined)."""
    tries = 10
    for _ in range(tries):
        await client.room.local_participant.send_text(text, topic="lk.chat")
        try:
            texts = await client.wait_text("lk.transcription", 1, timeout=3.0)
        except AssertionError:
            continue
        return texts[0]
    raise AssertionError(f"no answer after {tries} tries")


async def test_agent_session_answers_and_ends_by_the_yaml_policy(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "voice-function.yaml")
    await host.wait_log(r"registered agent voice-function")
    client = await chat(livekit_server, "voice-function", {"user": "ada"})
    said = await answer(client, "hello there")
    [job_id] = re.findall(r"\(job (AJ_\w+)\)", said)
    # prewarm's userdata, the job's metadata and get_job_context(), all seen inside the session
    assert said == f"echo: ada said: hello there (job {job_id})"
    await host.wait_log(rf"job running .*job_id={job_id}")
    await client.disconnect()
    await host.wait_log(rf"voice job over: participants_left .*job_id={job_id}")  # the callback got the reason
    await host.wait_log(rf"job ended .*job_id={job_id} .*reason=participants_left")
    assert "job failed" not in host.log() and "Traceback" not in host.log()


async def test_agent_server_object_with_its_prewarm_and_delete_room(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "voice.yaml")
    await host.wait_log(r"registered agent voice ")
    client = await chat(livekit_server, "voice", {"user": "bo"})
    said = await answer(client, "hi")
    assert said.startswith("echo: bo said: hi (job AJ_")  # the server's setup_fnc ran as prewarm
    room = client.room_name
    await client.disconnect()
    await host.wait_log(rf"voice job over: participants_left .*room={room}")
    await host.wait_log(rf"room deleted .*room={room}")
    await host.wait_log(rf"job ended .*room={room}")
    async with server_api(livekit_server) as lk:
        rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
    assert list(rooms.rooms) == []


async def test_invalid_metadata_is_refused_before_any_process(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "voice.yaml")
    await host.wait_log(r"registered agent voice ")
    room = new_room()
    await dispatch(livekit_server, "voice", room, json.dumps({"user": 7}))
    await host.wait_log(rf"refused job: invalid metadata: .*7 is not of type 'string' .*room={room}")
