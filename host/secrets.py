"""Keeping the host's secrets out of what other processes can read: its environment block and command line.

/proc/PID/cmdline is readable by every user, /proc/PID/environ by the same user; taking a variable out of
`os.environ` does not erase the block the process started with. So `agenthost run`, when it was started with
a secret in either (LIVEKIT_API_SECRET, AGENTHOST_HTTP_TOKEN, AGENTHOST_REDIS_URL (its password), --api-secret,
--http-token, --redis), starts itself
again at once (exec: the same pid, before it has done anything) without them. The secrets cross the exec in an
anonymous memory file whose descriptor the new image reads and closes first thing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence

SECRET_VARIABLES = {"LIVEKIT_API_SECRET": "api_secret", "AGENTHOST_HTTP_TOKEN": "http_token",
                    "AGENTHOST_REDIS_URL": "redis_url"}
SECRET_OPTIONS = {"--api-secret": "api_secret", "--http-token": "http_token", "--redis": "redis_url"}
FD_VARIABLE = "AGENTHOST_SECRETS_FD"
MAX_SECRETS = 64 * 1024


def strip_secret_options(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """`argv` without the secret options (`--api-secret X` or `--api-secret=X`), and their values by name."""
    kept: list[str] = []
    found: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg == "--":
            kept.append(arg)
            kept.extend(args)
            break
        option, eq, value = arg.partition("=")
        if option in SECRET_OPTIONS:
            if not eq:
                value = next(args, "")
            found[SECRET_OPTIONS[option]] = value
            continue
        kept.append(arg)
    return kept, found


def _initial_environment() -> set[str]:
    """The names in this process's initial environment block (what /proc/self/environ shows)."""
    try:
        with open("/proc/self/environ", "rb") as fh:
            block = fh.read()
    except OSError:
        return set()
    return {entry.split(b"=", 1)[0].decode("utf-8", "replace") for entry in block.split(b"\0") if entry}


def restart_without_secrets(values: dict[str, str | None]) -> None:
    """Exec this process again without its secrets in its environment block and command line, if they are
    there (`values`: the secrets as parsed, by name). Returns only when there is nothing to hide (or no way to:
    not Linux)."""
    argv, on_command_line = strip_secret_options(sys.orig_argv[1:])
    in_environment = _initial_environment() & set(SECRET_VARIABLES)
    if not (on_command_line or in_environment) or not hasattr(os, "memfd_create"):
        return
    fd = os.memfd_create("agenthost-secrets", 0)  # no CLOEXEC: the new image reads it
    os.write(fd, json.dumps({k: v for k, v in values.items() if v}).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    env[FD_VARIABLE] = str(fd)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)


def take_secrets() -> dict[str, str] | None:
    """In the image `restart_without_secrets` started: the secrets it passed (the descriptor is closed);
    None in any other process."""
    text = os.environ.pop(FD_VARIABLE, None)
    if text is None or not text.isdigit():
        return None
    fd = int(text)
    try:
        data = os.read(fd, MAX_SECRETS)
        os.close(fd)
        values = json.loads(data)
    except (OSError, ValueError):
        return None
    return {k: v for k, v in values.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(values, dict) else None
