"""Runs in a job process: how the job is doing, measured where it runs, reported to the host every second.

The event loop's lag is how late a timer fires: a loop busy with other work (or a process starved of CPU)
answers late, and a voice call hears it. Each report carries the worst lag of the last second, how many
others are in the job's room, how many of the job's spans its tracing could not deliver so far, and, where the
host may not read them, the job process's own pages.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from multiprocessing.connection import Connection

from host.job.pipe import send
from host.memory import own_pages
from host.wire.messages import VITALS_EVERY as EVERY
from host.wire.messages import JobVitals

TICK = 0.1  # seconds between two looks at the loop


def measures_itself() -> bool:
    """Whether the job says its own pages: only where its host may not read them, a host run as a user (its job
    processes are not dumpable: their /proc files are root's). Reading them costs a millisecond or two."""
    return os.geteuid() != 0


async def report(conn: Connection, participants: Callable[[], int], spans_dropped: Callable[[], int]) -> None:
    """Until cancelled: measure the loop's lag every TICK, report the worst of each EVERY."""
    measure = measures_itself()
    loop = asyncio.get_running_loop()
    worst, since = 0.0, loop.time()
    while True:
        asked = loop.time()
        await asyncio.sleep(TICK)
        now = loop.time()
        worst = max(worst, now - asked - TICK)
        if now - since >= EVERY:
            own = (own_pages() or 0) if measure else 0
            if not send(conn, JobVitals(round(max(0.0, worst) * 1000, 1), participants(), spans_dropped(), own)):
                return
            worst, since = 0.0, now


def start(conn: Connection, participants: Callable[[], int],
          spans_dropped: Callable[[], int] = lambda: 0) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(report(conn, participants, spans_dropped), name="job-vitals")
