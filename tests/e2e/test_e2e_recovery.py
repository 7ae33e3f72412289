"""End to end: calls survive the loss of their host. A host killed with SIGKILL and started again gives each
live call its agent again, once, and leaves alone the calls that ended and those whose agent says not to (the
bound on attempts is unit tested: tests/runtime/test_recovery.py); a journal it cannot use is said, and the
host serves on."""

from __future__ import annotations

import asyncio
import json
import re
import signal

import aiohttp
import psutil
import pytest
from livekit import api
from livekit.protocol import models

from host.testing.harness import ROOT, job_in_new_room
from host.testing.rooms import Client, dispatch, new_room

AGENTS = ROOT / "tests" / "agents"


def agents(folder, **extra: str):
    folder.mkdir(exist_ok=True)
    (folder / "keeper.yaml").write_text(f"name: keeper\nentrypoint: {AGENTS / 'keeper.py'}:entrypoint\n"
                                        "shutdown: {timeout: 2s}\n")
    (folder / "quiet.yaml").write_text(f"name: quiet\nentrypoint: {AGENTS / 'keeper.py'}:entrypoint\n"
                                       "recovery: {on_host_loss: 'off'}\n")
    return folder


async def agents_in(server, room: str) -> list[str]:
    client = server.api()
    try:
        listed = await client.room.list_participants(api.ListParticipantsRequest(room=room))
    finally:
        await client.aclose()
    return [p.identity for p in listed.participants if p.kind == models.ParticipantInfo.Kind.AGENT]


async def settles_to_one_agent(server, room: str, timeout: float = 30.0) -> None:
    """Until `room` has exactly one agent (the lost host's own job processes take a moment to leave)."""
    for _ in range(int(timeout / 0.2)):
        if len(await agents_in(server, room)) == 1:
            return
        await asyncio.sleep(0.2)
    found = await agents_in(server, room)
    assert len(found) == 1, (room, found)


async def wait_gone(pid: int, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"process {pid} of the dead host is still there")


def started(text: str) -> tuple[str, str, str]:
    m = re.fullmatch(r"started (\S+) recovery_of=(\S+) attribute=(\S+)", text)
    assert m, text
    return m.group(1), m.group(2), m.group(3)


async def test_a_host_killed_and_started_again_gives_each_live_call_its_agent_once(livekit_server, start_host,
                                                                                  tmp_path):
    folder = agents(tmp_path / "agents")
    host = start_host(livekit_server, folder)
    await host.wait_log(r"registered agent keeper")
    await host.wait_log(r"registered agent quiet")
    calls = [await job_in_new_room(livekit_server, "keeper", "status") for _ in range(3)]
    first = [started(c.texts["status"][0])[0] for c in calls]
    ended = await job_in_new_room(livekit_server, "keeper", "status")
    await ended.disconnect()
    await host.wait_log(rf"job ended .*room={ended.room_name}")
    left_alone = await job_in_new_room(livekit_server, "quiet", "status")

    old_pids = [int(p) for p in re.findall(r"job running in process (\d+) agent=keeper", host.log())]
    assert len(old_pids) == 4
    host.proc.send_signal(signal.SIGKILL)
    host.proc.wait(timeout=30)
    again = start_host(livekit_server, folder)
    await again.wait_log(r"4 call\(s\) of a host that is gone found in .*jobs.sqlite3: recovering")
    for call, old in zip(calls, first, strict=True):
        await call.wait_text("status", 2, timeout=30)
        new, recovery_of, attribute = started(call.texts["status"][1])
        assert new != old and recovery_of == old and attribute == old
        # the old one is gone: taken out once the recovery saw the new one in the room (a moment after it spoke)
        await settles_to_one_agent(livekit_server, call.room_name)
        assert await agents_in(livekit_server, call.room_name) == [f"agent-{new}"]
    await again.wait_log(r"call not recovered: recovery.on_host_loss is off .*agent=quiet")
    assert len(left_alone.texts["status"]) == 1
    assert not re.search(rf"recovering .*room={ended.room_name}", again.log())  # it had ended: never in the journal
    # counted once each recovery saw its new agent in the room
    await again.wait_log(r"recovering the call of a host that is gone: dispatch", count=3)
    base = await again.http_base()
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as r:
        text = await r.text()
    assert 'agenthost_jobs_recovered_total{agent="keeper",outcome="dispatched",reason="host_loss"} 3.0' in text
    assert 'agenthost_jobs_recovered_total{agent="quiet",outcome="skipped",reason="host_loss"} 1.0' in text
    assert 'agenthost_recovery_seconds_count{agent="keeper",reason="host_loss"} 3.0' in text
    assert "agenthost_journal_ok 1.0" in text
    # once the dead host's job processes have all ended (they see it gone and shut down), still one agent
    # per room: nothing else was dispatched, and the old agents did not come back
    for pid in old_pids:
        await wait_gone(pid)
    for call in calls:
        assert len(await agents_in(livekit_server, call.room_name)) == 1
        assert len(call.texts["status"]) == 2
    for c in [*calls, left_alone]:
        await c.disconnect()


