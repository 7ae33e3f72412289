"""Test agent: joins, starts a child process that keeps one CPU busy, and says so; the child ends with the job."""

import subprocess
import sys

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    ctx.add_shutdown_callback(lambda: spinner.kill())
    await ctx.room.local_participant.send_text("spinning", topic="status")
