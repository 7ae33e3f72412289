"""End to end: what makes a host full. Its own jobs' CPU closes it, so the server sends the next calls to a
host with room; a machine busy with other work does not, so a dispatch only this host can take still runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from host.testing.harness import ROOT, Client, dispatch, new_room

TEST_AGENTS = ROOT / "tests" / "agents"


def agent(folder: Path, entrypoint: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "shared.yaml").write_text(f"name: shared\nentrypoint: {TEST_AGENTS / entrypoint}:entrypoint\n"
                                        "processes: {idle: 1}\n")
    return folder


async def served(server, topic: str, count: int = 1) -> Client:
    client = Client(server, new_room())
    client.listen(topic)
    await client.connect()
    await dispatch(server, "shared", client.room_name)
    await client.wait_text(topic, count, timeout=30)
    return client


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs, one for each host")
async def test_a_host_busy_with_its_own_jobs_gets_none_while_another_has_room(livekit_server, start_host, tmp_path):
    busy = start_host(livekit_server, agent(tmp_path / "busy", "spinner.py"), args=("--load-threshold", "0.5"),
                      cpus={0})
    await busy.wait_log(r"registered agent shared")
    spinning = await served(livekit_server, "status")  # the only host: it takes the job, which fills its CPU
    await busy.wait_log(r"agent shared takes no new jobs: its CPU use \d+% reached --load-threshold 50%", timeout=60)
    free = start_host(livekit_server, agent(tmp_path / "free", "holder.py"), cpus={1})
    await free.wait_log(r"registered agent shared")
    clients = [await served(livekit_server, "tick", 2) for _ in range(4)]
    await free.wait_log(r"job running", count=4)
    assert busy.log().count("job running") == 1, busy.log()
    for client in [spinning, *clients]:
        await client.disconnect()


async def test_a_machine_busy_with_other_work_still_runs_every_dispatch(livekit_server, start_host, tmp_path):
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(len(os.sched_getaffinity(0)))]
    try:
        host = start_host(livekit_server, agent(tmp_path / "a", "holder.py"))
        await host.wait_log(r"registered agent shared")
        await host.wait_log(r"the machine's CPU is \d+% busy, this host's own use \d+%: still taking jobs", timeout=60)
        clients = [await served(livekit_server, "tick", 2) for _ in range(3)]
        await host.wait_log(r"job running", count=3)
        assert "takes no new jobs" not in host.log()
        for client in clients:
            await client.disconnect()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


async def test_one_agents_busy_jobs_close_that_agent_not_the_others(livekit_server, start_host, tmp_path):
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "hog.yaml").write_text(f"name: hog\nentrypoint: {TEST_AGENTS / 'spinner.py'}:entrypoint\n")
    (folder / "calm.yaml").write_text(f"name: calm\nentrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n")
    host = start_host(livekit_server, folder, args=("--load-threshold", "0.5"), cpus={0})
    await host.wait_log(r"registered agent hog")
    await host.wait_log(r"registered agent calm")
    hog = Client(livekit_server, new_room())
    hog.listen("status")
    await hog.connect()
    await dispatch(livekit_server, "hog", hog.room_name)
    await host.wait_log(r"agent hog takes no new jobs: its CPU use \d+% reached --load-threshold 50%; "
                        r"this agent's jobs use \d+%", timeout=60)
    measured = len(host.log())  # from here on, each agent is judged by what its own jobs use
    calm = Client(livekit_server, new_room())
    calm.listen("tick")
    await calm.connect()
    await dispatch(livekit_server, "calm", calm.room_name)
    await calm.wait_text("tick", 2, timeout=30)  # the other agent still takes its calls
    assert "agent calm takes no new jobs" not in host.log()[measured:]
    await calm.disconnect()
    await hog.disconnect()
