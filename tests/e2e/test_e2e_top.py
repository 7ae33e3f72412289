"""End to end: `agenthost top` in a real terminal (tmux) against a real host with real jobs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from host.testing.harness import ROOT, job_in_new_room
from host.testing.terminal import Terminal

AGENTS = ROOT / "tests" / "agents"
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup.sh)")


def top_command(base: str, *extra: str) -> str:
    http = base.removeprefix("http://")
    return " ".join(shlex.quote(a) for a in [sys.executable, "-m", "host", "top", "--http", http, *extra])


async def test_top_shows_live_jobs_with_their_cpu_sorts_filters_and_quits(livekit_server, start_host, tmp_path):
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "hog.yaml").write_text(f"name: hog\nentrypoint: {AGENTS / 'spinner.py'}:entrypoint\n")
    (folder / "calm.yaml").write_text(f"name: calm\nentrypoint: {AGENTS / 'holder.py'}:entrypoint\n")
    host = start_host(livekit_server, folder, args=("--http-token", "top-secret", "--load-threshold", "0"))
    base = await host.http_base()
    await host.wait_log(r"registered agent hog")
    await host.wait_log(r"registered agent calm")
    hog = await job_in_new_room(livekit_server, "hog", "status")
    calm = await job_in_new_room(livekit_server, "calm", "tick")
    terminal = Terminal("top")
    try:
        terminal.start(f"cd {shlex.quote(str(ROOT))} && {top_command(base, '--http-token', 'top-secret')}")
        screen = await terminal.wait_for(r"AJ_\S+\s+hog\s+room-\S+\s+running\s+\S+\s+(\d+)%", timeout=40)
        hog_cpu = int(re.search(r"AJ_\S+\s+hog\s+room-\S+\s+running\s+\S+\s+(\d+)%", screen).group(1))
        assert hog_cpu >= 30, screen  # its child keeps a CPU busy
        assert re.search(r"AJ_\S+\s+calm\s+room-\S+\s+running", screen), screen
        assert "sort: cpu" in screen and "limits: " in screen
        lines = [line.split() for line in screen.splitlines() if line.strip().startswith("AJ_")]
        assert [row[1] for row in lines] == ["hog", "calm"], screen  # the busiest first
        terminal.keys("f")
        screen = await terminal.wait_for(r"agent: calm")
        await terminal.wait_for(r"AJ_\S+\s+calm")
        assert not re.search(r"AJ_\S+\s+hog", terminal.screen())
        terminal.keys("m")
        await terminal.wait_for(r"sort: memory")
        terminal.keys("q")
        await terminal.wait_for(r"command exited 0")
    finally:
        terminal.close()
        await hog.disconnect()
        await calm.disconnect()


async def test_top_says_when_the_token_is_wrong_or_no_host_answers(livekit_server, start_host, tmp_path):
    folder = tmp_path / "agents"
    folder.mkdir()
    (folder / "calm.yaml").write_text(f"name: calm\nentrypoint: {AGENTS / 'holder.py'}:entrypoint\n")
    host = start_host(livekit_server, folder, args=("--http-token", "right"))
    base = await host.http_base()
    wrong = subprocess.run(shlex.split(top_command(base, "--http-token", "wrong")), capture_output=True, text=True,
                           timeout=30, cwd=ROOT)
    assert wrong.returncode == 3
    assert wrong.stderr == (f"agenthost: cannot read {base}/status: HTTP 401 Unauthorized "
                            "(wrong or missing --http-token)\n")
    nobody = subprocess.run(shlex.split(top_command("http://127.0.0.1:9")), capture_output=True, text=True,
                            timeout=30, cwd=ROOT)
    assert nobody.returncode == 3 and nobody.stderr.startswith("agenthost: cannot read http://127.0.0.1:9/status: ")
