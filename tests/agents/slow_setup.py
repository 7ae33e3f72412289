"""Test agent: its setup takes 6 s (it touches the file SLOW_SETUP_MARK names as it begins), and its job says
hello on topic "hello"."""

import os
import time
from pathlib import Path

from host.context import JobContext


def setup(proc) -> None:
    Path(os.environ["SLOW_SETUP_MARK"]).touch()
    time.sleep(6)


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text("hello", topic="hello")
