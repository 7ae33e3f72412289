"""The end of a job's room by its shutdown policy (`delete_room: true`), for both kinds of job, and deleting a
room."""

from __future__ import annotations

import asyncio

from livekit import api

from host.config.definitions import AgentDefinition

DELETE_WAIT_S = 5.0  # a room the server has not deleted by then empties by itself once its participants leave


def taken_over(definition: AgentDefinition, reason: str) -> bool:
    """Whether a job ending for `reason` leaves its call to another job: its host is gone, and the next host
    gives the call its agent again (recovery.on_host_loss), or another host already has (its host lost its
    lease meanwhile), or it is shut down at its memory limit and its call is given the agent again
    (recovery.on_crash). Its room must then stay."""
    return (reason == "taken_over"
            or (reason == "host_gone" and definition.recovery.on_host_loss == "redispatch")
            or (reason == "memory_limit" and definition.recovery.on_crash == "redispatch"))


async def delete_room(client: api.LiveKitAPI, room: str) -> str | None:
    """Delete `room`: None once it is gone, else why it is not. A room someone else deleted first (the caller
    hanging up with its room, say) is what was wanted, not a failure. The one way agenthost deletes a room: a
    job by its policy, and a call or a console when it hangs up."""
    try:
        await asyncio.wait_for(client.room.delete_room(api.DeleteRoomRequest(room=room)), DELETE_WAIT_S)
    except asyncio.TimeoutError:
        return f"deleting the room failed: the server did not answer within {DELETE_WAIT_S:g} s"
    except api.TwirpError as exc:
        return None if exc.code == api.TwirpErrorCode.NOT_FOUND else f"deleting the room failed: {exc}"
    except Exception as exc:
        return f"deleting the room failed: {exc}"
    return None
