"""End to end: versions of one agent, against a real server: the split by weight, sticky rooms, promote and
roll back by reload with a running job untouched, and a failing canary taken out while its callers still
get an agent."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

from host.testing.harness import ROOT, Client, dispatch, new_room

AGENT = ROOT / "tests" / "agents" / "versioned.py"


def write_version(folder: Path, version: str, weight: int, mode: str = "greet", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"greet-{version}.yaml"
    path.write_text(f"name: greet\nversion: {version}\nweight: {weight}\nentrypoint: {AGENT}:entrypoint\n"
                    f"env: {{VERSION: {version}, MODE: {mode}}}\nprocesses: {{idle: 1}}\n{extra}")
    return path


def write_weights(folder: Path, v1: int, v2: int) -> None:
    """Both versions in one file, replaced at once: a reload never sees one without the other."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = [f"name: greet\nversion: {v}\nweight: {w}\nentrypoint: {AGENT}:entrypoint\nenv: {{VERSION: {v}}}\n"
            for v, w in (("v1", v1), ("v2", v2))]
    partial = folder / ".greet.yaml.tmp"
    partial.write_text("---\n".join(docs))
    partial.replace(folder / "greet.yaml")


async def greeted(server, room: str | None = None) -> tuple[str, Client]:
    client = Client(server, room or new_room())
    client.listen("version")
    await client.connect()
    await dispatch(server, "greet", client.room_name)
    [said] = await client.wait_text("version", timeout=40)
    return said, client


