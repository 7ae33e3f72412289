"""A real terminal for tests of terminal UIs (`agenthost top`, `agenthost console`): a tmux server of the
test's own, driven by send-keys and read by capture-pane."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess


class Terminal:
    """A tmux server of the test's own, with one window of 160x45."""

    def __init__(self, name: str) -> None:
        self.socket = f"agenthost-test-{os.getpid()}-{name}"

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout

    def start(self, command: str) -> None:
        # the shell says how the command ended, then stays, so the screen can be read after it
        self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "45",
                  f"{command}; echo \"command exited $?\"; sleep 600")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    async def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text):
                return text
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen after {timeout}s:\n{text}")
            await asyncio.sleep(0.2)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
