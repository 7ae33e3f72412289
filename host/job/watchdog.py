"""A job process's watch on its host: when the host is gone, the job ends within its shutdown timeout."""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable

from host.tree import descendants, end_all

logger = logging.getLogger("agenthost.job")


class HostWatchdog(threading.Thread):
    """Ends this process when the host is gone (killed with SIGKILL, say): at once when no job runs, else
    after asking the job to shut down and giving it its shutdown timeout. Nothing is left behind."""

    def __init__(self, host_pid: int, timeout: float) -> None:
        super().__init__(name="agenthost-watchdog", daemon=True)
        self.host_pid = host_pid
        self.timeout = timeout
        self.on_host_gone: Callable[[], object] | None = None  # set while a job runs: asks it to shut down

    def run(self) -> None:
        self._wait_for_host_exit()
        hook = self.on_host_gone
        logger.warning("the host (pid %d) is gone; this job process ends%s", self.host_pid,
                       f" within its shutdown timeout ({self.timeout:g}s)" if hook else "")
        if hook is not None:
            hook()
            time.sleep(self.timeout)
        end_all(descendants(os.getpid()), grace=0.5)
        os._exit(70)

    def _wait_for_host_exit(self) -> None:
        try:
            fd = os.pidfd_open(self.host_pid)
        except (AttributeError, OSError):
            while True:  # no pidfd (an old kernel): poll
                try:
                    os.kill(self.host_pid, 0)
                except ProcessLookupError:
                    return
                except PermissionError:
                    pass
                time.sleep(0.5)
        select.select([fd], [], [])  # readable once the host has exited
