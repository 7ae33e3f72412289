"""livekit-agents plugins that need no cloud key and download nothing: speech-to-text with pocketsphinx's
en-US model (it ships in the wheel), text-to-speech with Debian's flite, and a small rule-based LLM.

They are example components for examples/voice_local.py, written against livekit-agents' extension points
as any plugin is: a streaming `stt.STT` that decodes each utterance while it is spoken (the VAD says where
utterances start and end), a `tts.TTS` whose chunked stream emits PCM, and an `llm.LLM` whose stream sends
chat chunks.

The recogniser's model (90 MB) and the voice are loaded when this module is imported, not in prewarm: the
model is read-only once loaded, so a host that imports an agent's module once and forks its job processes
from there (agenthost's template) shares one copy among all of them. Where each process imports the module
itself, this costs what loading in prewarm would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

from livekit import rtc
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, llm, stt, tts, utils, vad
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from examples.rule_answers import answer
from host.voice.speech import SAMPLE_RATE, Recognizer, Synthesizer

# Fewer Gaussians scored per frame (pocketsphinx's default is 4): about a tenth less CPU per second of audio
# and a sixth less left to decode at the end of an utterance, understanding as many phrases as the defaults
# (bench/speech_bench.py). Its other speed settings (no second search pass, fewer active states) save more
# but lose phrases.
QUICK: Final[Mapping[str, Any]] = {"topn": 2}

_idle_recognizers = [Recognizer(**QUICK)]  # one per utterance being decoded; a process serves one call, so one
_synthesizer = Synthesizer()


def _recognizer() -> Recognizer:
    return _idle_recognizers.pop() if _idle_recognizers else Recognizer(**QUICK)


class PocketSphinxSTT(stt.STT):
    """Speech to text, decoded as it is spoken: at the end of an utterance only its last piece is left."""

    def __init__(self, vad: vad.VAD) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))
        self._vad = vad

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer) if isinstance(buffer, list) else buffer
        if frame.sample_rate != SAMPLE_RATE or frame.num_channels != 1:
            resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=frame.num_channels)
            frame = rtc.combine_audio_frames([*resampler.push(frame), *resampler.flush()])
        recognizer = _recognizer()
        try:
            text = recognizer.recognize(bytes(frame.data))
        finally:
            _idle_recognizers.append(recognizer)
        return _final(text)

    def stream(self, *, language: NotGivenOr[str] = NOT_GIVEN,
               conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> stt.RecognizeStream:
        return _PocketSphinxStream(stt=self, vad=self._vad, conn_options=conn_options)


def _final(text: str) -> stt.SpeechEvent:
    return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                           alternatives=[stt.SpeechData(language="en", text=text)])


class _PocketSphinxStream(stt.RecognizeStream):
    def __init__(self, *, stt: PocketSphinxSTT, vad: vad.VAD, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=SAMPLE_RATE)
        self._vad_stream = vad.stream()

    async def _run(self) -> None:
        async def forward() -> None:
            async for frame in self._input_ch:
                if isinstance(frame, self._FlushSentinel):
                    self._vad_stream.flush()
                else:
                    self._vad_stream.push_frame(frame)
            self._vad_stream.end_input()

        forwarding = asyncio.create_task(forward())
        recognizer = _recognizer()
        speaking = False
        try:
            async for event in self._vad_stream:
                if event.type == vad.VADEventType.START_OF_SPEECH:
                    speaking = True
                    recognizer.start()
                    for frame in event.frames:  # the speech so far, with the padding before it
                        recognizer.feed(bytes(frame.data))
                    self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
                elif event.type == vad.VADEventType.INFERENCE_DONE and speaking:
                    for frame in event.frames:
                        recognizer.feed(bytes(frame.data))
                elif event.type == vad.VADEventType.END_OF_SPEECH and speaking:
                    speaking = False
                    text = recognizer.finish()
                    self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH))
                    if text:
                        self._event_ch.send_nowait(_final(text))
        finally:
            if speaking:
                recognizer.finish()
            _idle_recognizers.append(recognizer)
            await utils.aio.cancel_and_wait(forwarding)
            await self._vad_stream.aclose()


class FliteTTS(tts.TTS):
    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=SAMPLE_RATE,
                         num_channels=1)

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> tts.ChunkedStream:
        return _FliteStream(tts=self, input_text=text, conn_options=conn_options)


class _FliteStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        pcm = await asyncio.to_thread(_synthesizer.synthesize, self.input_text)
        output_emitter.initialize(request_id=utils.shortuuid(), sample_rate=SAMPLE_RATE, num_channels=1,
                                  mime_type="audio/pcm")
        output_emitter.push(pcm)
        output_emitter.flush()


class RuleLLM(llm.LLM):
    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[Any] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS, **_: Any) -> llm.LLMStream:
        return _RuleStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _RuleStream(llm.LLMStream):
    async def _run(self) -> None:
        said = next((m.text_content or "" for m in reversed(self.chat_ctx.messages()) if m.role == "user"), "")
        self._event_ch.send_nowait(llm.ChatChunk(id=utils.shortuuid(),
                                                 delta=llm.ChoiceDelta(role="assistant", content=answer(said))))
