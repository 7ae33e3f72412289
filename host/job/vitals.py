"""Runs in a job process: how the job is doing, measured where it runs, reported to the host every second.

The event loop's lag is how late a timer fires: a loop busy with other work (or a process starved of CPU)
answers late, and a voice call hears it. Each report carries the worst lag of the last second, how many
others are in the job's room, and how many of the job's spans its tracing could not deliver so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from multiprocessing.connection import Connection

from host.job.pipe import send
from host.wire.messages import VITALS_EVERY as EVERY
from host.wire.messages import JobVitals

TICK = 0.1  # seconds between two looks at the loop


async def report(conn: Connection, participants: Callable[[], int], spans_dropped: Callable[[], int]) -> None:
    """Until cancelled: measure the loop's lag every TICK, report the worst of each EVERY."""
    loop = asyncio.get_running_loop()
    worst, since = 0.0, loop.time()
    while True:
        asked = loop.time()
        await asyncio.sleep(TICK)
        now = loop.time()
        worst = max(worst, now - asked - TICK)
        if now - since >= EVERY:
            if not send(conn, JobVitals(round(max(0.0, worst) * 1000, 1), participants(), spans_dropped())):
                return
            worst, since = 0.0, now


def start(conn: Connection, participants: Callable[[], int],
          spans_dropped: Callable[[], int] = lambda: 0) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(report(conn, participants, spans_dropped), name="job-vitals")
