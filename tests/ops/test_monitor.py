"""The resource monitor: memory verdicts as a pure function, and sampling real processes."""

from __future__ import annotations

import subprocess
import sys

from host.config.definitions import Limits
from host.ops.monitor import MEMORY_WARN_EVERY, ResourceMonitor, Sampled, memory_verdict
from host.ops.resources import CpuLoad


def test_memory_verdicts():
    limits = Limits(max_jobs=0, memory_warn_mb=100, memory_limit_mb=200)
    assert memory_verdict(50, limits, None, 0) is None
    assert memory_verdict(150, limits, None, 0) == "warn"
    assert memory_verdict(150, limits, 10.0, 10.0 + MEMORY_WARN_EVERY - 1) is None  # rate-limited
    assert memory_verdict(150, limits, 10.0, 10.0 + MEMORY_WARN_EVERY) == "warn"
    assert memory_verdict(250, limits, 10.0, 11.0) == "limit"  # a limit is never rate-limited
    assert memory_verdict(10_000, Limits(0, 0, 0), None, 0) is None  # 0 turns both off


class Jobs:
    def __init__(self, sampled):
        self._sampled = sampled
        self.failed = []
        self.load_reports = 0

    def sampled(self):
        return self._sampled

    def fail(self, job_id, reason, message):
        self.failed.append((job_id, reason, message))

    async def report_load_all(self):
        self.load_reports += 1


async def test_a_process_over_its_limit_is_failed_and_one_over_its_warning_is_warned_once(caplog):
    hog = subprocess.Popen([sys.executable, "-c", "import time; x = b'1' * (80 * 1024 * 1024); "
                            "print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout is not None and hog.stdout.readline().strip() == "ready"  # its 80 MB are resident
        jobs = Jobs([Sampled("AJ_limit", hog.pid, Limits(0, 10, 50), {"job_id": "AJ_limit"}),
                     Sampled("AJ_warn", hog.pid, Limits(0, 10, 0), {"job_id": "AJ_warn"}),
                     Sampled("AJ_gone", 2 ** 22 + 1, Limits(0, 10, 50), {"job_id": "AJ_gone"})])
        monitor = ResourceMonitor(jobs, CpuLoad(sampler=lambda: 0.0))
        await monitor.sample_memory(now=1000.0)
        assert monitor.memory["AJ_limit"] > 60 * 1024 * 1024
        assert "AJ_gone" not in monitor.memory  # no such process: no figure, no verdict
        assert [(j, r) for j, r, _ in jobs.failed][:1] == [("AJ_limit", "memory_limit")]
        assert "limits.memory_limit_mb 50 MB" in jobs.failed[0][2]
        assert all(j == "AJ_limit" for j, _, _ in jobs.failed)
        await monitor.sample_memory(now=1001.0)
        assert caplog.text.count("above limits.memory_warn_mb (10 MB)") == 1
    finally:
        hog.kill()
        hog.wait()