async def test_jobs_split_by_weight_and_a_room_keeps_its_version(livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    write_version(agents, "v1", 3, mode="quick")
    write_version(agents, "v2", 1, mode="quick")
    host = start_host(livekit_server, agents)
    await host.wait_log(r"registered agent greet ")
    rooms = [new_room() for _ in range(100)]
    for room in rooms:
        await dispatch(livekit_server, "greet", room)
    matches = await host.wait_log(r"job ended .*room=(\S+) .*version=(v\d)", timeout=180, count=100)
    got = Counter(m.group(2) for m in matches)
    assert sum(got.values()) == 100 and 11 <= got["v2"] <= 45, got  # 25 expected; 4 standard deviations
    by_room = {m.group(1): m.group(2) for m in matches}
    again = rooms[:10]  # the same rooms again: the same version each
    for room in again:
        await dispatch(livekit_server, "greet", room)
    later = await host.wait_log(r"job ended .*room=(\S+) .*version=(v\d)", timeout=120, count=110)
    for m in later[100:]:
        assert by_room[m.group(1)] == m.group(2)


async def test_promote_and_roll_back_by_reload_with_a_running_job_untouched(livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    write_weights(agents, 1, 0)
    host = start_host(livekit_server, agents, args=("--reload",))
    await host.wait_log(r"registered agent greet ")
    said, running = await greeted(livekit_server)
    assert said == "v1"
    write_weights(agents, 0, 1)  # promote v2
    await host.wait_log(r"reload \(.*\): changed .*greet@v\d \(weight\)", timeout=30)
    for _ in range(3):
        said, client = await greeted(livekit_server)
        assert said == "v2"
        await client.disconnect()
    write_weights(agents, 1, 0)  # roll back
    await host.wait_log(r"reload \(.*\): changed .*greet@v\d \(weight\)", count=2, timeout=30)
    said, client = await greeted(livekit_server)
    assert said == "v1"
    await client.disconnect()
    assert running.room.isconnected() and f"job ended .*room={running.room_name}" not in host.log()
    await running.disconnect()
    await host.wait_log(rf"job ended .*room={running.room_name} .*version=v1")


async def test_a_failing_canary_is_taken_out_and_its_callers_still_get_an_agent(livekit_server, start_host,
                                                                             tmp_path):
    agents = tmp_path / "agents"
    write_version(agents, "stable", 1)
    write_version(agents, "canary", 1000, mode="raise", extra="take_out: {failures: 3, of_last: 10}\n")
    host = start_host(livekit_server, agents)
    await host.wait_log(r"registered agent greet ")
    clients = []
    for _ in range(4):  # the canary gets them (weight 1000 to 1) and fails before joining: each gets stable
        said, client = await greeted(livekit_server)
        assert said == "stable"
        clients.append(client)
    await host.wait_log(r"version canary of agent greet taken out of rotation until the next reload: 3 of its "
                        r"last 10 jobs failed")
    failed = len(re.findall(r"job failed: .*version=canary", host.log()))
    said, client = await greeted(livekit_server)  # out of rotation: straight to stable
    assert said == "stable"
    await asyncio.sleep(0)
    assert len(re.findall(r"job failed: .*version=canary", host.log())) == failed
    for c in [*clients, client]:
        await c.disconnect()


async def test_a_canary_taken_out_is_back_once_its_code_is_fixed_and_reloaded(livekit_server, start_host, tmp_path):
    """The fix of a failing canary is in its code, which its agent file does not show: the reload that
    picks it up puts the version back in rotation."""
    agents, code = tmp_path / "agents", tmp_path / "canary_code.py"
    code.write_text("async def entrypoint(ctx):\n    raise RuntimeError('the canary\\'s bug')\n")
    write_version(agents, "stable", 1)
    (agents / "greet-canary.yaml").write_text(
        f"name: greet\nversion: canary\nweight: 1000\nentrypoint: {code}:entrypoint\nprocesses: {{idle: 1}}\n"
        "take_out: {failures: 2, of_last: 10}\n")
    host = start_host(livekit_server, agents, args=("--reload",))
    await host.wait_log(r"registered agent greet ")
    clients = []
    for _ in range(2):  # the canary fails each before joining: stable answers
        said, client = await greeted(livekit_server)
        assert said == "stable"
        clients.append(client)
    await host.wait_log(r"version canary of agent greet taken out of rotation until the next reload")
    code.write_text("import os\n\nfrom host.context import JobContext\n\n\n"
                    "async def entrypoint(ctx: JobContext) -> None:\n    await ctx.connect()\n"
                    "    await ctx.room.local_participant.send_text('canary fixed', topic='version')\n")
    await host.wait_log(r"reload \(.*canary_code\.py.*\): changed greet@canary \(code\)", timeout=30)
    await host.wait_log(r"version canary of agent greet back in rotation after the reload")
    said, client = await greeted(livekit_server)  # weight 1000 to 1 again, and it answers now
    assert said == "canary fixed"
    for c in [*clients, client]:
        await c.disconnect()


async def test_a_call_retried_on_another_host_avoids_the_version_that_failed(livekit_server, start_host, tmp_path):
    """Two hosts share a journal (the test's state directory): the server offers a call dispatched again to either
    of them, and whichever takes it knows the version its job failed on."""
    agents = tmp_path / "agents"
    write_version(agents, "stable", 1)
    write_version(agents, "canary", 1000, mode="raise", extra="take_out: {failures: 10, of_last: 10}\n")
    hosts = [start_host(livekit_server, agents), start_host(livekit_server, agents)]
    for host in hosts:
        await host.wait_log(r"registered agent greet ")
    clients = []
    for _ in range(8):  # the canary gets each call (1000 to 1), fails before joining; the retry gets stable
        said, client = await greeted(livekit_server)
        assert said == "stable"
        clients.append(client)
    rooms = Counter(m.group(1) for host in hosts
                    for m in re.finditer(r"job failed: .*room=(\S+) .*version=canary", host.log()))
    # at most once each, wherever the retry went (a room's choice by weight is the stable one at 1 in 1001)
    assert rooms and set(rooms) <= {c.room_name for c in clients} and max(rooms.values()) == 1, rooms
    for c in clients:
        await c.disconnect()
