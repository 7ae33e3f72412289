"""End to end: a job cannot harm the host through its pipe. Agent code that writes a pickle, half a frame or
a huge frame to the host gets its job killed with the reason; the host runs no code of it, stays responsive,
and serves the next job."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest

from host.testing.harness import ROOT, Client, dispatch, job_in_new_room, new_room
from host.testing.scrape import get

HOSTILE = ROOT / "tests" / "agents" / "hostile.py"


def agents(folder: Path, **entrypoints: str) -> Path:
    folder.mkdir(exist_ok=True)
    for name, function in entrypoints.items():
        (folder / f"{name}.yaml").write_text(f"name: {name}\nentrypoint: {HOSTILE}:{function}\n"
                                             "processes: {idle: 1}\n")
    (folder / "hello-world.yaml").write_text((ROOT / "agents.d" / "hello-world.yaml").read_text())
    return folder


async def hello(server) -> None:
    client = Client(server, new_room())
    client.listen("hello-world")
    await client.connect()
    await dispatch(server, "hello-world", client.room_name)
    assert await client.wait_text("hello-world", timeout=30) == ["hello world"]
    await client.disconnect()


async def healthz_ms(base: str) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.get(
            base + "/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
        assert r.status == 200
    return (time.monotonic() - started) * 1000


async def test_a_pickle_from_a_job_runs_nothing_in_the_host(livekit_server, start_host, tmp_path):
    host = start_host(livekit_server, agents(tmp_path / "a", evil="pickle_to_the_host"))
    await host.wait_log(r"registered agent evil")
    marker = tmp_path / "pwned"
    await dispatch(livekit_server, "evil", new_room(), str(marker))
    await host.wait_log(r"job process \d+ broke the protocol, killed: not a message")
    await host.wait_log(r"job failed: the job process broke the protocol: not a message: .*agent=evil")
    assert not marker.exists()
    await hello(livekit_server)


async def test_half_a_frame_does_not_hang_the_host(livekit_server, start_host, tmp_path):
    host = start_host(livekit_server, agents(tmp_path / "a", stall="half_a_frame"))
    base = await host.http_base()
    await host.wait_log(r"registered agent stall")
    await dispatch(livekit_server, "stall", new_room())
    await host.wait_log(r"job running .*agent=stall")
    assert await healthz_ms(base) < 5000  # the host's loop answers while the frame is pending
    await hello(livekit_server)
    await host.wait_log(r"broke the protocol, killed: a frame begun 10 s ago did not end \(14 bytes of it came\)")
    await host.wait_log(r"job failed: the job process broke the protocol: a frame begun .*agent=stall")


async def test_a_huge_frame_header_is_refused_before_it_is_read(livekit_server, start_host, tmp_path):
    host = start_host(livekit_server, agents(tmp_path / "a", huge="a_gigabyte_frame"))
    await host.wait_log(r"registered agent huge")
    await dispatch(livekit_server, "huge", new_room())
    await host.wait_log(r"broke the protocol, killed: a frame of 1073741824 bytes \(at most 1048576\)")
    await hello(livekit_server)


async def test_a_program_a_job_runs_can_be_stopped_gracefully(livekit_server, start_host, tmp_path):
    import signal

    (tmp_path / "probe.yaml").write_text(f"name: probe\nentrypoint: {ROOT / 'tests/agents/signals_probe.py'}"
                                         ":entrypoint\n")
    host = start_host(livekit_server, tmp_path)
    await host.wait_log(r"registered agent probe")
    client = await job_in_new_room(livekit_server, "probe", "signals")
    ignored = int(client.texts["signals"][0], 16)
    assert not ignored & (1 << (signal.SIGTERM - 1)) and not ignored & (1 << (signal.SIGINT - 1)), hex(ignored)
    await client.disconnect()


async def test_the_http_token_and_the_redis_password_reach_no_job(livekit_server, start_host, tmp_path):
    import json

    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "open.yaml").write_text(f"name: open\nentrypoint: {ROOT / 'tests/agents/env_probe.py'}:entrypoint\n")
    # a Redis that is not there: the host says so and serves on; its URL's password must not leak meanwhile
    host = start_host(livekit_server, agents, extra_env={"AGENTHOST_HTTP_TOKEN": "from-the-environment",
                                                         "AGENTHOST_REDIS_URL": "redis://:redis-pw-42@127.0.0.1:9/0"})
    await host.wait_log(r"registered agent open")
    client = await job_in_new_room(livekit_server, "open", "env")
    seen = json.loads(client.texts["env"][0])
    assert "AGENTHOST_HTTP_TOKEN" not in seen["os_environ"] and "AGENTHOST_HTTP_TOKEN" not in seen["initial_keys"]
    assert "AGENTHOST_REDIS_URL" not in seen["os_environ"] + seen["initial_keys"], seen
    await host.wait_log(r"the shared journal \(redis redis://\*\*\*@127.0.0.1:9/0")  # its URL was used, masked
    assert b"redis-pw-42" not in Path(f"/proc/{host.proc.pid}/environ").read_bytes()
    assert "PATH" in seen["initial_keys"]  # the probe read the block
    # the fork server started with a safe import path (what it imported first came from the installation, not
    # the folder it ran in), which the agent's own programs do not inherit
    assert "PYTHONSAFEPATH" in seen["initial_keys"], seen
    assert "PYTHONSAFEPATH" not in seen["os_environ"] and "AGENTHOST_SAFE_PATH" not in seen["os_environ"], seen
    await client.disconnect()


async def test_the_http_token_may_come_from_a_file(livekit_server, start_host, tmp_path):
    import json

    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "open.yaml").write_text(f"name: open\nentrypoint: {ROOT / 'tests/agents/env_probe.py'}:entrypoint\n")
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-from-file\n")
    host = start_host(livekit_server, agents, extra_env={"AGENTHOST_HTTP_TOKEN_FILE": str(token_file)})
    base = await host.http_base()
    await host.wait_log(r"registered agent open")
    client = await job_in_new_room(livekit_server, "open", "env")
    seen = json.loads(client.texts["env"][0])
    assert "AGENTHOST_HTTP_TOKEN_FILE" not in seen["os_environ"] + seen["initial_keys"], seen
    await client.disconnect()
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/status") as r:
            assert r.status == 401
        async with session.get(base + "/status", headers={"Authorization": "Bearer s3cret-from-file"}) as r:
            assert r.status == 200


async def test_a_pickle_from_an_agent_module_at_import_runs_nothing_in_the_host(livekit_server, start_host,
                                                                                 tmp_path):
    folder = agents(tmp_path / "a")
    marker = tmp_path / "pwned"
    (folder / "evil.yaml").write_text(f"name: evil\nentrypoint: {ROOT / 'tests/agents/hostile_module.py'}:entrypoint\n"
                                      f"env: {{HOSTILE_MARKER: '{marker}'}}\n")
    host = start_host(livekit_server, folder)
    await host.wait_log(r"the template process of evil broke the protocol, killed: not a message")
    await host.wait_log(r"registered agent hello-world")
    await hello(livekit_server)  # the other agents are served
    assert not marker.exists()


def _pipes_of(pid: int) -> set[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fd_probe", ROOT / "tests" / "agents" / "fd_probe.py")
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    return set(probe.held(pid))


async def test_a_job_holds_no_descriptor_of_the_fork_server_or_resource_tracker(livekit_server, start_host,
                                                                                tmp_path):
    import json

    import psutil

    (tmp_path / "probe.yaml").write_text(f"name: probe\nentrypoint: {ROOT / 'tests/agents/fd_probe.py'}:entrypoint\n")
    host = start_host(livekit_server, tmp_path)
    await host.wait_log(r"registered agent probe")
    client = await job_in_new_room(livekit_server, "probe", "fds")
    said = json.loads(client.texts["fds"][0])
    held, at_import = set(said["now"]), set(said["at_import"])
    assert held and at_import, "the probe saw its own pipes to the host at least"
    helpers = [p for p in psutil.Process(host.proc.pid).children()
               if any(m in " ".join(p.cmdline()) for m in ("multiprocessing.forkserver", "resource_tracker"))]
    assert len(helpers) == 2, [p.cmdline() for p in helpers]
    status = json.loads((await get(await host.http_base() + "/status"))[1])
    template = status["agents"][0]["template_pid"]
    assert said["imported_by"] == template, "imported in the agent's template"
    with open(f"/proc/{template}/status") as fh:  # what a program its agent code starts inherits ignored
        ignored = int(next(line for line in fh if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (15 - 1) | 1 << (2 - 1)), "SIGTERM and SIGINT are not ignored: they are handled"
    for helper in helpers:  # neither the job nor its template while it imported the agent's module
        assert not held & _pipes_of(helper.pid), (helper.cmdline(), held & _pipes_of(helper.pid))
        assert not at_import & _pipes_of(helper.pid), (helper.cmdline(), at_import & _pipes_of(helper.pid))
    await client.disconnect()


async def test_a_job_cannot_reach_the_hosts_fork_server_by_its_path(livekit_server, start_host, tmp_path):
    """As root, a job connecting to the fork server's socket would get a process outside its cgroup and tree:
    its folder is an empty one in the job's mount namespace."""
    import os
    import stat

    import psutil

    if os.geteuid() != 0:
        pytest.skip("a job has a mount namespace of its own only when the host runs as root")
    (tmp_path / "probe.yaml").write_text(f"name: probe\nentrypoint: {ROOT / 'tests/agents/fd_probe.py'}:entrypoint\n")
    host = start_host(livekit_server, tmp_path)
    await host.wait_log(r"registered agent probe")
    server = next(p for p in psutil.Process(host.proc.pid).children()
                  if "multiprocessing.forkserver" in " ".join(p.cmdline()))
    listening = [c.laddr for c in server.net_connections(kind="unix") if c.laddr]
    assert len(listening) == 1, listening
    # outside a job, the path is the fork server's socket (not connected to: a connection that sends nothing
    # ends multiprocessing's fork server)
    assert stat.S_ISSOCK(os.stat(listening[0]).st_mode)
    client = Client(livekit_server, new_room())
    client.listen("connect")
    await client.connect()
    await dispatch(livekit_server, "probe", client.room_name, listening[0])
    [result] = await client.wait_text("connect")
    assert result == "refused: No such file or directory", result
    await client.disconnect()


