"""End to end: the HTTP surface, the memory limit, and several hosts sharing one server."""

from __future__ import annotations

import asyncio
import json
import re
import signal

import psutil
import pytest

from host.testing.cli import agenthost
from host.testing.harness import ROOT, Client, agent_file, dispatch, job_in_new_room, new_room
from host.testing.scrape import get, metric

TEST_AGENTS = ROOT / "tests" / "agents"


def skip_without_cgroups() -> None:
    from host.process.cgroupfs import CgroupError
    from host.process.detect import detect

    try:
        detect("cgroup").close()
    except CgroupError as exc:
        pytest.skip(f"no cgroup may be created here: {exc}")


async def ticking(server, agent: str) -> Client:
    return await job_in_new_room(server, agent, "tick", 2)


async def sampled(base: str, count: int = 1) -> None:
    """Until the resource monitor has measured `count` running job(s): their memory is in /status."""
    for _ in range(300):
        jobs = json.loads((await get(base + "/status"))[1])["jobs"]
        if sum(1 for j in jobs if j.get("memory_mb")) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no memory sample of {count} job(s) within 30 s")


async def busy_and_calm(server, start_host, tmp_path, busy: str, module: str, *args: str):
    """A host serving `busy` (tests/agents/`module`, which says something on `status` once it runs) and a calm
    `ticker`, with a job of each; the host, its HTTP base and the two calls."""
    agents = tmp_path / "agents"
    agent_file(agents, busy, f"entrypoint: {TEST_AGENTS / module}:entrypoint\n")
    agent_file(agents, "ticker", f"entrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n")
    host = start_host(server, agents, args=args)
    base = await host.http_base()
    await host.wait_log(rf"registered agent {busy}")
    await host.wait_log(r"registered agent ticker")
    return host, base, await job_in_new_room(server, busy, "status"), await ticking(server, "ticker")


async def test_readyz_is_503_with_the_reason_until_the_agents_are_registered(start_host, livekit_server, tmp_path):
    # a server address where nothing listens: alive, never ready
    env = {"LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s" * 32}
    host = start_host(livekit_server, TEST_AGENTS.parent.parent / "agents.d" / "hello-world.yaml", extra_env=env)
    base = await host.http_base()
    assert (await get(base + "/healthz"))[0] == 200
    await host.wait_log(r"not connected to ws://127.0.0.1:9")
    code, body = await get(base + "/readyz")
    assert code == 503
    [reason] = json.loads(body)["reasons"]
    assert reason.startswith("agent hello-world is not registered with ws://127.0.0.1:9: ")
    status = json.loads((await get(base + "/status"))[1])
    assert status["agents"][0]["registered"] is False and status["agents"][0]["last_error"]


async def test_readyz_is_503_while_an_agent_cannot_start_job_processes(livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "broken_setup.py").write_text("def setup(proc):\n    raise RuntimeError('model file missing')\n")
    agent_file(agents, "fragile", f"entrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n"
                                  "setup: broken_setup.py:setup\n")
    host = start_host(livekit_server, agents)
    base = await host.http_base()
    await host.wait_log(r"registered agent fragile")
    await host.wait_log(r"job process for fragile failed to start: RuntimeError: model file missing")
    code, body = await get(base + "/readyz")
    assert code == 503
    assert json.loads(body)["reasons"] == ["agent fragile cannot start job processes: RuntimeError: model file missing"]
    [agent] = json.loads((await get(base + "/status"))[1])["agents"]
    assert agent["registered"] is True and agent["process_error"] == "RuntimeError: model file missing"


