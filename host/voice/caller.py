"""A real caller for testing an agent by voice: joins a room, has the agent dispatched, speaks each turn in
real time on a microphone track, and listens for the answer.

For each turn it measures end of speech -> first agent audio, and collects what the agent understood (its
final user transcript on `lk.transcription`, as livekit-agents' RoomIO publishes it), what it answered (its
own transcript there) and, with a recogniser, what the caller heard in the agent's audio. Any agent that
answers with audio can be called; the transcripts are there when the agent publishes them.

The microphone sends audio all the time, silence between turns, as a real one does: an agent's VAD finds
the end of a turn in the silence that follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from livekit import api, rtc

from host.config.credentials import Credentials
from host.errors import ServerError
from host.runtime.dispatching import create_dispatch, server_problem
from host.voice.audio import rms, write_wav
from host.voice.microphone import Microphone
from host.voice.speech import SAMPLE_RATE, Recognizer
from host.voice.turns import ANSWER_OVER_S, SPEECH_RMS, Answer, CallError, CallOptions, Turn, TurnResult, trim

logger = logging.getLogger("agenthost.call")

QUIET_BEFORE_TURN_S = 0.5  # the agent is quiet this long before the caller speaks (after a greeting, say)
TRANSCRIPT_GRACE_S = 2.0  # how long after its audio the agent's final transcript may still arrive
AGENT_STATE = "lk.agent.state"  # livekit-agents' agents say listening/thinking/speaking here


TextHandler = Callable[[str, str, rtc.TextStreamReader], None]  # (topic, sender identity, reader)


class _EveryTopic(dict[str, Any]):
    """The room's text stream handlers, answering for every topic: a console shows whatever an agent sends,
    on topics it cannot know in advance. (The rtc library looks handlers up with `get`.)"""

    def __init__(self, handler: Any) -> None:
        super().__init__()
        self.handler = handler

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key) or self.handler


class Caller:
    """One participant in a room with an agent: joins, has the agent dispatched, and talks to it. `call`
    speaks turns and measures their answers (`agenthost call`); with `on_text`, every text stream the room
    carries goes to that handler instead (`agenthost console`)."""

    def __init__(self, credentials: Credentials, options: CallOptions, on_text: TextHandler | None = None) -> None:
        self._credentials = credentials
        self._options = options
        self._on_text_stream = on_text
        self._room = rtc.Room()
        self._microphone = Microphone()
        self._answers_from = float("inf")  # agent audio louder than silence after this time starts an answer
        self._answer = Answer()
        self._agent_audio = asyncio.Event()  # the agent's audio track is subscribed
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._mic_sid = ""
        self._agent_identity: str | None = None
        self._saw_agent_text = False
        self._hung_up = False
        self._recognizer = Recognizer() if options.recognize else None

    async def call(self, agent_name: str, room: str, metadata: str, turns: Sequence[Turn],
                   on_turn: Callable[[int, TurnResult], None] = lambda _i, _r: None) -> list[TurnResult]:
        """Speak `turns` to `agent_name` dispatched into `room`; the result of each, in order."""
        try:
            await self.start(agent_name, room, metadata)
            return await self.speak(turns, on_turn)
        finally:
            await self.hang_up()

    async def start(self, agent_name: str, room: str, metadata: str, audio: bool = True) -> None:
        """Join `room`, dispatch `agent_name` there, and wait until it is in the room (with its audio, and
        listening if it says, when `audio`)."""
        await self._join(room)
        await create_dispatch(self._credentials, agent_name, room, metadata)
        await self._wait_for_agent(agent_name, audio)

    @property
    def room(self) -> rtc.Room:
        return self._room

    @property
    def microphone_sid(self) -> str:
        return self._mic_sid

    def agent(self) -> rtc.RemoteParticipant | None:
        """The agent in the room, if one is."""
        return self._agent()

    async def wait_listening(self, grace: float) -> None:
        """Until the agent says it listens (livekit-agents' agents set `lk.agent.state` once their session
        started: what is sent before may not be read). An agent that says nothing within `grace` is taken as
        listening."""
        def says() -> bool:
            agent = self._agent()
            return agent is not None and AGENT_STATE in agent.attributes
        if await self._until(says, grace):
            await self._until(lambda: self._speaking() is not None and self._state() == "listening",
                              self._options.timeout)

    def _state(self) -> str | None:
        agent = self._agent()
        return agent.attributes.get(AGENT_STATE) if agent is not None else None

    async def send_text(self, text: str) -> None:
        """Say `text` as typed chat (`lk.chat`, which livekit-agents' RoomIO reads as the user's turn)."""
        await self._room.local_participant.send_text(text, topic="lk.chat")

    async def speak(self, turns: Sequence[Turn],
                    on_turn: Callable[[int, TurnResult], None] = lambda _i, _r: None,
                    first: int = 1) -> list[TurnResult]:
        results = []
        for i, turn in enumerate(turns, first):
            result = await self._turn(turn)
            if self._options.record is not None:
                write_wav(self._options.record / f"turn-{i:02d}.wav", bytes(self._answer.pcm))
            on_turn(i, result)
            results.append(result)
        return results

    async def _join(self, room: str) -> None:
        grant = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
        token = (api.AccessToken(self._credentials.api_key, self._credentials.api_secret)
                 .with_identity(self._options.identity).with_grants(grant).to_jwt())
        self._room.on("track_subscribed", self._on_track)
        self._room.on("participant_attributes_changed", lambda *_: self._changed.set())
        self._room.on("participant_connected", lambda *_: self._changed.set())
        if self._on_text_stream is None:
            self._room.register_text_stream_handler("lk.transcription", self._on_text)
        else:
            handler = self._on_text_stream
            self._room._text_stream_handlers = _EveryTopic(  # every topic, to one handler
                lambda reader, identity: handler(reader.info.topic, identity, reader))
        try:
            await asyncio.wait_for(self._room.connect(self._credentials.url, token), self._options.timeout)
        except (rtc.ConnectError, asyncio.TimeoutError, OSError) as exc:
            problem = server_problem(exc, self._credentials.url) if str(exc) else f"{self._credentials.url}: timed out"
            raise ServerError(f"cannot join room {room!r}: {problem}") from exc
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._microphone.source)
        publication = await self._room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        self._mic_sid = publication.sid
        self._tasks.append(asyncio.create_task(self._microphone.run()))

    async def hang_up(self) -> None:
        """Leave the room (the agent's job then ends by its policy); once, however often it is called."""
        if self._hung_up:
            return
        self._hung_up = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._room.disconnect()
        await self._microphone.close()

    def _on_track(self, track: rtc.Track, _pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and self._is_agent(participant):
            self._agent_identity = participant.identity
            self._agent_audio.set()
            self._tasks.append(asyncio.create_task(self._listen(track)))

    @staticmethod
    def _is_agent(participant: rtc.RemoteParticipant) -> bool:
        return participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        async for event in stream:
            now = time.monotonic()
            data = event.frame.data
            answer = self._answer
            if rms(data) > SPEECH_RMS:
                if answer.started_at is None and now > self._answers_from:
                    answer.started_at = now
                answer.last_loud = now
                self._changed.set()
            if answer.started_at is not None:
                answer.pcm += bytes(data)

    def _on_text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()  # the closing attributes arrive with the end of the stream
            attributes = reader.info.attributes or {}
            if attributes.get("lk.transcription_final") != "true":
                return
            if identity == self._options.identity or attributes.get("lk.transcribed_track_id") == self._mic_sid:
                self._answer.understood.append(text)
            else:
                self._saw_agent_text = True
                self._answer.texts.append(text)
            self._changed.set()
        self._tasks.append(asyncio.create_task(read()))

    def _agent(self) -> rtc.RemoteParticipant | None:
        return next((p for p in self._room.remote_participants.values() if self._is_agent(p)), None)

    async def _until(self, ready: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
        return True

    async def _wait_for_agent(self, agent_name: str, audio: bool = True) -> None:
        """Until the agent is in the room (with its audio, listening if it says so, when `audio`)."""
        def ready() -> bool:
            agent = self._agent()
            return agent is not None and (not audio or (self._agent_audio.is_set()
                                                       and agent.attributes.get(AGENT_STATE, "listening")
                                                       == "listening"))
        if not await self._until(ready, self._options.timeout):
            agent = self._agent()
            if agent is None:
                raise CallError(f"no agent {agent_name!r} joined the room within {self._options.timeout:g} s: no "
                                "host took its dispatch, or its job failed before it joined (the host's log says "
                                "which). Is one serving it? Start one with `agenthost run` (or `agenthost dev`, "
                                "which also starts a local server)")
            if not self._agent_audio.is_set():
                raise CallError(f"agent {agent.identity} joined but published no audio within "
                                f"{self._options.timeout:g} s: is it a voice agent?")
            raise CallError(f"agent {agent.identity} is {agent.attributes.get(AGENT_STATE)!r}, not listening, "
                            f"after {self._options.timeout:g} s")

    async def _turn(self, turn: Turn) -> TurnResult:
        result = TurnResult(said=turn.said)
        # a greeting or the last answer's tail plays out first: the agent is quiet before the caller speaks
        await self._until(lambda: time.monotonic() - self._answer.last_loud >= QUIET_BEFORE_TURN_S
                          and self._speaking() is not True, self._options.timeout)
        if self._options.pause:
            await asyncio.sleep(self._options.pause)
        self._answer = answer = Answer()
        self._answers_from = float("inf")
        ended = self._answers_from = await self._microphone.say(turn.pcm)  # only audio after it answers the turn
        if not await self._until(lambda: answer.started_at is not None,
                                 self._options.timeout + max(0.0, ended - time.monotonic())):
            result.error = f"no answer within {self._options.timeout:g} s of the end of speech"
            result.understood = " ".join(answer.understood) or None
            return result
        assert answer.started_at is not None
        result.latency_ms = round((answer.started_at - ended) * 1000, 1)
        await self._until(lambda: time.monotonic() - answer.last_loud >= ANSWER_OVER_S, 120.0)
        if self._saw_agent_text or self._speaking() is not None:
            await self._until(lambda: bool(answer.texts), TRANSCRIPT_GRACE_S)
        result.understood = " ".join(answer.understood) or None
        result.answered = " ".join(answer.texts) or None
        if self._recognizer is not None:
            pcm = trim(bytes(answer.pcm))
            result.heard = await asyncio.to_thread(self._recognizer.recognize, pcm)
        return result

    def _speaking(self) -> bool | None:
        """Whether the agent says it is speaking; None when it does not say (not a livekit-agents agent)."""
        agent = self._agent()
        state = agent.attributes.get(AGENT_STATE) if agent is not None else None
        return None if state is None else state == "speaking"
