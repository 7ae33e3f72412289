"""What operators see, produced by a real host (its server unreachable) and rendered as `agenthost status`
and /metrics would."""

from __future__ import annotations

import asyncio
import re

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.loader import load
from host.ops.status import render_status
from host.runtime.host import Host, HostOptions


async def test_status_readiness_and_gauges_of_a_host(tmp_path):
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: mod.py:entrypoint\nprocesses: {idle: 0}\n"
                                     "limits: {max_jobs: 3, memory_limit_mb: 500}\n")
    host = Host(load([str(tmp_path)], check_imports=False).require_ok(),
                Credentials("ws://127.0.0.1:9", "k", "s" * 32), HostOptions(drain_timeout=0.5))
    run = asyncio.create_task(host.run())
    try:
        for _ in range(100):
            if host.agents.get("a") is not None and host.agents.get("a").worker.last_error:
                break
            await asyncio.sleep(0.05)
        worker = host.agents.get("a").worker
        await host.jobs.on_offer(worker, agent_pb.AvailabilityRequest(
            job=agent_pb.Job(id="AJ_1", room={"name": "lobby"})))
        doc = host.view.status()
        [agent] = doc["agents"]
        assert agent["name"] == "a" and agent["registered"] is False and agent["running_jobs"] == 1
        assert agent["limits"] == {"max_jobs": 3, "memory_warn_mb": 1000, "memory_limit_mb": 500,
                                   "pids_limit": 1024, "cpu_limit": 0.0}
        assert doc["jobs"] == [{"id": "AJ_1", "agent": "a", "room": "lobby", "state": "accepted", "pid": None,
                                "started_at": None, "memory_mb": None, "cpu": None, "cpu_seconds": None,
                                "version": None, "loop_lag_ms": None, "slow": False, "participants": None}]
        text = render_status(doc)
        assert "AJ_1  a      lobby  accepted" in text and "500 MB" in text
        [reason] = host.view.not_ready()
        assert reason.startswith("agent a is not registered with ws://127.0.0.1:9: ")
        gauges = host.view.gauges()
        assert dict(gauges.running) == {"a": 1} and dict(gauges.registered) == {"a": False}
        metrics = host.view.metrics_text().decode()
        assert 'agenthost_jobs_running{agent="a"} 1.0' in metrics
    finally:
        host.request_stop()
        await asyncio.wait_for(run, 10)


async def test_each_version_is_shown_with_its_weight_jobs_and_failures(tmp_path):
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    (tmp_path / "bot.yaml").write_text(
        "name: bot\nversion: v1\nweight: 0\nentrypoint: mod.py:entrypoint\nprocesses: {idle: 0}\n---\n"
        "name: bot\nversion: v2\nweight: 5\nentrypoint: mod.py:entrypoint\nprocesses: {idle: 0}\n")
    host = Host(load([str(tmp_path)], check_imports=False).require_ok(),
                Credentials("ws://127.0.0.1:9", "k", "s" * 32), HostOptions(drain_timeout=0.5))
    run = asyncio.create_task(host.run())
    try:
        for _ in range(100):
            if host.agents.get("bot") is not None:
                break
            await asyncio.sleep(0.05)
        worker = host.agents.get("bot").worker
        await host.jobs.on_offer(worker, agent_pb.AvailabilityRequest(
            job=agent_pb.Job(id="AJ_1", room={"name": "lobby"})))  # weight 0 for v1: v2 takes it
        host.jobs._endings.note_version(host.jobs.get("AJ_1").facts, failed=True)
        doc = host.view.status()
        [agent] = doc["agents"]
        assert [(v["version"], v["weight"], v["running_jobs"], v["failures"], v["taken_out"])
                for v in agent["versions"]] == [("v1", 0, 0, 0, False), ("v2", 5, 1, 1, False)]
        assert [j["version"] for j in doc["jobs"]] == ["v2"]
        text = render_status(doc)
        assert re.search(r"^bot\s+v1\s+0\s+no\s+0\s+0\s+0$", text, re.M), text  # the versions table
        assert re.search(r"^bot\s+v2\s+5\s+no\s+1\s+1\s+0$", text, re.M), text
        assert re.search(r"^AJ_1\s+bot@v2\s+lobby", text, re.M), text
        metrics = host.view.metrics_text().decode()
        assert 'agenthost_version_weight{agent="bot",version="v2"} 5.0' in metrics
        assert 'agenthost_version_taken_out{agent="bot",version="v1"} 0.0' in metrics
        assert 'agenthost_version_jobs_total{agent="bot",outcome="failed",version="v2"} 1.0' in metrics
    finally:
        host.request_stop()
        await asyncio.wait_for(run, 10)
