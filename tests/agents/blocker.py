"""Test agent: joins, says so, then keeps blocking its own event loop (0.3 s in every 0.5 s), as a job doing
CPU work on its loop would: its timers fire late, and a voice call would hear it."""

import asyncio
import time

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text("blocking", topic="status")
    while True:
        time.sleep(0.3)
        await asyncio.sleep(0.2)
