"""Test agent: joins, says so, then the process dies without cleaning up."""

import os

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text("crashing", topic="status")
    os.abort()
