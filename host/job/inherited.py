"""What a process started by multiprocessing's fork server inherits from the host, and lets go of.

The fork server hands each process it starts two of the host's descriptors: the write end of the pipe the
fork server watches to know the host is alive, and the host's resource tracker's pipe. Agent code runs in
these processes (a template imports it; a job runs it): with the first it could stop the fork server that
every agent's processes come from (one byte on it), with the second grow the tracker without bound. Neither
is needed here: a template forks by itself, and a job that uses multiprocessing gets a fork server and a
resource tracker of its own, started on first use, below the job and ended with it.
"""

from __future__ import annotations

import contextlib
import os
from multiprocessing import forkserver, resource_tracker
from typing import Any


def let_go_of_the_hosts_descriptors() -> None:
    """Close the fork server's and the resource tracker's descriptors and forget their addresses, so that the
    next use starts this process's own."""
    server: Any = forkserver._forkserver  # their private state: the stubs do not describe it
    tracker: Any = resource_tracker._resource_tracker
    for fd in (server._forkserver_alive_fd, tracker._fd):  # not _inherited_fds: this process's own pipe is one
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    server._forkserver_alive_fd = None
    server._forkserver_address = None
    server._forkserver_pid = None
    tracker._fd = None
    tracker._pid = None
