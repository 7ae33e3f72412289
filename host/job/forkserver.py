"""Imported by the fork server only (it is the first module it preloads), never by the host.

A stop signal sent to the whole process group (Ctrl-C in a terminal, systemd's default KillMode) must
reach only the host, which drains. The fork server ignores it, and so do the job processes it forks
(they inherit this, and set it again themselves); the fork server ends when the host does.

It is not dumpable (host.sandbox): a job process cannot read it or attach to it. It started with a safe import
path (host.sandbox.SAFE_PATH), which the processes it forks do not keep in their environment.
"""

import os
import signal

from host.sandbox import SAFE_PATH, SAFE_PATH_MARK, not_dumpable

not_dumpable()

if os.environ.pop(SAFE_PATH_MARK, None):  # it started with a safe import path; the agents' programs do not
    os.environ.pop(SAFE_PATH, None)

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
