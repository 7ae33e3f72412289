"""What the console prints of the room as it comes: the agent's transcript (`lk.transcription`) and any other text
stream under its topic as they stream, data packets, its state (`lk.agent.state`) and other attribute changes,
and each voice turn's answer; one prefix per message, and a whole line never cut into a stream being printed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from livekit import rtc

from host.voice.line import AGENT_STATE
from host.voice.turns import TurnResult

TRANSCRIPT = "lk.transcription"


class Printer:
    """Writes what the room carries as it comes, one prefix per message."""

    def __init__(self, out: TextIO, me: str, microphone: Callable[[], str] = lambda: "") -> None:
        self.out, self.me, self.microphone = out, me, microphone
        self._tasks: set[asyncio.Task[None]] = set()
        self._streaming = 0  # streams being printed: a whole line waits until they end its line
        self._waiting: list[str] = []

    def line(self, text: str) -> None:
        if self._streaming:
            self._waiting.append(text)
            return
        self.out.write(text + "\n")
        self.out.flush()

    def on_text(self, topic: str, identity: str, reader: rtc.TextStreamReader) -> None:
        task = asyncio.get_running_loop().create_task(self._stream(topic, identity, reader))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stream(self, topic: str, identity: str, reader: rtc.TextStreamReader) -> None:
        attributes = reader.info.attributes or {}
        if identity == self.me and topic == "lk.chat":
            return  # what was just typed
        if topic == TRANSCRIPT:  # the agent's words, or what it heard of ours (--audio)
            heard = identity == self.me or attributes.get("lk.transcribed_track_id") == self.microphone()
            prefix = "you (heard) > " if heard else "agent > "
        else:
            prefix = f"[{topic}] {identity} > "
        self.out.write(prefix)
        self._streaming += 1
        try:
            async for chunk in reader:  # as it streams
                self.out.write(chunk)
                self.out.flush()
        finally:
            self._streaming -= 1
            self.out.write("\n")
            waiting, self._waiting = (self._waiting, []) if not self._streaming else ([], self._waiting)
            for text in waiting:
                self.out.write(text + "\n")
            self.out.flush()

    def on_data(self, packet: rtc.DataPacket) -> None:
        who = packet.participant.identity if packet.participant is not None else "server"
        text = packet.data.decode("utf-8", "replace")
        self.line(f"[{packet.topic or 'data'}] {who} > {text}")

    def on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if participant.identity == self.me:
            return
        for key, value in sorted(changed.items()):
            if key == AGENT_STATE:
                self.line(f"  ({value})")
            else:
                self.line(f"  {participant.identity} {key} = {value}")

    def on_turn(self, index: int, turn: TurnResult, saved: Path | None = None) -> None:
        if turn.latency_ms is not None:
            when = (f"in {turn.latency_ms:.0f} ms" if turn.latency_ms >= 0
                    else f"{-turn.latency_ms:.0f} ms before the end of speech")
            self.line(f"  (answered {when}; " + (f"saved as {saved.name})" if saved is not None else "not saved)"))
        else:
            self.line(f"  (no answer: {turn.error})")
