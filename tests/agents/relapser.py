"""Test agent: joins and says which job it is and which call it takes over (on topic "status"). The first job
of a call then outruns its memory limit (the kernel kills it); a job that takes a call over ticks until shut
down. With the metadata "always", every job kills itself with SIGKILL instead: a crash loop."""

import asyncio
import os
import signal

from host.context import JobContext

CHUNK = 20 * 1024 * 1024
CAP = 40  # never more than 800 MB, whatever the host does


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text(f"started {ctx.job.id} recovery_of={ctx.recovery_of}",
                                               topic="status")
    if ctx.job.metadata == "always":
        await asyncio.sleep(0.5)  # its text on its way
        os.kill(os.getpid(), signal.SIGKILL)
    hoard = []
    while ctx.recovery_of is None and len(hoard) < CAP:
        hoard.append(b"\x01" * CHUNK)
        await asyncio.sleep(0.05)
    while True:
        await ctx.room.local_participant.send_text(ctx.job.id, topic="tick")
        await asyncio.sleep(0.2)