async def test_a_call_served_by_two_agents_gets_each_back_once(livekit_server, start_host, tmp_path):
    folder = agents(tmp_path / "agents")
    (folder / "partner.yaml").write_text(f"name: partner\nentrypoint: {AGENTS / 'keeper.py'}:entrypoint\n")
    host = start_host(livekit_server, folder)
    await host.wait_log(r"registered agent partner")
    call = Client(livekit_server, new_room())
    call.listen("status")
    await call.connect()
    for agent in ("keeper", "partner"):
        await dispatch(livekit_server, agent, call.room_name)
    await call.wait_text("status", 2)
    first = {started(text)[0] for text in call.texts["status"]}
    old_pids = [int(p) for p in re.findall(r"job running in process (\d+)", host.log())]
    host.proc.send_signal(signal.SIGKILL)
    host.proc.wait(timeout=30)
    again = start_host(livekit_server, folder)
    await again.wait_log(r"2 call\(s\) of a host that is gone found")
    await call.wait_text("status", 4, timeout=30)
    recovered = [started(text) for text in call.texts["status"][2:]]
    assert {recovery_of for _, recovery_of, _ in recovered} == first  # each agent its own call back
    for pid in old_pids:
        await wait_gone(pid)
    # each recovery is over (its new agent seen in the room, the old one removed) once it says so
    await again.wait_log(r"recovering the call of a host that is gone: dispatch", count=2)
    assert sorted(await agents_in(livekit_server, call.room_name)) == sorted(f"agent-{new}" for new, _, _ in
                                                                              recovered)
    assert len(call.texts["status"]) == 4  # and nothing more came
    await call.disconnect()


async def test_a_journal_that_cannot_be_used_is_said_and_the_host_serves_on(livekit_server, start_host, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "jobs.sqlite3").write_bytes(b"this is not a database" * 100)
    host = start_host(livekit_server, agents(tmp_path / "agents"), extra_env={"AGENTHOST_STATE_DIR": str(state)})
    await host.wait_log(r"the journal of running jobs is unusable, calls will not be recovered if this host dies: "
                        r"cannot open .*jobs.sqlite3")
    await host.wait_log(r"registered agent keeper")
    base = await host.http_base()
    async with aiohttp.ClientSession() as session, session.get(base + "/readyz") as r:
        body = json.loads(await r.text())
        assert r.status == 200 and body["warnings"][0].startswith("the journal of running jobs is unusable")
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as r:
        assert "agenthost_journal_ok 0.0" in await r.text()
    call = await job_in_new_room(livekit_server, "keeper", "status")
    assert started(call.texts["status"][0])[1] == "None"
    await call.disconnect()


async def test_a_host_lost_on_one_node_has_its_calls_taken_over_by_a_host_on_the_other(cluster, start_host,
                                                                                     tmp_path):
    node1, node2 = cluster.nodes
    shared = {"AGENTHOST_REDIS_URL": f"redis://{cluster.redis.address}/0"}
    lost = start_host(node1, agents(tmp_path / "a"), extra_env=shared)
    await lost.wait_log(r"registered agent keeper")
    calls = [await job_in_new_room(node1, "keeper", "status") for _ in range(3)]
    first = [started(c.texts["status"][0])[0] for c in calls]
    ended = await job_in_new_room(node1, "keeper", "status")
    await ended.disconnect()
    await lost.wait_log(rf"job ended .*room={ended.room_name}")
    survivor = start_host(node2, agents(tmp_path / "b"), extra_env=shared)
    await survivor.wait_log(r"registered agent keeper")
    lost.proc.send_signal(signal.SIGKILL)
    lost.proc.wait(timeout=30)
    claimed = await survivor.wait_log(r"the call of a host that is gone, claimed here: recovering .*room=(\S+)",
                                      count=3, timeout=30)
    assert {m.group(1) for m in claimed} == {c.room_name for c in calls}
    for call, old in zip(calls, first, strict=True):
        await call.wait_text("status", 2, timeout=30)
        new, recovery_of, _attribute = started(call.texts["status"][1])
        assert new != old and recovery_of == old
    for call in calls:  # once the lost host's own job processes have gone: one agent each
        await settles_to_one_agent(node1, call.room_name)
    assert f"room={ended.room_name}" not in "".join(m.group(0) for m in claimed)  # ended: never taken over
    for call in calls:
        await call.disconnect()