async def test_the_hosts_secrets_are_not_in_its_environment_block_or_command_line(livekit_server, start_host,
                                                                                  tmp_path):
    host = start_host(livekit_server, agents(tmp_path / "a"), args=("--http-token", "tok-on-the-command-line"))
    base = await host.http_base()
    await host.wait_log(r"registered agent hello-world")  # the API secret still signs its registration
    environ = Path(f"/proc/{host.proc.pid}/environ").read_bytes()
    cmdline = Path(f"/proc/{host.proc.pid}/cmdline").read_bytes()
    assert b"LIVEKIT_API_KEY=" in environ and b"run" in cmdline  # what is not secret is still there
    assert b"LIVEKIT_API_SECRET" not in environ and livekit_server.env()["LIVEKIT_API_SECRET"].encode() not in environ
    assert b"tok-on-the-command-line" not in cmdline + environ
    async with aiohttp.ClientSession() as session, session.get(
            base + "/status", headers={"Authorization": "Bearer tok-on-the-command-line"}) as r:
        assert r.status == 200
    await hello(livekit_server)


async def test_garbage_frames_end_the_job_with_one_line(livekit_server, start_host, tmp_path):
    host = start_host(livekit_server, agents(tmp_path / "a", noise="garbage_frames"))
    await host.wait_log(r"registered agent noise")
    await dispatch(livekit_server, "noise", new_room())
    await host.wait_log(r"job failed: the job process broke the protocol: .*agent=noise")
    assert len(re.findall(r"broke the protocol, killed", host.log())) == 1, host.log()
    assert "Traceback" not in host.log()
    await hello(livekit_server)


