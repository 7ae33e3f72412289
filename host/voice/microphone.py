"""A caller's microphone: audio all the time, silence between turns as a real one sends (an agent's VAD finds the
end of a turn in the silence that follows it), speech when there is some, paced in real time by the source's
100 ms queue."""

from __future__ import annotations

import asyncio
import time

from livekit import rtc

from host.voice.speech import SAMPLE_RATE
from host.voice.turns import CallError

FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
QUEUE_MS = 100  # what the source holds ahead of playing: what is said starts being heard this much later


class Microphone:
    def __init__(self) -> None:
        self.source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=QUEUE_MS)
        self._speech: asyncio.Queue[bytes] = asyncio.Queue()
        self._spoken = asyncio.Event()  # set when it ran out of speech, or stopped
        self._ended_at = 0.0
        self._stopped: BaseException | None = None  # why `run` ended

    async def say(self, pcm: bytes) -> float:
        """Speak `pcm` (16-bit mono at SAMPLE_RATE); once heard out, the monotonic time its last frame played."""
        if not pcm:  # nothing to wait for: no frame of it would be heard
            return time.monotonic()
        if self._stopped is None:
            self._spoken.clear()
            for start in range(0, len(pcm), FRAME_SAMPLES * 2):
                self._speech.put_nowait(pcm[start:start + FRAME_SAMPLES * 2].ljust(FRAME_SAMPLES * 2, b"\0"))
            await self._spoken.wait()
        if self._stopped is not None:
            raise CallError(f"the caller's microphone stopped: {self._stopped!r}")
        return self._ended_at

    async def run(self) -> None:
        """Until cancelled: speech when there is some, silence otherwise."""
        silence = bytes(FRAME_SAMPLES * 2)
        speaking = False
        try:
            while True:
                try:
                    chunk = self._speech.get_nowait()
                    speaking = True
                except asyncio.QueueEmpty:
                    if speaking:  # the last speech frame is queued: it is heard once the queue has played out
                        self._ended_at = time.monotonic() + self.source.queued_duration
                        speaking = False
                        self._spoken.set()
                    chunk = silence
                await self.source.capture_frame(rtc.AudioFrame(chunk, SAMPLE_RATE, 1, len(chunk) // 2))
        except BaseException as exc:  # a turn being said ends with the reason, rather than waiting for ever
            self._stopped = exc
            self._spoken.set()
            raise

    async def close(self) -> None:
        await self.source.aclose()