async def test_a_call_taken_over_by_one_host_and_offered_to_another_is_known_there_as_a_recovery(cluster, start_host,
                                                                                                tmp_path):
    # The host that claims the lost call is full (max_jobs 1, taken by a call of its own), so the server offers
    # the recovery dispatch to a third host, started once the claim is made: the journal tells it.
    node1, node2 = cluster.nodes
    shared = {"AGENTHOST_REDIS_URL": f"redis://{cluster.redis.address}/0"}
    full = tmp_path / "full"
    full.mkdir()
    (full / "keeper.yaml").write_text(f"name: keeper\nentrypoint: {AGENTS / 'keeper.py'}:entrypoint\n"
                                      "limits: {max_jobs: 1}\n")
    claimer = start_host(node2, full, extra_env=shared)
    await claimer.wait_log(r"registered agent keeper")
    own = await job_in_new_room(node2, "keeper", "status")  # the only host yet: its own call fills it
    lost = start_host(node1, agents(tmp_path / "a"), extra_env=shared)
    await lost.wait_log(r"registered agent keeper")
    call = await job_in_new_room(node1, "keeper", "status")
    old = started(call.texts["status"][0])[0]
    lost.proc.send_signal(signal.SIGKILL)
    lost.proc.wait(timeout=30)
    await claimer.wait_log(rf"the call of a host that is gone, claimed here: recovering .*room={call.room_name}",
                           timeout=30)
    third = start_host(node1, agents(tmp_path / "c"), extra_env=shared)
    await third.wait_log(r"registered agent keeper")
    await call.wait_text("status", 2, timeout=60)
    new, recovery_of, attribute = started(call.texts["status"][1])
    assert (recovery_of, attribute) == (old, old)
    await third.wait_log(rf"job running in process \d+ agent=keeper job_id={new}")  # it was the third host's
    assert len(own.texts["status"]) == 1
    for c in (call, own):
        await c.disconnect()


async def test_a_paused_host_that_comes_back_never_leaves_its_call_without_an_agent(cluster, start_host,
                                                                                      tmp_path):
    # A paused host's job processes serve on, and its worker stays registered: the server may offer the
    # recovery dispatch to it, which never answers. The survivor takes the old agent out only once its own is
    # in the room; the host that comes back leaves the call only to another agent.
    node1, node2 = cluster.nodes
    shared = {"AGENTHOST_REDIS_URL": f"redis://{cluster.redis.address}/0"}
    paused = start_host(node1, agents(tmp_path / "a"), extra_env=shared)
    await paused.wait_log(r"registered agent keeper")
    call = await job_in_new_room(node1, "keeper", "status")
    survivor = start_host(node2, agents(tmp_path / "b"), extra_env=shared)
    await survivor.wait_log(r"registered agent keeper")
    paused.proc.send_signal(signal.SIGSTOP)  # its job process runs on; its lease lapses
    try:
        await survivor.wait_log(rf"the call of a host that is gone, claimed here: recovering .*room={call.room_name}",
                                timeout=30)
        await survivor.wait_log(r"(recovering the call of a host that is gone: dispatch|left to serve the call)",
                                timeout=60)
        assert len(await agents_in(node1, call.room_name)) >= 1  # never none
    finally:
        paused.proc.send_signal(signal.SIGCONT)
    await paused.wait_log(r"(its call was taken over by host|it serves on|job ended)", timeout=30)
    await settles_to_one_agent(node1, call.room_name)  # whichever it is
    await call.disconnect()


def crashed(text: str) -> tuple[str, str]:
    m = re.fullmatch(r"started (\S+) recovery_of=(\S+)", text)
    assert m, text
    return m.group(1), m.group(2)


