"""The end of a job's room by its shutdown policy (`delete_room: true`), for both kinds of job."""

from __future__ import annotations

import logging

from livekit import api

from host.config.definitions import AgentDefinition

logger = logging.getLogger("agenthost.job")


def taken_over(definition: AgentDefinition, reason: str) -> bool:
    """Whether a job ending for `reason` leaves its call to another job: its host is gone, and the next host
    gives the call its agent again (recovery.on_host_loss), or another host already has (its host lost its
    lease meanwhile), or it is shut down at its memory limit and its call is given the agent again
    (recovery.on_crash). Its room must then stay."""
    return (reason == "taken_over"
            or (reason == "host_gone" and definition.recovery.on_host_loss == "redispatch")
            or (reason == "memory_limit" and definition.recovery.on_crash == "redispatch"))


async def delete_job_room(client: api.LiveKitAPI, room: str) -> str | None:
    """Delete `room`; the error to report the job with, or None. A room someone else deleted first (the caller
    hanging up with its room, say) is what the policy wanted, not a failure."""
    try:
        await client.room.delete_room(api.DeleteRoomRequest(room=room))
    except api.TwirpError as exc:
        if exc.code == api.TwirpErrorCode.NOT_FOUND:
            logger.info("room already deleted")
            return None
        logger.warning("deleting the room failed: %s", exc)
        return f"deleting the room failed: {exc}"
    except Exception as exc:
        logger.warning("deleting the room failed: %s", exc)
        return f"deleting the room failed: {exc}"
    logger.info("room deleted")
    return None
