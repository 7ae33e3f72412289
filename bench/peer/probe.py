"""The probe entrypoint of bench/job_bench.py, as an agenthost agent (see probe.yaml)."""

import asyncio
import time


async def entrypoint(ctx):
    started = time.time()  # when the entrypoint runs, and when the job is connected: the burst's figures
    await ctx.connect()
    await ctx.room.local_participant.send_text(f"ready {started} {time.time()}", topic="probe")
    if ctx.job.metadata == "stay":
        await asyncio.Event().wait()
    ctx.shutdown("probe answered")