async def test_a_job_killed_at_its_memory_limit_gets_its_call_back_once(livekit_server, start_host, tmp_path):
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "crasher.yaml").write_text(f"name: crasher\nentrypoint: {AGENTS / 'relapser.py'}:entrypoint\n"
                                         "limits: {memory_limit_mb: 150}\n"
                                         "recovery: {on_crash: redispatch, crash_backoff: 200ms}\n")
    host = start_host(livekit_server, folder)
    await host.wait_log(r"registered agent crasher")
    call = await job_in_new_room(livekit_server, "crasher", "status")
    call.listen("tick")
    first, recovery_of = crashed(call.texts["status"][0])
    assert recovery_of == "None"
    await host.wait_log(r"job failed: .*memory_limit_mb 150 MB.* agent=crasher")
    await host.wait_log(r"job process died: its call is dispatched again in 0.2s \(recovery.on_crash\)")
    await call.wait_text("status", 2, timeout=30)
    new, recovery_of = crashed(call.texts["status"][1])
    assert new != first and recovery_of == first
    await call.wait_text("tick", 3)  # the job that took the call over serves it, under the same limit
    await host.wait_log(r"recovering the call of a job whose process died: dispatch")
    await settles_to_one_agent(livekit_server, call.room_name)
    assert await agents_in(livekit_server, call.room_name) == [f"agent-{new}"]
    base = await host.http_base()
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as r:
        text = await r.text()
    assert 'agenthost_jobs_recovered_total{agent="crasher",outcome="dispatched",reason="crash"} 1.0' in text
    assert 'agenthost_recovery_seconds_count{agent="crasher",reason="crash"} 1.0' in text
    assert len(call.texts["status"]) == 2
    await call.disconnect()


async def test_a_crash_loop_stops_at_max_attempts_and_a_crash_without_on_crash_is_left(livekit_server, start_host,
                                                                                     tmp_path):
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "looper.yaml").write_text(f"name: looper\nentrypoint: {AGENTS / 'relapser.py'}:entrypoint\n"
                                        "recovery: {on_crash: redispatch, crash_backoff: 100ms, max_attempts: 2}\n")
    (folder / "plain.yaml").write_text(f"name: plain\nentrypoint: {AGENTS / 'relapser.py'}:entrypoint\n")
    host = start_host(livekit_server, folder)
    await host.wait_log(r"registered agent looper")
    await host.wait_log(r"registered agent plain")
    loop, plain = Client(livekit_server, new_room()), Client(livekit_server, new_room())
    for c in (loop, plain):
        c.listen("status")
        await c.connect()
    await dispatch(livekit_server, "plain", plain.room_name, "always")
    await dispatch(livekit_server, "looper", loop.room_name, "always")
    await host.wait_log(r"call not recovered: given its agent again 2 time\(s\) already "
                        r"\(recovery.max_attempts\) .*agent=looper")
    await loop.wait_text("status", 3)
    jobs = [crashed(t) for t in loop.texts["status"]]
    assert [j[1] for j in jobs] == ["None", jobs[0][0], jobs[0][0]]  # each names the call's first job
    # the line saying a crashed call is dispatched again follows its job's failure at once, in the same step
    await host.wait_log(r"job failed: job process exited with code -9 .*agent=plain")
    assert not re.search(r"dispatched again in .*agent=plain", host.log())
    assert len(plain.texts["status"]) == 1
    base = await host.http_base()
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as r:
        text = await r.text()
    assert 'agenthost_jobs_recovered_total{agent="looper",outcome="dispatched",reason="crash"} 2.0' in text
    assert 'agenthost_jobs_recovered_total{agent="looper",outcome="skipped",reason="crash"} 1.0' in text
    assert 'agenthost_jobs_recovered_total{agent="plain"' not in text
    for c in (loop, plain):
        await c.disconnect()


@pytest.mark.parametrize("where", ["redis", "state_dir"])
async def test_a_journal_that_cannot_be_written_is_said_and_jobs_still_run(livekit_server, start_host, tmp_path,
                                                                           where):
    """Redis down, or a state directory that cannot be made (on a read-only file system): logged once,
    /readyz says so (and stays 200), agenthost_journal_ok is 0, and jobs run."""
    env = ({"AGENTHOST_REDIS_URL": "redis://127.0.0.1:9/0"} if where == "redis"
           else {"AGENTHOST_STATE_DIR": "/proc/agenthost-state"})
    host = start_host(livekit_server, agents(tmp_path / "agents"), extra_env=env)
    await host.wait_log(r"(shared journal|journal of running jobs) .*(is )?unusable, calls will not be recovered")
    await host.wait_log(r"registered agent keeper")
    base = await host.http_base()
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/readyz") as r:
            body = json.loads(await r.text())
            assert r.status == 200 and "unusable" in body["warnings"][0], body
        async with session.get(base + "/metrics") as r:
            assert "agenthost_journal_ok 0.0" in await r.text()
    call = await job_in_new_room(livekit_server, "keeper", "status")
    await call.disconnect()
