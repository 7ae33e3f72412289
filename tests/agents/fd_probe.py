"""Test agent: reports the pipes and sockets its process holds (on topic "fds"), as /proc/self/fd shows them."""

import json
import os

from host.context import JobContext


def held(pid: int | str = "self") -> list[str]:
    """The pipes and sockets a process holds (the test reads the fork server's with it too)."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(("pipe:", "socket:")):
            targets.append(target)
    return targets


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text(json.dumps(held()), topic="fds")
