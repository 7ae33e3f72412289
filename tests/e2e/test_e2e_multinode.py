"""End to end on LiveKit's own distributed engine: two livekit-server nodes over a real Redis, rooms on one
node, hosts connected to either, job requests travelling between nodes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from host.testing.harness import ROOT, Client, dispatch, new_room

TEST_AGENTS = ROOT / "tests" / "agents"
AGENTS = ROOT / "agents.d"


def holder(folder: Path, name: str = "holder", limits: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(f"name: {name}\nentrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n"
                                         f"processes: {{idle: 2}}\n{limits}")
    return folder


async def ticking_on(node, dispatch_via, agent: str = "holder") -> Client:
    """A client that joins a new room on `node`; `agent` dispatched through `dispatch_via`; its first ticks."""
    client = Client(node, new_room())
    client.listen("tick")
    await client.connect()
    await dispatch(dispatch_via, agent, client.room_name)
    await client.wait_text("tick", 2, timeout=30)
    return client


async def test_a_room_on_node_1_gets_its_job_from_a_host_on_node_2(cluster, start_host):
    node1, node2 = cluster.nodes
    host = start_host(node2, AGENTS / "hello-world.yaml")
    await host.wait_log(r"registered agent hello-world")
    client = Client(node1, new_room())  # the room lives on node 1: its first participant joined there
    client.listen("hello-world")
    await client.connect()
    await dispatch(node1, "hello-world", client.room_name)
    assert await client.wait_text("hello-world", timeout=30) == ["hello world"]
    await host.wait_log(r"participant in the room: user .*room=" + client.room_name)
    await client.disconnect()
    await host.wait_log(r"job ended .*room=" + client.room_name + r" .*reason=participants_left")


async def test_two_hosts_on_two_nodes_share_dispatches_and_a_drain_loses_none(cluster, start_host, tmp_path):
    # The server offers each job to the host whose reported load is lowest. Both hosts share this machine,
    # so the CPU each one samples differs only by when it samples: counting jobs alone (no CPU, max_jobs)
    # makes the less busy host the lower one, and the share the server's decision, not the sampling phase.
    node1, node2 = cluster.nodes
    by_jobs = ("--load-threshold", "0")
    a = start_host(node1, holder(tmp_path / "a", limits="limits: {max_jobs: 10}\n"), args=by_jobs)
    b = start_host(node2, holder(tmp_path / "b", limits="limits: {max_jobs: 10}\n"), args=by_jobs)
    await a.wait_log(r"registered agent holder")
    await b.wait_log(r"registered agent holder")
    first = [await ticking_on(cluster.nodes[i % 2], cluster.nodes[(i + 1) % 2]) for i in range(6)]
    on_a, on_b = a.log().count("job running"), b.log().count("job running")
    assert on_a + on_b == 6 and on_a and on_b, (on_a, on_b)
    a.signal()  # SIGTERM: a drains
    await a.wait_log(r"SIGTERM: draining")
    later = [await ticking_on(cluster.nodes[i % 2], cluster.nodes[i % 2]) for i in range(4)]
    assert a.log().count("job running") == on_a, "a draining host took a new job"
    await b.wait_log(r"job running", count=on_b + 4)
    for client in first:  # a's running jobs go on until their clients leave, then report their end
        seen = len(client.texts["tick"])
        await client.wait_text("tick", seen + 2)
        await client.disconnect()
    await a.wait_log(r"job ended", count=on_a)
    assert await asyncio.to_thread(a.proc.wait, 30) == 0
    assert "job failed" not in a.log() + b.log()
    for client in later:
        await client.disconnect()


async def test_a_host_whose_node_dies_reconnects_and_the_other_host_serves_meanwhile(cluster, start_host, tmp_path):
    node1, node2 = cluster.nodes
    b = start_host(node2, holder(tmp_path / "b"))
    await b.wait_log(r"registered agent holder")
    on_node2 = await ticking_on(node2, node2)  # b is the only host yet: the job is b's
    [running] = await b.wait_log(r"job running in process (\d+)")
    job_pid = int(running.group(1))
    a = start_host(node1, holder(tmp_path / "a"))
    await a.wait_log(r"registered agent holder")
    node2.kill()
    await b.wait_log(r"not connected to ws://198\.18\.0\.3:7960 .*retrying in", timeout=30)
    served = [await ticking_on(node1, node1) for _ in range(3)]  # every new dispatch meanwhile, by a
    await a.wait_log(r"job running", count=3)
    # b's job ended with its node's room, and its process with it: none leaked
    await b.wait_log(r"job (ended|failed)", timeout=30)
    for _ in range(100):
        if not Path(f"/proc/{job_pid}").exists():
            break
        await asyncio.sleep(0.1)
    assert not Path(f"/proc/{job_pid}").exists(), "the job process of the dead node's room was left running"
    node2.start()  # back, at the same URL
    await b.wait_log(r"registered agent holder", count=2, timeout=60)
    for client in [on_node2, *served]:
        await client.disconnect()


async def test_dispatch_and_status_commands_against_the_deployment(cluster, start_host, tmp_path):
    node1, node2 = cluster.nodes
    host = start_host(node1, holder(tmp_path / "a"))
    base = await host.http_base()
    await host.wait_log(r"registered agent holder")
    client = Client(node2, new_room())  # the room on node 2, the host on node 1, the dispatch through node 2
    client.listen("tick")
    await client.connect()
    env = {"LIVEKIT_URL": node2.url, **{k: v for k, v in node2.env().items() if k != "LIVEKIT_URL"}}
    done = subprocess.run([sys.executable, "-m", "host", "dispatch", "holder", "--room", client.room_name,
                           "--config", str(tmp_path / "a")], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env}, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("AD_"), done.stderr
    await client.wait_text("tick", 2, timeout=30)
    shown = subprocess.run([sys.executable, "-m", "host", "status", "--json", "--http",
                            base.removeprefix("http://")], capture_output=True, text=True, timeout=30, cwd=ROOT)
    status = json.loads(shown.stdout)
    [job] = status["jobs"]
    assert job["room"] == client.room_name and job["state"] == "running"
    async with aiohttp.ClientSession() as session, session.get(base + "/readyz") as r:
        assert r.status == 200
    await client.disconnect()
