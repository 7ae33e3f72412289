"""Test agent: runs a program and reports which signals that program starts out ignoring (on topic "signals")."""

import subprocess

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    status = subprocess.run(["grep", "^SigIgn", "/proc/self/status"], capture_output=True, text=True, check=True)
    await ctx.room.local_participant.send_text(status.stdout.split()[1], topic="signals")
