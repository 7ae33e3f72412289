"""Test agent: given a JSON list of folders as its metadata, tries to write a file in each and says, on topic
"write", which it could write in (`[]`: none)."""

import json
import os

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    written = []
    for folder in json.loads(ctx.job.metadata):
        path = os.path.join(folder, f"agenthost-write-probe-{os.getpid()}.pth")
        try:
            with open(path, "w") as fh:
                fh.write("")
        except OSError:
            continue
        written.append(folder)
        os.unlink(path)
    await ctx.room.local_participant.send_text(json.dumps(written), topic="write")
