"""Post-processing and cleanup: a shutdown hook that saves the job's state."""

from __future__ import annotations

import json
import os
import time

from livekit import rtc

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    seen: list[str] = []

    @ctx.room.on("participant_connected")
    def on_join(p: rtc.RemoteParticipant) -> None:
        seen.append(p.identity)

    async def my_shutdown_hook(reason: str) -> None:
        folder = os.environ.get("SAVED_STATE_DIR", "state")  # the agent's own (the host's state is not its to write)
        os.makedirs(folder, exist_ok=True)
        state = {"job_id": ctx.job.id, "room": ctx.job.room.name, "reason": reason,
                 "participants": sorted(set(seen)), "saved_at": time.time()}
        with open(os.path.join(folder, f"{ctx.job.room.name}.json"), "w", encoding="utf-8") as fh:
            json.dump(state, fh)

    ctx.add_shutdown_callback(my_shutdown_hook)
    await ctx.connect()
    seen.extend(p.identity for p in ctx.room.remote_participants.values())
