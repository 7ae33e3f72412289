"""Test agent: a shutdown callback that never finishes."""

import asyncio

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    async def hang() -> None:
        await asyncio.sleep(3600)

    ctx.add_shutdown_callback(hang)
    await ctx.connect()
    await ctx.room.local_participant.send_text("ready", topic="status")
