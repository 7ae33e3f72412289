"""Test agent whose module, at import (so inside its agent's template process), writes a pickle to the pipe it
finds: an object whose unpickling runs a shell command (writing the file named by HOSTILE_MARKER)."""

import gc
import os
from multiprocessing.connection import Connection

from host.context import JobContext


class RunsInWhoeverUnpickles:
    def __reduce__(self):
        return (os.system, (f"echo pwned > {os.environ['HOSTILE_MARKER']}",))


for _conn in [o for o in gc.get_objects() if isinstance(o, Connection) and not o.closed]:
    _conn.send(RunsInWhoeverUnpickles())


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