async def test_metadata_is_bounded_in_bytes_not_characters(livekit_server, start_host, tmp_path):
    from host.config.metadata import MAX_METADATA_BYTES

    host = start_host(livekit_server, agents(tmp_path / "a"))
    await host.wait_log(r"registered agent hello-world")
    emoji = "\U0001f600" * (MAX_METADATA_BYTES // 4 + 1)  # fewer characters than the bound, 4 bytes each
    room = new_room()
    await dispatch(livekit_server, "hello-world", room, emoji)
    await host.wait_log(rf"refused job: .*{MAX_METADATA_BYTES}.*room={room}")
    await hello(livekit_server)


async def test_a_job_handed_to_a_process_still_in_setup_never_stalls_the_host(livekit_server, start_host,
                                                                               tmp_path):
    mark = tmp_path / "setup-began"
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "slow.yaml").write_text(f"name: slow\nentrypoint: {ROOT / 'tests/agents/slow_setup.py'}:entrypoint\n"
                                      f"setup: {ROOT / 'tests/agents/slow_setup.py'}:setup\n"
                                      "processes: {idle: 1, init_timeout: 30s}\n")
    host = start_host(livekit_server, folder, extra_env={"SLOW_SETUP_MARK": str(mark)})
    base = await host.http_base()
    await host.wait_log(r"registered agent slow")
    for _ in range(400):
        if mark.exists():
            break
        await asyncio.sleep(0.05)
    assert mark.exists(), "the first process's setup never began"
    client = Client(livekit_server, new_room())
    client.listen("hello")
    await client.connect()
    metadata = "m" * 60_000  # a large job, queued to a process that reads nothing until its setup ends
    await dispatch(livekit_server, "slow", client.room_name, metadata)
    while "hello" not in client.texts:  # all through the setup, the host answers at once
        assert await healthz_ms(base) < 1000
        await asyncio.sleep(0.2)
    await host.wait_log(r"job running in process .*agent=slow")
    await client.disconnect()


