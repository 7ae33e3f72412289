"""Test agent: starts a process that leaves its tree (a double fork with the middle process gone, then
setsid, and the job process stops being its subreaper), reports its pid on topic "escaped", and waits."""

import asyncio
import ctypes
import subprocess
import sys

from host.context import JobContext

PR_SET_CHILD_SUBREAPER = 36


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)  # its orphans go to init, out of its tree
    start = ("import subprocess; p = subprocess.Popen(['setsid', 'sleep', '600'], stdin=subprocess.DEVNULL, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)")
    middle = subprocess.run([sys.executable, "-c", start], capture_output=True, text=True, check=True)
    await ctx.room.local_participant.send_text(middle.stdout.strip(), topic="escaped")
    await asyncio.Event().wait()
