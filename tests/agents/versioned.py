"""Test agent for versions: says which version it is (its file's `env: {VERSION: ...}`) on topic "version".
MODE=quick returns at once without joining (a short job); MODE=raise fails before joining (a bad canary)."""

import os

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    mode = os.environ.get("MODE", "greet")
    if mode == "raise":
        raise RuntimeError("the canary's bug")
    if mode == "quick":
        return
    await ctx.connect()
    await ctx.room.local_participant.send_text(os.environ["VERSION"], topic="version")
