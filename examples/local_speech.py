"""livekit-agents plugins that need no cloud key and download nothing: speech-to-text with pocketsphinx's
en-US model (it ships in the wheel), text-to-speech with Debian's flite, and a small rule-based LLM.

They are example components for examples/voice_local.py, written against livekit-agents' extension points
as any plugin is: a non-streaming `stt.STT` (AgentSession wraps it with its VAD, so each utterance arrives
whole), a `tts.TTS` whose chunked stream emits PCM, and an `llm.LLM` whose stream sends chat chunks.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from typing import Any

from livekit import rtc
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, llm, stt, tts, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from host.voice.speech import SAMPLE_RATE, Recognizer, Synthesizer

_recognizer: Recognizer | None = None
_synthesizer: Synthesizer | None = None


def load() -> None:
    """Load the recogniser's model and the voice once per process (call it from prewarm)."""
    global _recognizer, _synthesizer
    if _recognizer is None:
        _recognizer = Recognizer()
    if _synthesizer is None:
        _synthesizer = Synthesizer()


class PocketSphinxSTT(stt.STT):
    """Whole utterances to text; the session's audio input must be 16 kHz (RoomOptions)."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        load()

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer) if isinstance(buffer, list) else buffer
        if frame.sample_rate != SAMPLE_RATE or frame.num_channels != 1:
            resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=frame.num_channels)
            frames = [*resampler.push(frame), *resampler.flush()]
            frame = rtc.combine_audio_frames(frames)
        assert _recognizer is not None
        text = await asyncio.to_thread(_recognizer.recognize, bytes(frame.data))
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                               alternatives=[stt.SpeechData(language="en", text=text)])


class FliteTTS(tts.TTS):
    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=SAMPLE_RATE,
                         num_channels=1)
        load()

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> tts.ChunkedStream:
        return _FliteStream(tts=self, input_text=text, conn_options=conn_options)


class _FliteStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        assert _synthesizer is not None
        pcm = await asyncio.to_thread(_synthesizer.synthesize, self.input_text)
        output_emitter.initialize(request_id=utils.shortuuid(), sample_rate=SAMPLE_RATE, num_channels=1,
                                  mime_type="audio/pcm")
        output_emitter.push(pcm)
        output_emitter.flush()


def _now() -> str:
    now = datetime.datetime.now()
    return f"{now.hour % 12 or 12} {now.minute:02d}" if now.minute else f"{now.hour % 12 or 12} o'clock"


# what the rule LLM answers, by a pattern of the recognised words; anything else is echoed
RULES: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"\b(hello|hi)\b"), "hello, this is the local voice agent"),
    (re.compile(r"\bhow are you\b"), "i am fine, thank you"),
    (re.compile(r"\byour name\b"), "my name is local agent"),
    (re.compile(r"\bwhat time\b"), lambda: f"it is {_now()}"),
    (re.compile(r"\b(goodbye|bye)\b"), "goodbye, have a nice day"),
]


def answer(said: str) -> str:
    text = said.lower().strip()
    if not text:
        return "sorry, i did not hear you"
    for pattern, reply in RULES:
        if pattern.search(text):
            return reply() if callable(reply) else str(reply)
    return f"you said {text}"


class RuleLLM(llm.LLM):
    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[Any] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS, **_: Any) -> llm.LLMStream:
        return _RuleStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _RuleStream(llm.LLMStream):
    async def _run(self) -> None:
        said = next((m.text_content or "" for m in reversed(self.chat_ctx.messages()) if m.role == "user"), "")
        self._event_ch.send_nowait(llm.ChatChunk(id=utils.shortuuid(),
                                                 delta=llm.ChoiceDelta(role="assistant", content=answer(said))))
