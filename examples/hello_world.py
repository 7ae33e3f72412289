"""Entrypoint example: listen for audio tracks, connect audio-only, say hello, list participants."""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

from host.context import AutoSubscribe, JobContext

logger = logging.getLogger("examples.hello_world")
_tasks: set[asyncio.Task[None]] = set()


async def do_something(track: rtc.RemoteAudioTrack) -> None:
    audio_stream = rtc.AudioStream(track)
    async for _event in audio_stream:
        pass  # process _event.frame here
    await audio_stream.aclose()


async def entrypoint(ctx: JobContext) -> None:
    room = ctx.room

    @room.on("track_subscribed")
    def on_track_subscribed(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            task = asyncio.create_task(do_something(track))  # type: ignore[arg-type]
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)

    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    await room.local_participant.send_text("hello world", topic="hello-world")
    for rp in room.remote_participants.values():
        logger.info("participant in the room: %s", rp.identity)
