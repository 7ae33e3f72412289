"""Moves the test run into a network namespace of its own, with a veth pair for media.

The WebRTC stack in the `livekit` wheel never gathers loopback candidates, so media
needs a non-loopback address. Inside a fresh namespace (root only) we bring `lo` up
and add a veth pair with test addresses; nothing sent there can leave the namespace.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

CLONE_NEWNET = 0x40000000
SERVER_IP = "198.18.0.1"
CLIENT_IP = "198.18.0.2"
NODE2_IP = "198.18.0.3"  # a second livekit-server node of a multi-node deployment
MARK = "AGENTHOST_TEST_NETNS"
ERROR: str | None = "not entered yet"


def enter() -> str | None:
    """Enter a new network namespace once per test run; None on success, else why not."""
    global ERROR
    ERROR = _enter()
    return ERROR


def _enter() -> str | None:
    if os.environ.get(MARK) == str(os.getpid()):
        return None
    if os.geteuid() != 0:
        return "the end-to-end tests need root to create a network namespace (unshare)"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        ["ip", "addr", "add", f"{SERVER_IP}/24", "dev", "v0"],
        ["ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "v1"],
        ["ip", "addr", "add", f"{NODE2_IP}/24", "dev", "v0"],
        ["ip", "link", "set", "v0", "up"],
        ["ip", "link", "set", "v1", "up"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()}"
    os.environ[MARK] = str(os.getpid())
    return None