async def test_a_reload_meeting_an_alias_bomb_or_a_fifo_keeps_the_agents_and_the_hosts_memory(
        livekit_server, start_host, tmp_path):
    import os

    import psutil

    host = start_host(livekit_server, agents(tmp_path / "a"), args=("--reload",))
    await host.wait_log(r"registered agent hello-world")
    await hello(livekit_server)
    before = psutil.Process(host.proc.pid).memory_info().rss
    big = '$$' * 60_000
    (tmp_path / "a" / "bomb.yaml").write_text(f'name: bomb\nentrypoint: m:f\nx: &big "{big}"\n'
                                              "refs: [" + ", ".join(["*big"] * 2000) + "]\n")
    await host.wait_log(r"reload \(.*bomb.yaml.*\) refused, still serving the previous configuration")
    (tmp_path / "a" / "bomb.yaml").unlink()
    os.mkfifo(tmp_path / "a" / "pipe.yaml")
    await host.wait_log(r"reload \(.*\) refused, still serving the previous configuration: .*pipe.yaml.*FIFO")
    assert psutil.Process(host.proc.pid).memory_info().rss - before < 100 * 1024 * 1024
    await hello(livekit_server)  # still served


async def test_a_job_cannot_write_the_hosts_code_its_python_or_its_state(livekit_server, start_host, tmp_path):
    """A job that could write a `.pth` file into site-packages, or agenthost's own code, would run code in every
    later Python process of the host (its import checks, its restarts); one that could write the host's state
    would forge its journal of calls. In the job's namespace they are read-only; the host still writes its state."""
    import json
    import os
    import sysconfig

    import host as host_package

    if os.geteuid() != 0:
        pytest.skip("a job has a mount namespace of its own only when the host runs as root")
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "writer.yaml").write_text(
        f"name: writer\nentrypoint: {ROOT / 'tests/agents/write_probe.py'}:entrypoint\n")
    state = tmp_path / "state"  # the fixture's state directory for the host
    host = start_host(livekit_server, tmp_path / "agents")
    await host.wait_log(r"registered agent writer")
    client = Client(livekit_server, new_room())
    client.listen("write")
    await client.connect()
    folders = [sysconfig.get_paths()["purelib"], os.path.dirname(host_package.__file__), str(state),
               str(tmp_path)]  # the last one, the job may write in
    await dispatch(livekit_server, "writer", client.room_name, json.dumps(folders))
    [result] = await client.wait_text("write")
    assert json.loads(result) == [str(tmp_path)], result
    await client.disconnect()
    assert state.is_dir() and any(state.iterdir())  # the host writes its journal there all the same
