"""The caller's end of a call: which of the agent's tracks is its voice, when it is busy, and which turn a
transcript belongs to (with stand-ins for the room's tracks, streams and readers)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
from livekit import rtc

from host.config.credentials import Credentials
from host.voice import line as line_module
from host.voice.line import AGENT_STATE, CallLine, voice_of
from host.voice.turns import Answer, CallOptions

AGENT = SimpleNamespace(kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT, identity="agent-1", attributes={})
LOUD = (np.ones(160, dtype=np.int16) * 3000).tobytes()


def track(sid: str) -> SimpleNamespace:
    return SimpleNamespace(sid=sid, kind=rtc.TrackKind.KIND_AUDIO)


def publication(source: int) -> SimpleNamespace:
    return SimpleNamespace(source=source)


class FakeStream:
    """Plays each track's frames once every track is subscribed (set `go`)."""

    frames: dict[str, list[bytes]] = {}
    go = asyncio.Event()

    def __init__(self, track: SimpleNamespace, **_: object) -> None:
        self._frames = list(FakeStream.frames.get(track.sid, []))

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> SimpleNamespace:
        await FakeStream.go.wait()
        if not self._frames:
            raise StopAsyncIteration
        return SimpleNamespace(frame=SimpleNamespace(data=self._frames.pop(0)))


def new_line() -> CallLine:
    return CallLine(Credentials("ws://127.0.0.1:9", "k", "s" * 32), CallOptions(identity="caller-1"))


async def test_the_agents_voice_is_its_microphone_track_whatever_else_it_plays(monkeypatch):
    monkeypatch.setattr(line_module.rtc, "AudioStream", FakeStream)
    FakeStream.go = asyncio.Event()
    FakeStream.frames = {"TR_background": [LOUD], "TR_voice": [bytes(320), LOUD]}
    line = new_line()
    line.answers_from = 0.0
    answer = line.answer
    # livekit-agents' background audio may come first (no source given), its RoomIO speech after it
    line._on_track(track("TR_background"), publication(rtc.TrackSource.SOURCE_UNKNOWN), AGENT)
    assert line._voice == "TR_background"  # an agent with one audio track: that is its voice
    line._on_track(track("TR_voice"), publication(rtc.TrackSource.SOURCE_MICROPHONE), AGENT)
    line._on_track(track("TR_other"), publication(rtc.TrackSource.SOURCE_UNKNOWN), AGENT)
    line._on_track(track("TR_second_microphone"), publication(rtc.TrackSource.SOURCE_MICROPHONE), AGENT)
    assert line._voice == "TR_voice"  # the first microphone track stays its voice
    FakeStream.go.set()
    await asyncio.gather(*line._tasks)
    assert answer.started_at is not None
    assert bytes(answer.pcm) == LOUD  # from its voice's first loud frame on; the background's frame not in it


def test_the_voice_moves_to_another_track_only_when_its_track_goes_or_a_microphone_comes():
    assert voice_of({}, "") == ""
    assert voice_of({"TR_bg": False}, "") == "TR_bg"  # its only audio
    assert voice_of({"TR_bg": False, "TR_mic": True}, "TR_bg") == "TR_mic"  # a microphone track comes
    assert voice_of({"TR_mic": True, "TR_mic2": True}, "TR_mic") == "TR_mic"  # the first one stays
    assert voice_of({"TR_mic2": True, "TR_bg": False}, "TR_mic") == "TR_mic2"  # it went: the next microphone
    assert voice_of({"TR_bg": False}, "TR_mic") == "TR_bg"  # no microphone left: what it still plays


async def test_an_agent_that_publishes_its_voice_anew_is_heard_on_the_new_track(monkeypatch):
    monkeypatch.setattr(line_module.rtc, "AudioStream", FakeStream)
    FakeStream.go = asyncio.Event()
    FakeStream.frames = {"TR_old": [], "TR_new": [LOUD]}
    line = new_line()
    line.answers_from = 0.0
    microphone = publication(rtc.TrackSource.SOURCE_MICROPHONE)
    line._on_track(track("TR_old"), microphone, AGENT)
    line._on_track(track("TR_new"), microphone, AGENT)  # published before the old one goes
    assert line._voice == "TR_old"
    line._on_track_gone(track("TR_old"), microphone, AGENT)
    assert line._voice == "TR_new"
    FakeStream.go.set()
    await asyncio.gather(*line._tasks)
    assert bytes(line.answer.pcm) == LOUD


async def test_an_agent_is_busy_while_it_thinks_or_speaks_and_not_when_it_says_nothing():
    line = new_line()
    agent = SimpleNamespace(kind=AGENT.kind, identity="agent-1", attributes={})
    line.room = SimpleNamespace(remote_participants={"agent-1": agent})  # type: ignore[assignment]
    assert line.state() is None and not line.busy()  # not a livekit-agents agent: quiet decides
    for state, busy in (("listening", False), ("thinking", True), ("speaking", True), ("idle", False)):
        agent.attributes[AGENT_STATE] = state
        assert line.busy() is busy, state


async def test_a_transcript_belongs_to_the_turn_it_began_in():
    line = new_line()
    line.microphone_sid = "TR_mic"
    release = asyncio.Event()

    class Reader:
        def __init__(self, attributes: dict[str, str]) -> None:
            self.info = SimpleNamespace(attributes=attributes)

        async def read_all(self) -> str:
            await release.wait()
            return "my name is local agent"

    first = line.answer
    line._on_text(Reader({"lk.transcription_final": "true"}), "agent-1")  # type: ignore[arg-type]
    second = line.next_answer()  # the next turn began before the stream ended
    release.set()
    await asyncio.gather(*line._tasks)
    assert first.texts == ["my name is local agent"] and second.texts == []
    assert line.saw_agent_text


async def test_a_transcript_with_no_final_mark_is_final_and_one_marked_interim_is_not():
    """livekit-agents marks its interim transcripts; an agent sending plain text on lk.transcription marks none."""
    line = new_line()

    class Reader:
        def __init__(self, attributes: dict[str, str] | None, text: str) -> None:
            self.info = SimpleNamespace(attributes=attributes)
            self._text = text

        async def read_all(self) -> str:
            return self._text

    line._on_text(Reader(None, "hello from a plain agent"), "agent-1")  # type: ignore[arg-type]
    line._on_text(Reader({"lk.transcription_final": "false"}, "hello fr"), "agent-1")  # type: ignore[arg-type]
    await asyncio.gather(*line._tasks)
    assert line.answer.texts == ["hello from a plain agent"]


async def test_an_answer_says_whether_the_agent_had_said_it_was_thinking_when_its_audio_began(monkeypatch):
    monkeypatch.setattr(line_module.rtc, "AudioStream", FakeStream)
    line = new_line()
    line.answers_from = 10.0  # the turn began
    line._on_attributes({AGENT_STATE: "listening"}, AGENT)  # type: ignore[arg-type]
    assert line.thought_at == 0.0
    for thought_at, thinking in ((5.0, False), (None, True)):  # thinking before the turn; then during it
        if thought_at is None:
            line._on_attributes({AGENT_STATE: "thinking"}, AGENT)  # type: ignore[arg-type]
        else:
            line.thought_at = thought_at
        answer = line.answer = Answer()
        FakeStream.go, FakeStream.frames = asyncio.Event(), {"TR_voice": [LOUD]}
        line._on_track(track("TR_voice"), publication(rtc.TrackSource.SOURCE_MICROPHONE), AGENT)
        FakeStream.go.set()
        await asyncio.gather(*line._tasks)
        assert answer.started_at is not None and answer.thought_first is thinking
