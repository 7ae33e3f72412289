"""Job metadata: the dispatch carries user_id, user_name and user_phone (checked by the schema)."""

from __future__ import annotations

import json
import logging

from host.context import JobContext, ProcessContext

logger = logging.getLogger("examples.greeter")


def prewarm(proc: ProcessContext) -> None:
    proc.userdata["greeting"] = "Hello"


async def entrypoint(ctx: JobContext) -> None:
    metadata = json.loads(ctx.job.metadata)  # as in the lifecycle document; ctx.metadata is the same, parsed
    user_id = metadata["user_id"]
    user_name = metadata["user_name"]
    user_phone = metadata["user_phone"]
    await ctx.connect()
    greeting = ctx.proc.userdata.get("greeting", "Hello")
    logger.info("greeting %s (%s, %s)", user_name, user_id, user_phone)
    await ctx.room.local_participant.send_text(f"{greeting}, {user_name}", topic="greeting")
