"""Test agents that attack the host through the pipe every job process has to it, as agent code could: they
find its Connection among the process's objects and write what they like to it."""

import asyncio
import gc
import os
import struct
from multiprocessing.connection import Connection

from host.context import JobContext


class RunsInWhoeverUnpickles:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def host_pipes() -> list[Connection]:
    return [o for o in gc.get_objects() if isinstance(o, Connection) and not o.closed]


async def pickle_to_the_host(ctx: JobContext) -> None:
    """Sends an object whose unpickling runs a shell command (the marker file's path is the job's metadata)."""
    for conn in host_pipes():
        conn.send(RunsInWhoeverUnpickles(ctx.job.metadata))
    await asyncio.Event().wait()


async def half_a_frame(ctx: JobContext) -> None:
    """Announces a frame of 1,000 bytes and sends 10 of them, then waits."""
    for conn in host_pipes():
        os.write(conn.fileno(), struct.pack("!i", 1000) + b"0123456789")
    await asyncio.Event().wait()


async def a_gigabyte_frame(ctx: JobContext) -> None:
    """Announces a frame of 1 GB."""
    for conn in host_pipes():
        os.write(conn.fileno(), struct.pack("!i", 1 << 30) + b"x" * 100)
    await asyncio.Event().wait()


async def garbage_frames(ctx: JobContext) -> None:
    """Writes 3,000 well-framed messages that are not messages."""
    for conn in host_pipes():
        os.write(conn.fileno(), (struct.pack("!i", 9) + b"\x80\x04garbage") * 3000)
    await asyncio.Event().wait()
