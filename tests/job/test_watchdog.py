"""A job process's watch on its host: when the host process is gone, the job is asked to shut down, given its
shutdown timeout, and the process ends with what it started."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import os, sys, time
from host.job.watchdog import HostWatchdog
dog = HostWatchdog(int(sys.argv[1]), timeout=0.2)
dog.on_host_gone = lambda: print("asked to shut down", flush=True)
dog.start()
print("watching", flush=True)
time.sleep(60)
"""


def test_the_job_process_ends_soon_after_its_host_is_gone():
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    job = subprocess.Popen([sys.executable, "-c", CHILD, str(host.pid)], stdout=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().strip() == "watching"
        host.kill()
        host.wait()
        assert job.stdout.readline().strip() == "asked to shut down"
        assert job.wait(timeout=30) == 70  # after its shutdown timeout, not the 60 s it was sleeping
    finally:
        for p in (host, job):
            if p.poll() is None:
                p.kill()
                p.wait()
