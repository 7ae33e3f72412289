"""The probe entrypoint of bench/job_bench.py, as an agenthost agent (see probe.yaml)."""

import asyncio


async def entrypoint(ctx):
    await ctx.connect()
    await ctx.room.local_participant.send_text("ready", topic="probe")
    if ctx.job.metadata == "stay":
        await asyncio.Event().wait()
    ctx.shutdown("probe answered")
