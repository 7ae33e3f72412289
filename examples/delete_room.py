"""Delete the room at the end: say hello, and end the session for everyone when told "done"."""

from __future__ import annotations

from livekit import rtc

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    def on_done(reader: rtc.TextStreamReader, identity: str) -> None:
        ctx.shutdown(reason=f"done, said {identity}")

    ctx.room.register_text_stream_handler("done", on_done)
    await ctx.connect()
    await ctx.room.local_participant.send_text("say done to end the room", topic="hello")