async def test_status_metrics_and_the_status_command_follow_jobs(livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    agent_file(agents, "ticker", f"entrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n"
                                 "limits: {max_jobs: 4, memory_limit_mb: 2000}\n"
                                 "metadata:\n  schema: {type: object, required: [user]}\n  required: false\n")
    host = start_host(livekit_server, agents)
    base = await host.http_base()
    await host.wait_log(r"registered agent ticker")
    code, body = await get(base + "/readyz")
    assert (code, json.loads(body)["status"]) == (200, "ready")

    client = await ticking(livekit_server, "ticker")
    await dispatch(livekit_server, "ticker", new_room(), json.dumps({"no_user": 1}))
    await host.wait_log(r"refused job: invalid metadata")
    await sampled(base)

    status = json.loads((await get(base + "/status"))[1])
    [agent] = status["agents"]
    assert agent["name"] == "ticker" and agent["registered"] is True and agent["worker_id"].startswith("AW_")
    assert agent["limits"] == {"max_jobs": 4, "memory_warn_mb": 1000, "memory_limit_mb": 2000,
                               "pids_limit": 1024, "cpu_limit": 0.0}
    assert agent["running_jobs"] == 1
    [job] = status["jobs"]
    assert job["agent"] == "ticker" and job["room"] == client.room_name and job["state"] == "running"
    # its own pages (its cgroup's charge, or its resident memory where it has no cgroup), measured
    assert isinstance(job["pid"], int) and job["started_at"] and 0 < job["memory_mb"] < 2000
    assert psutil.Process(job["pid"]).ppid() == agent["template_pid"], "the job process is a fork of the template"

    text = (await get(base + "/metrics"))[1]
    assert metric(text, "agenthost_jobs_started_total", agent="ticker") == 1
    assert metric(text, "agenthost_jobs_running", agent="ticker") == 1
    assert metric(text, "agenthost_jobs_refused_total", agent="ticker", reason="invalid_metadata") == 1
    assert metric(text, "agenthost_offer_to_entrypoint_seconds_count", agent="ticker") == 1
    assert metric(text, "agenthost_job_memory_bytes", agent="ticker", job_id=job["id"]) > 1e6  # its own pages
    assert metric(text, "agenthost_job_cpu_seconds_total", agent="ticker") >= 0
    assert metric(text, "agenthost_worker_registered", agent="ticker") == 1
    # the process the job took is replaced: processes.idle (1) again, or more while the pool is grown (a job
    # that found it empty grows it for a while)
    for _ in range(100):
        if metric((await get(base + "/metrics"))[1], "agenthost_idle_processes", agent="ticker") >= 1:
            break
        await asyncio.sleep(0.1)
    assert metric((await get(base + "/metrics"))[1], "agenthost_idle_processes", agent="ticker") >= 1

    shown = agenthost("status", "--http", base.removeprefix("http://"), timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"^ticker\s+yes\s+{agent['worker_id']}\s+1\s", shown.stdout, re.M), shown.stdout
    assert re.search(rf"^{job['id']}\s+ticker\s+{client.room_name}\s+running\s+{job['pid']}\s", shown.stdout, re.M)

    await client.disconnect()
    await host.wait_log(rf"job ended .*room={client.room_name}")
    host.signal(signal.SIGHUP)
    await host.wait_log(r"reload \(SIGHUP\): no changes")
    text = (await get(base + "/metrics"))[1]
    assert metric(text, "agenthost_jobs_finished_total", agent="ticker") == 1
    assert metric(text, "agenthost_job_duration_seconds_count", agent="ticker") == 1
    assert metric(text, "agenthost_jobs_running", agent="ticker") == 0
    assert metric(text, "agenthost_reloads_total", result="unchanged") == 1


async def test_an_idle_job_beside_a_livekit_agents_agent_is_small_and_quiet(livekit_server, start_host, tmp_path):
    """With a livekit-agents agent served, the fork server has livekit-agents loaded and every job process shares
    it: an idle job's memory is its own pages, well under 100 MB, and it uses next to no CPU."""
    pytest.importorskip("livekit.agents")
    agents = tmp_path / "agents"
    agent_file(agents, "ticker", f"entrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n")
    (agents / "voice.yaml").write_text((ROOT / "agents.d" / "voice.yaml").read_text())
    host = start_host(livekit_server, agents)
    base = await host.http_base()
    await host.wait_log(r"registered agent ticker")
    await host.wait_log(r"registered agent voice ")
    client = await ticking(livekit_server, "ticker")
    job: dict = {}
    for _ in range(200):  # until its memory and CPU were sampled (every few seconds)
        [job] = json.loads((await get(base + "/status"))[1])["jobs"]
        if job["memory_mb"] is not None and job["cpu"] is not None:
            break
        await asyncio.sleep(0.1)
    assert job["agent"] == "ticker" and 0 < job["memory_mb"] < 100, job
    assert job["cpu"] < 0.2, job
    await client.disconnect()


@pytest.mark.parametrize("mode", ["cgroup", "rlimit"])
async def test_a_busy_jobs_cpu_is_shown_live_and_counted_to_its_exit(livekit_server, start_host, tmp_path, mode):
    """A job keeping a CPU busy shows above 0.3 cores in /status, beside an idle one under 0.2; its CPU seconds
    grow while it runs, and its agent's agenthost_job_cpu_seconds_total ends up with all of them, the time before
    the monitor's first look and after its last one included."""
    if mode == "cgroup":
        skip_without_cgroups()
    host, base, hog, calm = await busy_and_calm(livekit_server, start_host, tmp_path, "hog", "spinner.py",
                                                "--job-limits", mode, "--load-threshold", "0")
    jobs: dict[str, dict] = {}
    for _ in range(300):  # until both were sampled twice (a rate needs two looks) and the hog ran a while
        jobs = {j["agent"]: j for j in json.loads((await get(base + "/status"))[1])["jobs"]}
        if len(jobs) == 2 and all(j["cpu"] is not None for j in jobs.values()) \
                and jobs["hog"]["cpu_seconds"] >= 2.0:
            break
        await asyncio.sleep(0.1)
    assert jobs["hog"]["cpu"] > 0.3 and jobs["hog"]["cpu_seconds"] >= 2.0, jobs
    assert jobs["ticker"]["cpu"] < 0.2 and jobs["ticker"]["cpu_seconds"] < jobs["hog"]["cpu_seconds"], jobs
    shown = agenthost("status", "--http", base.removeprefix("http://"), timeout=30)
    assert re.search(r"^AJ_\S+\s+hog\s.*\s\d+%\s+\d+:\d\d\.\d\d\s", shown.stdout, re.M), shown.stdout
    await hog.disconnect()
    [ended] = await host.wait_log(rf"job ended .*room={hog.room_name}.* cpu_seconds=([\d.]+)")
    used = float(ended.group(1))
    assert used >= jobs["hog"]["cpu_seconds"]
    counted = 0.0
    for _ in range(100):  # the monitor counts an ended job at its next look, every few seconds
        counted = metric((await get(base + "/metrics"))[1], "agenthost_job_cpu_seconds_total", agent="hog")
        if counted >= used - 0.05:
            break
        await asyncio.sleep(0.1)
    assert counted >= used - 0.05, (counted, used)
    if mode == "cgroup":  # the same cgroup read by both: counted once, to the last hundredth
        assert counted <= used + 0.05, (counted, used)
    await calm.disconnect()


async def test_a_job_whose_loop_cannot_keep_up_is_shown_slow_with_its_room(livekit_server, start_host, tmp_path):
    _host, base, blocked, ticking_client = await busy_and_calm(livekit_server, start_host, tmp_path, "blocker",
                                                               "blocker.py")
    jobs: dict[str, dict] = {}
    for _ in range(100):  # until each job has reported a second that saw its loop block (or not)
        status = json.loads((await get(base + "/status"))[1])
        jobs = {j["agent"]: j for j in status["jobs"]}
        if len(jobs) == 2 and all(j["loop_lag_ms"] is not None for j in jobs.values()) and \
                jobs["blocker"]["loop_lag_ms"] >= 200:
            break
        await asyncio.sleep(0.2)
    assert jobs["blocker"]["loop_lag_ms"] >= 200 and jobs["blocker"]["slow"] is True, jobs
    assert jobs["ticker"]["loop_lag_ms"] < 100 and jobs["ticker"]["slow"] is False, jobs
    assert jobs["blocker"]["participants"] == 1 and jobs["ticker"]["participants"] == 1
    text = (await get(base + "/metrics"))[1]
    assert metric(text, "agenthost_job_loop_lag_seconds", agent="blocker") >= 0.2
    shown = agenthost("status", "--http", base.removeprefix("http://"), timeout=30)
    assert re.search(r"blocker .* \d+ ms SLOW +1\b", shown.stdout), shown.stdout
    await blocked.disconnect()
    await ticking_client.disconnect()


async def test_status_command_says_when_no_host_answers():
    shown = agenthost("status", "--http", "127.0.0.1:9", timeout=30)
    assert shown.returncode == 3
    assert shown.stderr.startswith("agenthost: cannot read http://127.0.0.1:9/status: ")


@pytest.mark.parametrize("mode", ["cgroup", "rlimit"])
async def test_job_over_its_memory_limit_is_stopped_and_the_rest_go_on(livekit_server, start_host, tmp_path, mode):
    """With a cgroup per job the kernel stops it at the limit; with rlimits the host's sampling does."""
    if mode == "cgroup":
        skip_without_cgroups()
    agents = tmp_path / "agents"
    agent_file(agents, "hog", f"entrypoint: {TEST_AGENTS / 'hog.py'}:entrypoint\n"
                              "limits: {memory_warn_mb: 250, memory_limit_mb: 400}\nshutdown: {timeout: 1s}\n")
    agent_file(agents, "calm", f"entrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n")
    host = start_host(livekit_server, agents, args=("--job-limits", mode))
    base = await host.http_base()
    await host.wait_log(rf"job limits: {mode}")
    await host.wait_log(r"registered agent hog")
    await host.wait_log(r"registered agent calm")
    calm = await ticking(livekit_server, "calm")

    hog = await job_in_new_room(livekit_server, "hog", "status")
    await host.wait_log(r"job memory \d+ MB is above limits.memory_warn_mb \(250 MB\) .*agent=hog")
    if mode == "cgroup":
        await host.wait_log(r"job failed: job process killed by the kernel at limits.memory_limit_mb 400 MB "
                            r"\(1 process\(es\) of the job\) .*agent=hog")
    else:
        await host.wait_log(r"job failed: (memory limit exceeded: \d+ MB > limits.memory_limit_mb 400 MB"
                            r"; shutdown did not finish within 1s; process killed) .*agent=hog")
    assert len(re.findall(r"above limits.memory_warn_mb", host.log())) == 1, "the warning is rate-limited"

    seen = len(calm.texts["tick"])
    await calm.wait_text("tick", seen + 5)  # the other job is untouched
    status = json.loads((await get(base + "/status"))[1])
    assert [j["agent"] for j in status["jobs"]] == ["calm"]
    text = (await get(base + "/metrics"))[1]
    assert metric(text, "agenthost_jobs_failed_total", agent="hog", reason="memory_limit") == 1
    await calm.disconnect()
    await hog.disconnect()


async def test_two_hosts_share_the_jobs_and_draining_one_loses_none(livekit_server, start_host, tmp_path):
    agents = tmp_path / "agents"
    agent_file(agents, "shared", f"entrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\nlimits: {{max_jobs: 3}}\n")
    a = start_host(livekit_server, agents, args=("--drain-timeout", "60"))
    b = start_host(livekit_server, agents)
    await a.wait_log(r"registered agent shared")
    await b.wait_log(r"registered agent shared")

    clients = [await ticking(livekit_server, "shared") for _ in range(4)]  # more than one host may take
    on_a = [c for c in clients if f"room={c.room_name}" in a.log()]
    on_b = [c for c in clients if f"room={c.room_name}" in b.log()]
    assert on_a and on_b and len(on_a) + len(on_b) == 4, "both hosts serve, each job exactly once"

    for c in on_b:  # make room on b
        await c.disconnect()
    await b.wait_log(r"job ended", count=len(on_b))

    a.signal(signal.SIGTERM)
    await a.wait_log(r"SIGTERM: draining")
    later = [await ticking(livekit_server, "shared") for _ in range(2)]
    assert all(f"room={c.room_name}" in b.log() and f"room={c.room_name}" not in a.log() for c in later)

    for c in on_a:  # the jobs on the draining host are still running, untouched
        seen = len(c.texts["tick"])
        await c.wait_text("tick", seen + 3)
        await c.disconnect()
    await a.wait_log(r"job ended .*reason=participants_left", count=len(on_a))
    assert a.proc is not None and await asyncio.to_thread(a.proc.wait, 30) == 0
    assert "job failed" not in a.log() + b.log()
    for c in later:
        await c.disconnect()


async def test_every_dashboard_panel_reads_metrics_and_labels_the_host_exports(livekit_server, start_host, tmp_path):
    """A renamed metric or label breaks CI, not the dashboard."""
    from host.testing.promql import dashboard_queries, exported, metrics_and_labels

    agents = tmp_path / "agents"
    agent_file(agents, "ticker", f"entrypoint: {TEST_AGENTS / 'holder.py'}:entrypoint\n"
                                 "limits: {memory_limit_mb: 2000}\n")
    host = start_host(livekit_server, agents)
    base = await host.http_base()
    await host.wait_log(r"registered agent ticker")
    client = await ticking(livekit_server, "ticker")
    await client.disconnect()
    await host.wait_log(r"job ended")
    client = await ticking(livekit_server, "ticker")  # one running, for the per-job series
    await sampled(base)
    scraped = exported((await get(base + "/metrics"))[1])
    target_labels = {"instance", "job"}  # added by Prometheus to every series
    for query in dashboard_queries():
        for name, labels in metrics_and_labels(query):
            assert name in scraped, f"the dashboard reads {name}, which the host does not export ({query})"
            extra = {"le"} if name.endswith("_bucket") else set()
            unknown = labels - scraped[name] - target_labels - extra
            assert not unknown, f"{name} has no label {unknown} ({query})"
    await client.disconnect()
