"""Echo agent: subscribes to audio tracks and plays them back to the room."""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

from host.context import AutoSubscribe, JobContext

logger = logging.getLogger("examples.echo")
SAMPLE_RATE = 48000
CHANNELS = 1


async def entrypoint(ctx: JobContext) -> None:
    source = rtc.AudioSource(SAMPLE_RATE, CHANNELS)
    track = rtc.LocalAudioTrack.create_audio_track("echo", source)
    tasks: set[asyncio.Task[None]] = set()

    async def echo(remote: rtc.RemoteAudioTrack) -> None:
        stream = rtc.AudioStream(remote, sample_rate=SAMPLE_RATE, num_channels=CHANNELS)
        async for event in stream:
            await source.capture_frame(event.frame)
        await stream.aclose()

    @ctx.room.on("track_subscribed")
    def on_track_subscribed(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            logger.info("echoing track %s", track.sid)
            task = asyncio.create_task(echo(track))  # type: ignore[arg-type]
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    await ctx.room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
