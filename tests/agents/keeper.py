"""Test agent: joins, says which job it is and which call it takes over (its ctx and its participant attribute)
on topic "status", then ticks on "tick" until shut down."""

import asyncio

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    attribute = ctx.room.local_participant.attributes.get("agenthost.recovery_of")
    await ctx.room.local_participant.send_text(f"started {ctx.job.id} recovery_of={ctx.recovery_of} "
                                               f"attribute={attribute}", topic="status")
    while True:
        await ctx.room.local_participant.send_text(ctx.job.id, topic="tick")
        await asyncio.sleep(0.2)
