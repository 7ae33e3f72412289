"""Test agent: makes its stderr non-blocking (as if to make the host's own writes fail), says one line, then
writes a line of 100,000 characters and floods its output with 100,000 lines and tells the caller on topic "status"."""

import fcntl
import os
import sys

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    fcntl.fcntl(2, fcntl.F_SETFL, fcntl.fcntl(2, fcntl.F_GETFL) | os.O_NONBLOCK)
    print("loud says hi", flush=True)
    sys.stdout.write("x" * 100_000 + "\n")  # one line longer than any the host keeps
    sys.stdout.flush()
    written = 0
    for i in range(100_000):
        try:
            os.write(2, f"flood line {i}\n".encode())
            written += 1
        except BlockingIOError:
            pass
    await ctx.room.local_participant.send_text(f"flooded {written}", topic="status")
