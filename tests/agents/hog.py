"""Test agent: joins, then allocates memory (and touches it) until the host stops it.

Its shutdown callback never returns, so the host has to kill it at `shutdown.timeout`.
"""

import asyncio

from host.context import JobContext

CHUNK = 20 * 1024 * 1024
CAP = 40  # never more than 800 MB, whatever the host does


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    hoard = []

    async def never_done(_reason: str) -> None:
        await asyncio.Event().wait()

    ctx.add_shutdown_callback(never_done)
    await ctx.room.local_participant.send_text("allocating", topic="status")
    while len(hoard) < CAP:
        hoard.append(b"\x01" * CHUNK)
        await asyncio.sleep(0.2)  # 100 MB/s: slower than one memory sample per 150 MB
    await asyncio.Event().wait()
