"""Test agent: joins, reports that it started, then ticks on topic "tick" until shut down."""

import asyncio

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text(f"started {ctx.job.id}", topic="status")
    n = 0
    while True:
        n += 1
        await ctx.room.local_participant.send_text(f"{ctx.job.id} {n}", topic="tick")
        await asyncio.sleep(0.2)
