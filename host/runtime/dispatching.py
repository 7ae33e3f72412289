"""Creating agent dispatches through the LiveKit server API."""

from __future__ import annotations

import aiohttp
from livekit import api

from host.config.credentials import Credentials
from host.errors import ServerError


async def create_dispatch(credentials: Credentials, agent_name: str, room: str, metadata: str) -> str:
    """Create a dispatch of `agent_name` to `room` and return its id. Raises ServerError."""
    client = api.LiveKitAPI(credentials.http_url, credentials.api_key, credentials.api_secret)
    try:
        dispatch = await client.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room, metadata=metadata))
    except (api.TwirpError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ServerError(f"cannot create the dispatch at {credentials.http_url}: {exc}") from exc
    finally:
        await client.aclose()
    return dispatch.id
