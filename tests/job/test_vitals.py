"""A job's own measure of its event loop, reported to the host."""

from __future__ import annotations

import asyncio
import time
from multiprocessing import Pipe

from host.job import vitals
from host.wire.messages import JobVitals
from host.wire.protocol import decode_job


async def test_a_blocked_loop_is_reported_late_and_an_idle_one_on_time():
    host_end, job_end = Pipe()
    people = 2
    task = vitals.start(job_end, lambda: people, lambda: 7)
    await asyncio.sleep(1.2)  # one report of an idle loop
    time.sleep(0.4)  # the job blocks its loop
    await asyncio.sleep(1.2)
    task.cancel()
    reports = []
    while host_end.poll():
        reports.append(decode_job(host_end.recv_bytes()))
    assert all(isinstance(r, JobVitals) and r.participants == 2 and r.spans_dropped == 7 for r in reports)
    lags = [r.loop_lag_ms for r in reports if isinstance(r, JobVitals)]
    assert len(lags) >= 2 and lags[0] < 100 and max(lags) >= 350, lags
