"""Test agent: asks for its own shutdown, then finishes its work; whether that work still reaches the room
depends on drain (metadata "drain": ctx.shutdown(drain=True); otherwise the agent file's default)."""

import asyncio

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.wait_for_participant()
    if ctx.job.metadata == "drain":
        ctx.shutdown("done", drain=True)
    else:
        ctx.shutdown("done")
    await asyncio.sleep(0.3)
    await ctx.room.local_participant.send_text("finished", topic="drain")
