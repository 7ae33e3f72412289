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

    async def next_report() -> JobVitals:
        for _ in range(500):  # one comes every second
            if host_end.poll():
                report = decode_job(host_end.recv_bytes())
                assert isinstance(report, JobVitals)
                return report
            await asyncio.sleep(0.01)
        raise AssertionError("no report within 5 s")

    try:
        idle = await next_report()
        time.sleep(0.4)  # the job blocks its loop
        late = [await next_report() for _ in range(2)]  # the second at the latest covers the block
    finally:
        task.cancel()
    assert all(r.participants == 2 and r.spans_dropped == 7 for r in (idle, *late))
    # the block began somewhere in a tick of the measure: it is seen as late by at least the block less a tick
    assert idle.loop_lag_ms < 100 and max(r.loop_lag_ms for r in late) >= (0.4 - vitals.TICK) * 1000 - 10, (idle, late)
