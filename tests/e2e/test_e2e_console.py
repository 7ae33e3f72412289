"""End to end: `agenthost console` in a real terminal (tmux), through a real server and host, and
`agenthost dev`, which starts and stops a local server of its own."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from host.testing.cli import agenthost
from host.testing.harness import ROOT, agent_file
from host.testing.terminal import Terminal

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup.sh)")
TEST_AGENTS = ROOT / "tests" / "agents"


def console_command(server, *args: str) -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in server.env().items())
    return f"cd {shlex.quote(str(ROOT))} && env {env} " + " ".join(
        shlex.quote(a) for a in [sys.executable, "-m", "host", "console", *args])


async def test_console_talks_to_a_livekit_agents_agent_and_quits(livekit_server, start_host, tmp_path):
    pytest.importorskip("livekit.agents")
    host = start_host(livekit_server, ROOT / "agents.d" / "voice.yaml")
    await host.wait_log(r"registered agent voice ")
    terminal = Terminal("console")
    try:
        terminal.start(console_command(livekit_server, "voice", "--metadata", json.dumps({"user": "ada"}),
                                       "--config", "agents.d/voice.yaml"))
        await terminal.wait_for(r"agent 'voice' joined room console-\w+ as agent-\S+; type to talk")
        terminal.keys("hello there", "Enter")
        screen = await terminal.wait_for(r"agent > echo: ada said: hello there \(job AJ_\w+\)")
        assert "(listening)" in screen or "(thinking)" in screen or "(speaking)" in screen, screen
        room = re.search(r"joined room (console-\w+)", screen).group(1)
        terminal.keys("C-c")  # once: the agent's session is asked to stop speaking
        await terminal.wait_for(r"\(asking the agent to stop; Ctrl-C again to quit, or /quit\)")
        await terminal.wait_for(r"(?m)^  \(interrupted\)$")
        terminal.keys("/quit", "Enter")
        await terminal.wait_for(r"call ended\s+command exited 0")
        await host.wait_log(rf"job ended .*room={room}")  # the room went with the call: the job ended by its policy
    finally:
        terminal.close()


async def test_console_shows_what_an_api_host_agent_sends_and_when_it_leaves(livekit_server, start_host,
                                                                             tmp_path):
    agents = tmp_path / "agents"
    agent_file(agents, "traced", f"entrypoint: {TEST_AGENTS / 'traced.py'}:entrypoint\n")
    agent_file(agents, "crasher", f"entrypoint: {TEST_AGENTS / 'crasher.py'}:entrypoint\n")
    host = start_host(livekit_server, agents, args=("--job-logs",))  # as `agenthost dev` runs it
    await host.wait_log(r"registered agent traced ")
    base = await host.http_base()
    terminal = Terminal("console-host")
    try:  # with the job's log lines inline: the host's own about it, and those its process wrote
        terminal.start(console_command(livekit_server, "traced", "--config", str(agents), "--logs", "--http",
                                       base.removeprefix("http://")))
        await terminal.wait_for(r"\[status\] agent-\S+ > hello")
        await terminal.wait_for(r"\[log\] INFO\s+job running in process \d+")
        await terminal.wait_for(r"\[log\] INFO\s+job started")
        terminal.keys("C-c")  # an `api: host` agent answers no interruption unless it registers one
        await terminal.wait_for(r"\(this agent takes no interruption\)")
        terminal.keys("C-d")
        await terminal.wait_for(r"call ended\s+command exited 0")
    finally:
        terminal.close()
    terminal = Terminal("console-crash")
    try:  # an agent whose process dies: the console says it left, and exits 1
        terminal.start(console_command(livekit_server, "crasher", "--config", str(agents)))
        await terminal.wait_for(r"\[status\] agent-\S+ > crashing")
        await terminal.wait_for(r"agent 'crasher' left the room: its job ended \(its host's log says why\)\s+"
                                r"command exited 1", timeout=90)
    finally:
        terminal.close()
    terminal = Terminal("console-crash-logs")
    try:  # with its log lines, the console says why: the host's line about the job's end
        terminal.start(console_command(livekit_server, "crasher", "--config", str(agents), "--logs", "--http",
                                       base.removeprefix("http://")))
        await terminal.wait_for(r"agent 'crasher' left the room: its job ended \(job failed: .+\)\s+"
                                r"command exited 1", timeout=90)
    finally:
        terminal.close()


async def test_console_refuses_bad_metadata_and_unknown_agents_and_says_when_no_host_serves(livekit_server,
                                                                                           tmp_path):
    r = agenthost("console", "voice", "--metadata", json.dumps({"user": 7}), "--config", "agents.d/voice.yaml",
                  env=livekit_server.env())
    assert r.returncode == 2 and "7 is not of type 'string'" in r.stderr, r.stderr
    r = agenthost("console", "nobody", "--config", "agents.d/voice.yaml", env=livekit_server.env())
    assert r.returncode == 2 and "no agent named 'nobody'" in r.stderr, r.stderr
    agents = tmp_path / "agents"
    agent_file(agents, "unserved", f"entrypoint: {TEST_AGENTS / 'traced.py'}:entrypoint\n")
    r = agenthost("console", "unserved", "--config", str(agents), "--timeout", "3s", env=livekit_server.env())
    assert r.returncode == 1
    assert "no agent 'unserved' joined the room within 3 s: no host took its dispatch, or its job failed before " \
           "it joined (the host's log says which). Is one serving it? Start one with `agenthost run` (or " \
           "`agenthost dev`, which also starts a local server)" in r.stderr


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


async def test_dev_starts_its_own_server_and_leaves_no_process_behind(tmp_path: Path):
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    log = tmp_path / "dev.log"
    # a network of its own, where nothing listens at the local default: dev must start a server
    script = (f"ip link set lo up && cd {shlex.quote(str(ROOT))} && exec env -u LIVEKIT_URL -u LIVEKIT_API_KEY "
              f"-u LIVEKIT_API_SECRET {shlex.quote(sys.executable)} -m host dev agents.d/hello-world.yaml "
              f"--http 127.0.0.1:0")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", script], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import asyncio

        text = ""
        for _ in range(300):
            text = log.read_text(errors="replace")
            if "registered agent hello-world" in text:
                break
            await asyncio.sleep(0.2)
        assert re.search(r"local LiveKit server \(dev mode, pid \d+\) at ws://127.0.0.1:7880", text), text
        assert "registered agent hello-world" in text, text
        descendants = _children(proc.pid)
        assert any("server" in " ".join(p.cmdline()) and "--dev" in p.cmdline() for p in descendants)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert "local LiveKit server stopped" in log.read_text()
        _gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("command", ["dispatch", "call", "console"])
async def test_wrong_keys_and_no_server_are_told_apart(livekit_server, tmp_path, command):
    """A server that refuses the keys, and an address where nothing answers, each say what to fix (exit 3)."""
    agent_file(tmp_path, "quiet", f"entrypoint: {ROOT / 'tests/agents/keeper.py'}:entrypoint\n")
    args = {"dispatch": ["dispatch", "quiet", "--room", "room-x", "--config", str(tmp_path)],
            "call": ["call", "quiet", "--say", "hello", "--config", str(tmp_path), "--timeout", "10s"],
            "console": ["console", "quiet", "--config", str(tmp_path), "--timeout", "10s"]}[command]

    def run(url: str, secret: str) -> subprocess.CompletedProcess[str]:
        return agenthost(*args, env={**livekit_server.env(), "LIVEKIT_URL": url, "LIVEKIT_API_SECRET": secret})

    wrong = run(livekit_server.url, "not-the-secret-of-this-server-0123456789")
    assert wrong.returncode == 3 and "Traceback" not in wrong.stderr, wrong.stderr
    assert "refused the API key and secret" in wrong.stderr and "LIVEKIT_API_SECRET" in wrong.stderr, wrong.stderr
    nobody = run("ws://127.0.0.1:9", livekit_server.env()["LIVEKIT_API_SECRET"])
    assert nobody.returncode == 3 and "nothing answers at" in nobody.stderr, nobody.stderr


def test_ctrl_c_twice_quits_while_the_console_still_waits_to_join(tmp_path):
    """Twice Ctrl-C quits at once, even while the console waits for a server that never answers (a wait of
    its --timeout otherwise): the user's quit, exit 0."""
    agent_file(tmp_path, "quiet", f"entrypoint: {TEST_AGENTS / 'keeper.py'}:entrypoint\n")
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    env = {**os.environ, "LIVEKIT_URL": f"ws://127.0.0.1:{port}", "LIVEKIT_API_KEY": "devkey",
           "LIVEKIT_API_SECRET": "secret-of-at-least-32-characters-x"}
    proc = subprocess.Popen([sys.executable, "-m", "host", "console", "quiet", "--config", str(tmp_path),
                             "--timeout", "300s"], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        silent.settimeout(60)
        connection, _ = silent.accept()  # the console is joining: it waits for the server's answer
        proc.send_signal(signal.SIGINT)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first is taken (two at once would be one signal)
        assert "Ctrl-C again to quit" in first, first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # well before its 300 s wait to join would end
        connection.close()
        assert proc.returncode == 0, (out, err)
        assert "call ended" in out and "Traceback" not in err, (out, err)
    finally:
        silent.close()
        if proc.poll() is None:
            proc.kill()
