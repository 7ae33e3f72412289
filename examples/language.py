"""Room metadata and participant attributes: follow a participant's `user.language`."""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

from host.context import AutoSubscribe, JobContext

logger = logging.getLogger("examples.language")


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    participant = await ctx.wait_for_participant()
    logger.info("connected to room %s with participant %s", ctx.room.name, participant.identity)

    # listen before saying anything: the participant may change its attributes as soon as it hears us
    @ctx.room.on("participant_attributes_changed")
    def on_participant_attributes_changed(changed: dict[str, str], p: rtc.Participant) -> None:
        if p == participant:
            lang = p.attributes.get("user.language")
            ctx.log_context_fields["language"] = lang
            logger.info("participant %s changed language to %s", p.identity, lang)
            send = ctx.room.local_participant.send_text(f"language: {lang}", topic="language")
            _pending.add(asyncio.ensure_future(send))

    language = participant.attributes.get("user.language")
    await ctx.room.local_participant.send_text(f"language: {language}", topic="language")


_pending: set[asyncio.Future[object]] = set()
