"""Test agent: starts processes that would outlive it (one ignores SIGTERM, one calls setsid, one is a
grandchild whose parent exits) and says their pids on topic "pids"; then ticks until shut down."""

import asyncio
import subprocess
import sys

from host.context import JobContext

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
# the middle process starts a grandchild and exits at once: the grandchild is orphaned
ORPHANER = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid, flush=True)")


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN])
    detached = subprocess.Popen(["sleep", "600"], start_new_session=True)
    middle = subprocess.run([sys.executable, "-c", ORPHANER], capture_output=True, text=True, check=True)
    pids = [stubborn.pid, detached.pid, int(middle.stdout.strip())]
    await ctx.room.local_participant.send_text(" ".join(map(str, pids)), topic="pids")
    while True:
        await asyncio.sleep(0.2)
        await ctx.room.local_participant.send_text("tick", topic="tick")
