"""The quick start, run as written: its files are written where their titles say, and each of its commands
runs against a real server (the `pip install` lines excepted: tests reach no package index; this checkout is
installed already). A command this test does not know fails it, so the page cannot gain an untested one."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host.testing.cli import agenthost
from host.testing.harness import ROOT, Client
from host.testing.terminal import Terminal

PAGE = ROOT / "docs" / "quick-start.md"
FENCE = re.compile(r"^```(\w+)(?: title=\"([^\"]+)\")?\n(.*?)^```", re.M | re.S)
LIVEKIT_MODULE = ("from livekit.agents import AgentServer, JobContext, cli\n\nserver = AgentServer()\n\n\n"
                  "@server.rtc_session(agent_name='support')\nasync def session(ctx: JobContext) -> None:\n"
                  "    await ctx.connect()\n\n\nif __name__ == '__main__':\n    cli.run_app(server)\n")


def blocks() -> list[tuple[str, str | None, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in FENCE.finditer(PAGE.read_text())]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup.sh)")
async def test_the_quick_start_runs_as_written(livekit_server, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    env = {**os.environ, **livekit_server.env(), "AGENTHOST_STATE_DIR": str(tmp_path / "state")}
    found = blocks()
    for _lang, title, body in found:
        if title:
            (project / title).parent.mkdir(parents=True, exist_ok=True)
            (project / title).write_text(body)
    assert (project / "agents.d" / "hello.yaml").exists() and (project / "hello.py").exists()
    commands = [(i, line.strip()) for i, (lang, _t, body) in enumerate(found) if lang == "sh"
                for line in body.splitlines() if line.strip() and not line.startswith("pip install")]
    assert [c.split()[1] for _i, c in commands] == ["validate", "run", "dispatch", "console", "init"]
    host: subprocess.Popen[bytes] | None = None
    terminal = Terminal("quick-start")
    try:
        for index, command in commands:
            args = shlex.split(command.split("#")[0])[1:]
            if args[0] == "validate":
                done = agenthost(*args, cwd=project, env=env, timeout=120)
                expected = found[index + 1]
                assert expected[0] == "text" and done.stdout == expected[2], (done.stdout, done.stderr)
            elif args[0] == "run":
                log = (tmp_path / "host.log").open("wb")
                host = subprocess.Popen([sys.executable, "-m", "host", *args], cwd=project, env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
                await wait_file(tmp_path / "host.log", r"registered agent hello ")
            elif args[0] == "dispatch":
                room = args[args.index("--room") + 1]
                client = Client(livekit_server, room)
                client.listen("greeting")
                await client.connect()
                done = agenthost(*args, cwd=project, env=env, timeout=120)
                assert done.returncode == 0 and done.stdout.startswith("AD_"), done.stderr
                [text] = await client.wait_text("greeting")
                assert re.fullmatch(r"hello from AJ_\w+", text)
                await client.disconnect()
            elif args[0] == "console":
                exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in livekit_server.env().items())
                terminal.start(f"cd {shlex.quote(str(project))} && env {exports} {shlex.quote(sys.executable)} "
                               f"-m host {shlex.join(args)}")
                await terminal.wait_for(r"\[greeting\] agent-\S+ > hello from AJ_\w+")
                terminal.keys("/quit", "Enter")
                await terminal.wait_for(r"call ended\s+command exited 0")
            elif args[0] == "init":
                (project / "agent.py").write_text(LIVEKIT_MODULE)
                done = agenthost(*args, cwd=project, env=env, timeout=120)
                assert done.returncode == 0, done.stdout + done.stderr
                assert "dispatch: explicit" in (project / "agents.d" / "support.yaml").read_text()
            else:
                raise AssertionError(f"the quick start runs a command this test does not know: {command}")
    finally:
        terminal.close()
        if host is not None:
            host.terminate()
            host.wait(60)


async def wait_file(path: Path, pattern: str, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.2)):
        if re.search(pattern, path.read_text(errors="replace")):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout}s:\n{path.read_text(errors='replace')[-2000:]}")
