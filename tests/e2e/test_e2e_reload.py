"""End to end: reloads change what new jobs get and never touch running jobs."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import aiohttp
import psutil

from host.testing.harness import Client, dispatch, job_in_new_room, new_room

COUNTER = """\
import asyncio

VERSION = "{version}"


async def entrypoint(ctx):
    await ctx.connect()
    n = 0  # in-memory state that a restart would lose
    while True:
        n += 1
        await ctx.room.local_participant.send_text(f"{{VERSION}} {{n}}", topic="count")
        await asyncio.sleep(0.1)
"""


def counter_agent(folder: Path, name: str = "counter", rev: int = 0) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nentrypoint: counter.py:entrypoint\nprocesses: {{idle: 1}}\n"
                    f"log_fields: {{rev: {rev}}}\n")
    return path


def write_code(folder: Path, version: str) -> None:
    (folder / "counter.py").write_text(COUNTER.format(version=version))


def counts(texts: list[str]) -> tuple[set[str], list[int]]:
    versions = {t.split()[0] for t in texts}
    return versions, sorted(int(t.split()[1]) for t in texts)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def template_and_jobs(base: str) -> tuple[int, list[int]]:
    """From /status: the counter agent's template process, and the pids of the running jobs."""
    async with aiohttp.ClientSession() as session, session.get(base + "/status") as response:
        status = json.loads(await response.text())
    [agent] = status["agents"]
    return agent["template_pid"], [job["pid"] for job in status["jobs"]]


async def counting_job(server, agent: str = "counter") -> Client:
    return await job_in_new_room(server, agent, "count", 3)


async def test_running_job_keeps_counting_across_ten_reloads_and_new_jobs_get_new_code(
        livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    agents.mkdir()
    counter_agent(agents)
    write_code(agents, "v0")
    host = start_host(livekit_server, agents, args=("--reload",))
    await host.wait_log(r"registered agent counter")
    first = await counting_job(livekit_server)
    base = await host.http_base()
    old_template, [first_pid] = await template_and_jobs(base)
    assert psutil.Process(first_pid).ppid() == old_template, "the job process is a fork of the agent's template"

    for i in range(1, 11):
        if i % 2:
            counter_agent(agents, rev=i)
            kind = "log_fields"
        else:
            write_code(agents, f"v{i}")
            kind = "code"
        await host.wait_log(rf"reload \(changed .*\): changed counter \({kind}\)", count=(i + 1) // 2)
        seen = len(first.texts["count"])
        await first.wait_text("count", seen + 2)  # still counting after this reload

    versions, numbers = counts(first.texts["count"])
    assert versions == {"v0"}, "the running job must keep the code it started with"
    assert numbers == list(range(1, len(numbers) + 1)), "the counter restarted or skipped: the job was touched"
    assert "job ended" not in host.log() and "job failed" not in host.log()

    second = await counting_job(livekit_server)
    assert counts(second.texts["count"])[0] == {"v10"}, "a new job must run the new code"
    new_template, pids = await template_and_jobs(base)
    second_pid = next(pid for pid in pids if pid != first_pid)
    assert new_template != old_template and psutil.Process(second_pid).ppid() == new_template, "new code: new template"
    assert psutil.Process(first_pid).ppid() == old_template, "the old template still serves the running job"
    await host.wait_log(rf"job running .*room={second.room_name}")
    assert re.search(rf"job started(?=.*room={second.room_name} )(?=.* rev=9 )", host.log()), "new jobs: new fields"
    assert re.search(rf"job started(?=.*room={first.room_name} )(?=.* rev=0 )", host.log())
    await first.disconnect()
    await host.wait_log(rf"job ended .*room={first.room_name}")
    for _ in range(100):  # the old template exits once its last job has
        if not alive(old_template):
            break
        await asyncio.sleep(0.1)
    assert not alive(old_template)
    await second.disconnect()


async def test_added_file_is_dispatchable_and_removed_file_lets_its_job_finish(livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    agents.mkdir()
    write_code(agents, "v0")
    doomed = counter_agent(agents, "doomed")
    host = start_host(livekit_server, agents, args=("--reload",))
    await host.wait_log(r"registered agent doomed")
    running = await counting_job(livekit_server, "doomed")

    counter_agent(agents, "newcomer")
    await host.wait_log(r"reload \(changed .*newcomer.yaml\): added newcomer")
    await host.wait_log(r"registered agent newcomer")
    newcomer = await counting_job(livekit_server, "newcomer")

    doomed.unlink()
    await host.wait_log(r"reload \(changed .*doomed.yaml\): removed doomed")
    seen = len(running.texts["count"])
    await running.wait_text("count", seen + 5)  # the job already running goes on

    refused = Client(livekit_server, new_room())
    refused.listen("count")
    await refused.connect()
    await dispatch(livekit_server, "doomed", refused.room_name)
    await dispatch(livekit_server, "newcomer", refused.room_name)  # a positive signal: the room's later dispatch
    await host.wait_log(rf"job running .*agent=newcomer .*room={refused.room_name}")
    await asyncio.sleep(1.0)
    assert not re.search(rf"agent=doomed .*room={refused.room_name}", host.log())

    await running.disconnect()  # the job finishes under its own shutdown policy
    await host.wait_log(rf"job ended .*room={running.room_name} .*reason=participants_left")
    await newcomer.disconnect()
    await refused.disconnect()


async def test_invalid_changes_are_refused_and_the_previous_configuration_keeps_serving(
        livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    agents.mkdir()
    write_code(agents, "v0")
    path = counter_agent(agents)
    host = start_host(livekit_server, agents)  # no --reload: SIGHUP only
    await host.wait_log(r"registered agent counter")
    good = path.read_text()
    path.write_text(good + "# an edit\n")
    await asyncio.sleep(1.0)

    path.write_text(good.replace("processes: {idle: 1}", "processes: {idle: -1}"))
    host.signal(signal.SIGHUP)
    refusal = r"reload \(SIGHUP\) refused, still serving the previous configuration: "
    await host.wait_log(refusal + r".*counter.yaml:3:\d+: \$\.processes\.idle: ")
    assert "reload (changed" not in host.log(), "without --reload, files are not watched"

    path.write_text(good + "limits: [\n")
    host.signal(signal.SIGHUP)
    await host.wait_log(refusal + r".*counter.yaml:\d+:\d+: \$: ")

    path.write_text(good)
    (agents / "twin.yaml").write_text("name: counter\nentrypoint: counter.py:entrypoint\n")
    host.signal(signal.SIGHUP)
    await host.wait_log(refusal + r".*twin.yaml:1:7: \$\.name: agent 'counter' is already defined at .*counter.yaml:1")
    (agents / "twin.yaml").unlink()

    (agents / "counter.py").write_text("async def entrypoint(ctx):\n    syntax error here\n")
    host.signal(signal.SIGHUP)
    await host.wait_log(refusal + r".*counter.yaml:2:13: \$\.entrypoint: counter.py:entrypoint: .*SyntaxError")

    assert "unregistered" not in host.log() and "removed" not in host.log()
    job = await counting_job(livekit_server)  # the previous definition and code still serve
    assert counts(job.texts["count"])[0] == {"v0"}
    await job.disconnect()
