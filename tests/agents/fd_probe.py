"""Test agent: reports the pipes and sockets its process holds (on topic "fds"), as /proc/self/fd shows them,
now and when its module was imported (in its agent's template, whose image the job process is forked from).
Given a socket path as its metadata, it tries to connect to it and says how that went (on topic "connect")."""

import json
import os
import socket

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


AT_IMPORT = held()  # what agent code could use at import
IMPORTED_BY = os.getpid()


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text(json.dumps({"now": held(), "at_import": AT_IMPORT,
                                                           "imported_by": IMPORTED_BY}), topic="fds")
    if ctx.job.metadata:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(ctx.job.metadata)
                result = "connected"
            except OSError as exc:
                result = f"refused: {exc.strerror}"
        await ctx.room.local_participant.send_text(result, topic="connect")
