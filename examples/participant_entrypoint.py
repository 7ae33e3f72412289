"""Participant entrypoint: runs for every participant already in the room and each who joins."""

from __future__ import annotations

import logging

from livekit import rtc

from host.context import JobContext

logger = logging.getLogger("examples.participant_entrypoint")


async def entrypoint(ctx: JobContext) -> None:
    async def participant_task(ctx: JobContext, participant: rtc.RemoteParticipant) -> None:
        logger.info("new participant: %s", participant.identity)
        await ctx.room.local_participant.send_text(
            f"welcome {participant.identity}", topic="welcome", destination_identities=[participant.identity])

    ctx.add_participant_entrypoint(participant_task)
    await ctx.connect()
