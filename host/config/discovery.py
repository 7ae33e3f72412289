"""Which files a set of path arguments names, in load order: a folder's agent files (leftovers of editors
skipped), and a problem for every entry that cannot be one (a link out of the folder, a broken link, a
directory, a FIFO...), so no agent is ever silently missing."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable

from host.config.yamlsource import display_path
from host.errors import Problem

DEFAULT_PATH = "agents.d"
SKIPPED = (".*", "*~", "*.swp", "*.bak", "*.tmp", "#*#")


def is_agent_file(name: str) -> bool:
    if any(fnmatch.fnmatch(name, pat) for pat in SKIPPED):
        return False
    return name.endswith((".yaml", ".yml"))


def discover(paths: Iterable[str]) -> tuple[list[str], list[Problem]]:
    """The files a set of path arguments names, in load order."""
    files: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if is_agent_file(n))
            inside = os.path.realpath(path)
            for name in names:
                full = os.path.join(path, name)
                if os.path.isfile(full) and os.path.islink(full) and not _below(os.path.realpath(full), inside):
                    # never read: what the file holds would be echoed in the problems found in it
                    problems.append(Problem(display_path(full), 0, 0, "$", _link_outside(full)))
                elif os.path.isfile(full):
                    files.append(full)
                elif os.path.islink(full) and not os.path.exists(full):
                    problems.append(Problem(display_path(full), 0, 0, "$", _broken_link(full)))
                else:  # a directory, a FIFO, a socket, a device, or a link to one: never silently no agent
                    problems.append(Problem(display_path(full), 0, 0, "$", _not_a_file(full)))
        elif os.path.isfile(path):
            files.append(path)
        else:
            problems.append(Problem(display_path(path), 0, 0, "$", "no such file or directory" + (
                f" (write one from a livekit-agents module with `agenthost init agent.py`, or create "
                f"{DEFAULT_PATH}/NAME.yaml by hand)" if os.path.normpath(path) == DEFAULT_PATH else "")))
    seen: set[str] = set()
    unique = []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def _below(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _link_outside(path: str) -> str:
    return (f"a link to {os.path.realpath(path)}, outside the agent folder: not read (give that file or its folder "
            "as a path, or link the folder)")


def _not_a_file(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    return f"{kind}, not an agent file: agent files must be regular files (rename it or move it out)"


def _broken_link(path: str) -> str:
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop (the link never reaches a file)"
        return f"a symbolic link to {os.readlink(path)!r}, which does not exist"
    return f"a symbolic link to {os.readlink(path)!r}, which is not a file"
