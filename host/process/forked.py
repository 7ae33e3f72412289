"""Whether a template's Forked message can be believed: agent code runs in the template, so the pid it names is
believed only as the pidfd it sends says, of a child of the template's own, and the pipe only if it is a socket."""

from __future__ import annotations

import os
import stat


def forked_mismatch(pid: int, fd: int, pidfd: int, parent: int) -> str | None:
    """Why a Forked message cannot be believed: its pidfd is not a process's or names another pid, that process
    is not a child of `parent` (the template: a template naming the host, or another agent's job, would have
    the host confine and later kill it), or the pipe is not a socket; None when it can."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        is_socket = stat.S_ISSOCK(os.fstat(fd).st_mode)
    except (OSError, ValueError) as exc:
        return f"a Forked message whose descriptors cannot be read: {exc}"
    if fields.get("Pid", "").strip() != str(pid):
        return f"a Forked process {pid} whose pidfd names {fields.get('Pid', 'no process').strip()}"
    if parent_of(pid) != parent:  # the pidfd holds the pid: it is this process's, even if it exited meanwhile
        return f"a Forked process {pid} that is not the template's child"
    if not is_socket:
        return f"a Forked process {pid} whose pipe is not a socket"
    return None


def parent_of(pid: int) -> int | None:
    """The parent of process `pid` (None: it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
