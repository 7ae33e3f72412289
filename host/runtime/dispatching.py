"""Creating agent dispatches through the LiveKit server API."""

from __future__ import annotations

import logging

import aiohttp
from livekit import api

from host.config.credentials import Credentials
from host.errors import ServerError
from host.job import room as job_room

logger = logging.getLogger("agenthost.dispatch")


async def create_dispatch(credentials: Credentials, agent_name: str, room: str, metadata: str) -> str:
    """Create a dispatch of `agent_name` to `room` and return its id. Raises ServerError."""
    client = api.LiveKitAPI(credentials.http_url, credentials.api_key, credentials.api_secret)
    try:
        dispatch = await client.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room, metadata=metadata))
    except (api.TwirpError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ServerError(f"cannot create the dispatch: {server_problem(exc, credentials.http_url)}") from exc
    finally:
        await client.aclose()
    return dispatch.id


REFUSED_WORDS = ("401", "unauthorized", "invalid token", "permission denied", "unauthenticated")


def server_problem(exc: BaseException, url: str) -> str:
    """What went wrong talking to the LiveKit server at `url`, said so that the fix is plain: the keys it refused,
    nothing answering there, or what it said."""
    text = str(exc) or type(exc).__name__
    refused = isinstance(exc, api.TwirpError) and exc.code in (api.TwirpErrorCode.UNAUTHENTICATED,
                                                               api.TwirpErrorCode.PERMISSION_DENIED)
    if refused or any(word in text.lower() for word in REFUSED_WORDS):
        return (f"the server at {url} refused the API key and secret ({text}): check LIVEKIT_API_KEY and "
                "LIVEKIT_API_SECRET (or --api-key and --api-secret)")
    if isinstance(exc, (ConnectionRefusedError, aiohttp.ClientConnectorError)) or "connection refused" in text.lower():
        return f"nothing answers at {url}: is livekit-server running there? (`agenthost dev` starts one)"
    return f"{url}: {text}"


async def delete_room(credentials: Credentials, room: str) -> None:
    """Delete `room` (one a call or a console made), so that its job ends by its policy at once."""
    client = api.LiveKitAPI(credentials.http_url, credentials.api_key, credentials.api_secret)
    try:
        failed = await job_room.delete_room(client, room)
        if failed is not None:  # the call is over; a room left behind empties by itself
            logger.debug("could not delete room %s: %s", room, failed)
    finally:
        await client.aclose()
