"""Whether a template may fork job processes from its image once the agent's code is imported: a fork is only
safe from a process with one thread, a connection opened at import would be shared by every job process, and the
host watches each forked process through a pidfd (Linux 5.3 and later)."""

from __future__ import annotations

import contextlib
import os
import threading


def open_sockets() -> set[int]:
    """The descriptors of this process that are sockets."""
    found = set()
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    found.add(int(name))
    return found


def why_not_fork_safe(sockets_before: set[int]) -> str | None:
    """Why this process may not fork job processes (what importing the agent's code did), or None."""
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        return f"importing the agent's code started threads: {', '.join(threads)}"
    if open_sockets() - sockets_before:
        return "importing the agent's code opened a network connection"
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError) as exc:
        return f"this system has no pidfd: {exc}"
    return None
