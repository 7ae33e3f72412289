"""End to end: a real livekit-server, `agenthost run`, and real rtc clients, one test per behaviour."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from livekit import api

from host.testing.harness import ROOT, Client, agent_file, dispatch, job_in_new_room, new_room, server_api
from host.testing.scrape import get

AGENTS = ROOT / "agents.d"
TEST_AGENTS = ROOT / "tests" / "agents"


async def ticking_job(server, agent: str, ticks: int = 2) -> tuple[str, Client]:
    """Dispatch a holder-style `agent` to a new room with a client in it; wait for its first ticks."""
    client = await job_in_new_room(server, agent, "tick", ticks)
    return client.room_name, client


async def test_dispatch_runs_entrypoint_and_client_receives_text(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "hello-world.yaml")
    await host.wait_log(r"registered agent hello-world")
    client = await job_in_new_room(livekit_server, "hello-world", "hello-world")
    r = client.room_name
    assert client.texts["hello-world"] == ["hello world"]
    await host.wait_log(r"participant in the room: user .*room=" + r)
    await client.disconnect()
    await host.wait_log(r"job ended .*room=" + r + r" .*reason=participants_left")


async def test_metadata_arrives_parsed(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "greeter.yaml")
    await host.wait_log(r"registered agent greeter")
    r = new_room()
    client = Client(livekit_server, r)
    client.listen("greeting")
    await client.connect()
    meta = {"user_id": "u-1", "user_name": "Ada", "user_phone": "+44 1234"}
    await dispatch(livekit_server, "greeter", r, json.dumps(meta))
    # "Hello" comes from setup (prewarm), the name from the parsed metadata
    assert await client.wait_text("greeting") == ["Hello, Ada"]
    await host.wait_log(r"greeting Ada \(u-1, \+44 1234\) .*team=examples")
    await client.disconnect()


async def test_invalid_metadata_never_starts_a_process(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "greeter.yaml")
    await host.wait_log(r"registered agent greeter")
    r = new_room()
    dispatch_id = await dispatch(livekit_server, "greeter", r, json.dumps({"user_id": "u-1"}))
    found = await host.wait_log(r"refused job: invalid metadata: (.*)")
    line = found[0].group(0)
    assert "'user_name' is a required property" in line and "'user_phone' is a required property" in line
    assert f"dispatch_id={dispatch_id}" in line and f"room={r}" in line
    await asyncio.sleep(1.0)
    assert "job running" not in host.log()
    assert "job started" not in host.log()


async def test_attribute_change_is_seen_by_agent(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "language.yaml")
    await host.wait_log(r"registered agent language")
    r = new_room()
    client = Client(livekit_server, r, attributes={"user.language": "en"})
    client.listen("language")
    await client.connect()
    await dispatch(livekit_server, "language", r)
    assert await client.wait_text("language") == ["language: en"]
    await client.room.local_participant.set_attributes({"user.language": "fr"})
    assert (await client.wait_text("language", 2))[1] == "language: fr"
    # ctx.log_context_fields reach the job's log lines
    await host.wait_log(r"changed language to fr .*feature=language.*language=fr")
    await client.disconnect()


async def test_job_ends_when_last_participant_leaves_and_shutdown_hook_ran(livekit_server, start_host,
                                                                           tmp_path):
    state = tmp_path / "saved"  # the agent's folder (the host's state directory is read-only to its jobs)
    host = start_host(livekit_server, AGENTS / "save-state.yaml", extra_env={"SAVED_STATE_DIR": str(state)})
    await host.wait_log(r"registered agent save-state")
    r = new_room()
    a = await Client(livekit_server, r, identity="alice").connect()
    b = await Client(livekit_server, r, identity="bob").connect()
    await dispatch(livekit_server, "save-state", r)
    await host.wait_log(r"job running .*room=" + r)
    await a.wait_participant("agent-")  # the agent is in the room
    await a.disconnect()
    await b.wait_participant_gone("alice")  # alice has left, as everyone in the room sees it
    base = await host.http_base()
    for _ in range(150):  # the job saw her leave: it counts one other participant (its vitals, every second)
        jobs = json.loads((await get(base + "/status"))[1])["jobs"]
        if [j["participants"] for j in jobs] == [1]:
            break
        await asyncio.sleep(0.1)
    assert [j["participants"] for j in jobs] == [1], jobs
    assert "job shutting down" not in host.log()  # bob is still there
    await b.disconnect()
    await host.wait_log(r"job ended .*room=" + r + r" .*reason=participants_left")
    saved = json.loads((state / f"{r}.json").read_text())
    assert saved["reason"] == "participants_left"
    assert saved["participants"] == ["alice", "bob"]


async def test_delete_room_removes_the_room(livekit_server, start_host):
    host = start_host(livekit_server, AGENTS / "delete-room.yaml")
    await host.wait_log(r"registered agent delete-room")
    client = await job_in_new_room(livekit_server, "delete-room", "hello")
    r = client.room_name
    disconnected = asyncio.Event()
    client.room.on("disconnected", lambda *_: disconnected.set())
    await client.room.local_participant.send_text("bye", topic="done")
    await host.wait_log(r"room deleted .*room=" + r)
    await asyncio.wait_for(disconnected.wait(), 10)
    async with server_api(livekit_server) as lk:
        rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[r]))
    assert list(rooms.rooms) == []
    await host.wait_log(r"job ended .*room=" + r)


async def test_hanging_shutdown_callback_is_killed_at_timeout(livekit_server, start_host, tmp_path):
    agent = agent_file(tmp_path / "agents", "hang", f"entrypoint: {TEST_AGENTS}/hang_shutdown.py:entrypoint\n"
                        "shutdown:\n  timeout: 1s\n")
    host = start_host(livekit_server, agent)
    await host.wait_log(r"registered agent hang")
    client = await job_in_new_room(livekit_server, "hang", "status")
    await client.disconnect()
    await host.wait_log(r"job shutting down .*reason=participants_left")
    await host.wait_log(r"job failed: shutdown did not finish within 1s; process killed .*agent=hang", timeout=10)


async def test_crashing_job_leaves_concurrent_job_untouched(livekit_server, start_host, tmp_path):
    folder = tmp_path / "agents"
    agent_file(folder, "holder", f"entrypoint: {TEST_AGENTS}/holder.py:entrypoint\n")
    agent_file(folder, "crasher", f"entrypoint: {TEST_AGENTS}/crasher.py:entrypoint\n")
    host = start_host(livekit_server, folder)
    await host.wait_log(r"registered agent (holder|crasher)", count=2)
    _, steady = await ticking_job(livekit_server, "holder", 3)
    victim = await job_in_new_room(livekit_server, "crasher", "status")
    await host.wait_log(r"job failed: job process exited with code -6 .*agent=crasher")
    before = len(steady.texts["tick"])
    await steady.wait_text("tick", before + 5)
    ticks = [int(t.split()[1]) for t in steady.texts["tick"]]
    assert ticks == list(range(1, len(ticks) + 1))  # one job, never restarted, no gap
    assert "agent=holder" not in "".join(line for line in host.log().splitlines() if "job failed" in line)
    await steady.disconnect()
    await victim.disconnect()


async def test_max_jobs_holds_under_a_burst(livekit_server, start_host, tmp_path):
    folder = tmp_path / "agents"
    agent_file(folder, "limited", f"entrypoint: {TEST_AGENTS}/holder.py:entrypoint\n"
                "limits:\n  max_jobs: 2\nprocesses:\n  idle: 2\n")
    host = start_host(livekit_server, folder)
    await host.wait_log(r"registered agent limited")
    rooms = [new_room() for _ in range(5)]
    clients = [await Client(livekit_server, r).connect() for r in rooms]
    await asyncio.gather(*(dispatch(livekit_server, "limited", r) for r in rooms))
    await host.wait_log(r"job running", count=2)
    # at max_jobs the host tells the server it is full (and declines any offer that still comes)
    async with aiohttp.ClientSession() as session, session.get(await host.http_base() + "/status") as r:
        [agent] = (await r.json())["agents"]
    assert agent["full"] is True and agent["running_jobs"] == 2
    await asyncio.sleep(2.0)
    assert len(host.log().split("job running")) - 1 == 2
    for c in clients:
        await c.disconnect()
    await host.wait_log(r"job ended", count=2)


async def test_server_restart_reregisters_and_serves_next_dispatch(fresh_server, start_host):
    host = start_host(fresh_server, AGENTS / "hello-world.yaml")
    await host.wait_log(r"registered agent hello-world")
    fresh_server.stop()
    await host.wait_log(r"agent hello-world: not connected to .* retrying in")
    fresh_server.start()
    await host.wait_log(r"registered agent hello-world", count=2, timeout=30)
    client = await job_in_new_room(fresh_server, "hello-world", "hello-world")
    assert client.texts["hello-world"] == ["hello world"]
    await client.disconnect()


async def test_dispatch_command_and_json_logs(livekit_server, start_host):
    import subprocess
    import sys

    host = start_host(livekit_server, AGENTS / "greeter.yaml", args=("--log-format", "json"))
    await host.wait_log(r'"message": "registered agent greeter')
    r = new_room()
    client = Client(livekit_server, r)
    client.listen("greeting")
    await client.connect()
    env = {**__import__("os").environ, **livekit_server.env()}
    cmd = [sys.executable, "-m", "host", "dispatch", "greeter", "--room", r, "--metadata"]
    bad = subprocess.run([*cmd, '{"user_id": "u"}'], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert bad.returncode == 1 and "'user_name' is a required property" in bad.stderr
    ok = subprocess.run([*cmd, json.dumps({"user_id": "u", "user_name": "Bo", "user_phone": "123"})],
                        capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("AD_"), ok.stderr
    assert await client.wait_text("greeting") == ["Hello, Bo"]
    await host.wait_log(r'"message": "greeting Bo')
    lines = [json.loads(line) for line in host.log().splitlines() if line.startswith("{")]
    greeting = next(x for x in lines if x["message"].startswith("greeting Bo"))
    assert greeting["room"] == r and greeting["agent"] == "greeter" and greeting["team"] == "examples"
    assert greeting["job_id"].startswith("AJ_") and greeting["worker_id"].startswith("AW_") and greeting["pid"]
    await client.disconnect()


async def test_sigterm_drains_then_second_signal_stops_at_once(livekit_server, start_host, tmp_path):
    import signal

    folder = tmp_path / "agents"
    agent_file(folder, "drainer", f"entrypoint: {TEST_AGENTS}/holder.py:entrypoint\nshutdown:\n  when: manual\n")
    host = start_host(livekit_server, folder, args=("--drain-timeout", "3"))
    await host.wait_log(r"registered agent drainer")
    r1, c1 = await ticking_job(livekit_server, "drainer")
    host.signal(signal.SIGTERM)
    await host.wait_log(r"SIGTERM: draining \(up to 3s\)")
    before = len(c1.texts["tick"])
    await c1.wait_text("tick", before + 5)  # the running job goes on while the host drains
    late = new_room()
    await dispatch(livekit_server, "drainer", late)  # a draining host reports itself full: never offered
    await host.wait_log(r"job ended .*room=" + r1 + r" .*reason=host_draining", timeout=10)
    assert host.proc is not None
    assert await asyncio.to_thread(host.proc.wait, 10) == 0
    assert f"room={late}" not in host.log()
    await c1.disconnect()

    host2 = start_host(livekit_server, folder, args=("--drain-timeout", "60"))
    await host2.wait_log(r"registered agent drainer")
    _, c2 = await ticking_job(livekit_server, "drainer")
    host2.signal(signal.SIGTERM)
    await host2.wait_log(r"draining")
    host2.signal(signal.SIGTERM)
    await host2.wait_log(r"SIGTERM again: stopping now")
    assert host2.proc is not None
    await asyncio.to_thread(host2.proc.wait, 10)  # well before the 60s drain timeout
    await host2.wait_log(r"job failed: host stopped at once \(second signal\); process killed")
    await c2.disconnect()


async def test_shutdown_drain_lets_pending_work_finish_and_no_drain_cancels_it(livekit_server, start_host, tmp_path):
    agent_file(tmp_path, "drainer", f"entrypoint: {TEST_AGENTS / 'drainer.py'}:entrypoint\n"
                                     "shutdown: {drain: false, timeout: 4s}\n")
    host = start_host(livekit_server, tmp_path)
    await host.wait_log(r"registered agent drainer")
    drained, cut = Client(livekit_server, new_room()), Client(livekit_server, new_room())
    for client in (drained, cut):
        client.listen("drain")
        await client.connect()
    await dispatch(livekit_server, "drainer", drained.room_name, "drain")
    await dispatch(livekit_server, "drainer", cut.room_name, "")
    assert await drained.wait_text("drain") == ["finished"]
    await host.wait_log(r"job shutting down .*room=" + drained.room_name + r" .*drain=True")
    await host.wait_log(r"job ended .*room=" + cut.room_name + r" .*reason=done")
    assert "drain=False" in next(line for line in host.log().splitlines()
                                 if "job shutting down" in line and cut.room_name in line)
    await asyncio.sleep(0.5)  # after the job ended: a text it still sent would have arrived by now
    assert cut.texts.get("drain") is None
    for client in (drained, cut):
        await client.disconnect()
