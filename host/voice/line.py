"""The caller's end of a call: in a room as the user, with a microphone track, hearing the agent.

`CallLine` joins the room and publishes the microphone (which sends silence between turns, as a real one
does), finds the agent among the participants and what it says of its state (`lk.agent.state`), and collects
what the agent answers into the turn in progress (`Answer`): its loud audio from the moment the caller's turn
ended, and the final transcripts on `lk.transcription` (the agent's own, and its transcript of the caller).
With `on_text`, every text stream the room carries goes to that handler instead (a console shows them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from livekit import api, rtc

from host.config.credentials import Credentials
from host.errors import ServerError
from host.runtime.dispatching import server_problem
from host.voice.audio import rms
from host.voice.microphone import Microphone
from host.voice.speech import SAMPLE_RATE
from host.voice.turns import SPEECH_RMS, Answer, CallOptions

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


class CallLine:
    def __init__(self, credentials: Credentials, options: CallOptions, on_text: TextHandler | None = None) -> None:
        self._credentials = credentials
        self._options = options
        self._on_text_stream = on_text
        self.room = rtc.Room()
        self.microphone = Microphone()
        self.microphone_sid = ""
        self.answer = Answer()  # the turn in progress: written by the listeners below
        self.answers_from = float("inf")  # agent audio louder than silence after this time starts an answer
        self.agent_audio = asyncio.Event()  # the agent's audio track is subscribed
        self.joined = False  # in the room (which exists from then on)
        self.ended: str | None = None  # why the call cannot go on (the agent left, the room closed), while so
        self._audio: dict[str, bool] = {}  # the agent's subscribed audio tracks: sid -> a microphone track
        self._voice = ""  # the sid of the one of them that is its voice (`voice_of`)
        self.saw_agent_text = False  # the agent published a transcript of its own: its answers will have one
        self.thought_at = 0.0  # monotonic time the agent last said it is thinking (making an answer)
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._hung_up = False

    async def join(self, room: str) -> None:
        """Join `room` as the caller and publish the microphone; ServerError when the server cannot be joined."""
        grant = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
        token = (api.AccessToken(self._credentials.api_key, self._credentials.api_secret)
                 .with_identity(self._options.identity).with_grants(grant).to_jwt())
        self.room.on("track_subscribed", self._on_track)
        self.room.on("track_unsubscribed", self._on_track_gone)
        self.room.on("participant_attributes_changed", self._on_attributes)
        self.room.on("participant_connected", self._on_arrived)
        self.room.on("participant_disconnected", self._on_left)
        self.room.on("disconnected", self._on_disconnected)
        if self._on_text_stream is None:
            self.room.register_text_stream_handler("lk.transcription", self._on_text)
        else:
            handler = self._on_text_stream
            self.room._text_stream_handlers = _EveryTopic(  # every topic, to one handler
                lambda reader, identity: handler(reader.info.topic, identity, reader))
        try:
            await asyncio.wait_for(self.room.connect(self._credentials.url, token), self._options.timeout)
        except (rtc.ConnectError, asyncio.TimeoutError, OSError) as exc:
            problem = server_problem(exc, self._credentials.url) if str(exc) else f"{self._credentials.url}: timed out"
            raise ServerError(f"cannot join room {room!r}: {problem}") from exc
        self.joined = True
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self.microphone.source)
        publication = await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        self.microphone_sid = publication.sid
        self._tasks.append(asyncio.create_task(self.microphone.run()))

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
        await self.room.disconnect()
        await self.microphone.close()

    def next_answer(self) -> Answer:
        """A new turn: what the agent answers from now on goes to a new `Answer` (once `answers_from` is set)."""
        self.answer = Answer()
        self.answers_from = float("inf")
        return self.answer

    def agent(self) -> rtc.RemoteParticipant | None:
        """The agent in the room, if one is."""
        return next((p for p in self.room.remote_participants.values() if _is_agent(p)), None)

    def state(self) -> str | None:
        """What the agent says it is doing (listening, thinking, speaking); None when it says nothing."""
        agent = self.agent()
        return agent.attributes.get(AGENT_STATE) if agent is not None else None

    def speaking(self) -> bool | None:
        """Whether the agent says it is speaking; None when it does not say (not a livekit-agents agent)."""
        state = self.state()
        return None if state is None else state == "speaking"

    def busy(self) -> bool:
        """Whether the agent says it is making or speaking an answer (an answer in several parts, or one
        with a tool call, goes back to thinking between them)."""
        return self.state() in ("thinking", "speaking")

    def quiet_for(self) -> float:
        """Seconds since the agent's voice was last louder than silence."""
        return time.monotonic() - self.answer.last_loud

    async def until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Until `ready()`, looked at whenever the room changes (and every 0.1 s); False after `timeout`."""
        deadline = time.monotonic() + timeout
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
        return True

    def _on_track(self, track: rtc.Track, publication: rtc.RemoteTrackPublication,
                  participant: rtc.RemoteParticipant) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO or not _is_agent(participant):
            return
        self._audio[track.sid] = publication.source == rtc.TrackSource.SOURCE_MICROPHONE
        self._voice = voice_of(self._audio, self._voice)
        self.agent_audio.set()
        self._tasks.append(asyncio.create_task(self._listen(track)))

    def _on_track_gone(self, track: rtc.Track, _publication: rtc.RemoteTrackPublication,
                       _participant: rtc.RemoteParticipant) -> None:
        # an agent that publishes its voice anew (after a reconnection, say) is heard on the new track
        if self._audio.pop(track.sid, None) is not None:
            self._voice = voice_of(self._audio, self._voice)

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if changed.get(AGENT_STATE) == "thinking" and _is_agent(participant):
            self.thought_at = time.monotonic()
        self._changed.set()

    def _on_arrived(self, participant: rtc.RemoteParticipant) -> None:
        if _is_agent(participant) and self.room.isconnected():
            self.ended = None
        self._changed.set()

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        if _is_agent(participant) and self.agent() is None:  # a turn waiting for its answer ends now
            self.ended = f"agent {participant.identity} left the room"
        self._changed.set()

    def _on_disconnected(self, reason: Any) -> None:
        if not self._hung_up:
            try:
                why = rtc.DisconnectReason.Name(reason)
            except ValueError:  # a reason newer than this rtc library
                why = str(reason)
            self.ended = f"the caller was disconnected from the room ({why})"
        self._changed.set()

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        async for event in stream:
            if track.sid != self._voice:
                continue
            now = time.monotonic()
            data = event.frame.data
            answer = self.answer
            if rms(data) > SPEECH_RMS:
                if answer.started_at is None and now > self.answers_from:
                    answer.started_at = now
                    answer.thought_first = self.thought_at >= self.answers_from
                answer.last_loud = now
                self._changed.set()
            if answer.started_at is not None:
                answer.pcm += bytes(data)

    def _on_text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        answer = self.answer  # a transcript belongs to the turn it began in, however late it ends

        async def read() -> None:
            text = await reader.read_all()  # the closing attributes arrive with the end of the stream
            attributes = reader.info.attributes or {}
            # livekit-agents marks its interim transcripts "false"; an agent that sends plain text on the
            # topic, with no such mark, sends what it means
            if attributes.get("lk.transcription_final", "true") != "true":
                return
            if identity == self._options.identity or attributes.get("lk.transcribed_track_id") == self.microphone_sid:
                answer.understood.append(text)
            else:
                self.saw_agent_text = True
                answer.texts.append(text)
            self._changed.set()
        self._tasks.append(asyncio.create_task(read()))


def voice_of(tracks: dict[str, bool], current: str) -> str:
    """Which of the agent's audio tracks (sid -> a microphone track, in the order they came) is its voice: the
    one it is heard on while it stays and no better one came, else its first microphone track (livekit-agents'
    RoomIO publishes its speech so); another audio track, as livekit-agents' background audio (thinking
    sounds, ambience), only when it has none. "" when it has no audio track."""
    if current in tracks and (tracks[current] or not any(tracks.values())):
        return current
    return next((sid for sid, microphone in tracks.items() if microphone), next(iter(tracks), ""))


def _is_agent(participant: rtc.Participant) -> bool:
    return participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
