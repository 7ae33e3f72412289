"""A real caller for testing an agent by voice: joins a room, has the agent dispatched, speaks each turn in
real time on a microphone track, and listens for the answer.

For each turn it measures end of speech -> first agent audio, and collects what the agent understood (its
final user transcript on `lk.transcription`, as livekit-agents' RoomIO publishes it), what it answered (its
own transcript there) and, with a recogniser, what the caller heard in the agent's audio. Any agent that
answers with audio can be called; the transcripts are there when the agent publishes them. Being in the room,
the microphone and hearing the agent are the `CallLine`'s (host.voice.line); the turns are the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from livekit import rtc

from host.config.credentials import Credentials
from host.runtime.dispatching import create_dispatch
from host.voice.audio import write_wav
from host.voice.line import CallLine, TextHandler
from host.voice.microphone import QUEUE_MS
from host.voice.speech import Recognizer
from host.voice.turns import (
    ANSWER_OVER_S,
    HEARD_SPEAKING_S,
    Answer,
    CallError,
    CallOptions,
    Turn,
    TurnResult,
    speech_between,
    trailing_silence,
    trim,
)

logger = logging.getLogger("agenthost.call")

QUIET_BEFORE_TURN_S = 0.5  # the agent is quiet this long before the caller speaks (after a greeting, say)
GREETING_WAIT_S = 2.0  # a new agent is quiet this long before the first turn (time to start a greeting)
STATE_GRACE_S = 2.0  # how long a joined agent may take to say its state (livekit-agents' agents say it)
ANSWER_MAX_S = 120.0  # an answer longer than this is cut: the turn ends and the next one is spoken
TRANSCRIPT_GRACE_S = 2.0  # how long after its audio the agent's final transcript may still arrive


class Caller:
    """One participant in a room with an agent: joins, has the agent dispatched, and talks to it. `call`
    speaks turns and measures their answers (`agenthost call`); with `on_text`, every text stream the room
    carries goes to that handler instead (`agenthost console`)."""

    def __init__(self, credentials: Credentials, options: CallOptions, on_text: TextHandler | None = None) -> None:
        self._credentials = credentials
        self._options = options
        self._recognizer = Recognizer() if options.recognize else None  # first: it may be missing
        self._line = CallLine(credentials, options, on_text)
        self.last_saved: Path | None = None  # where the last turn's answer was saved (None: it was not)

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
        await self._line.join(room)
        await create_dispatch(self._credentials, agent_name, room, metadata)
        await self._wait_for_agent(agent_name, audio)
        if audio:
            await self.wait_listening(STATE_GRACE_S)
            # an agent that greets does so as it starts listening: its quiet is counted from now, so that the
            # greeting it is about to say plays out before the first turn, and is not taken for its answer
            line = self._line
            line.answer.last_loud = time.monotonic()
            await line.until(lambda: line.quiet_for() >= GREETING_WAIT_S and not line.busy(), self._options.timeout)

    async def hang_up(self) -> None:
        """Leave the room (the agent's job then ends by its policy); once, however often it is called."""
        await self._line.hang_up()

    @property
    def room(self) -> rtc.Room:
        return self._line.room

    @property
    def joined(self) -> bool:
        """Whether it got into the room (which exists from then on, until deleted or empty)."""
        return self._line.joined

    @property
    def microphone_sid(self) -> str:
        return self._line.microphone_sid

    def agent(self) -> rtc.RemoteParticipant | None:
        """The agent in the room, if one is."""
        return self._line.agent()

    async def wait_listening(self, grace: float) -> None:
        """Until the agent says it listens (livekit-agents' agents set `lk.agent.state` once their session
        started: what is sent before may not be read). An agent that says nothing within `grace` is taken as
        listening."""
        line = self._line
        if await line.until(lambda: line.state() is not None, grace):
            await line.until(lambda: line.state() == "listening", self._options.timeout)

    async def send_text(self, text: str) -> None:
        """Say `text` as typed chat (`lk.chat`, which livekit-agents' RoomIO reads as the user's turn)."""
        await self._line.room.local_participant.send_text(text, topic="lk.chat")

    async def speak(self, turns: Sequence[Turn],
                    on_turn: Callable[[int, TurnResult], None] = lambda _i, _r: None,
                    first: int = 1) -> list[TurnResult]:
        results = []
        record = self._options.record
        for i, turn in enumerate(turns, first):
            if self._line.ended is not None:
                result = TurnResult(said=turn.said, error=f"not spoken: {self._line.ended}")
            else:
                result = await self._turn(turn)
                self.last_saved = None
                if record is not None:
                    record = self._record(record / f"turn-{i:02d}.wav")
            on_turn(i, result)
            results.append(result)
        return results

    def _record(self, path: Path) -> Path | None:
        """Save the answer to `path`; the folder to save the next one in (None once saving failed: said once,
        the call goes on)."""
        try:
            write_wav(path, bytes(self._line.answer.pcm))
        except OSError as exc:
            logger.warning("cannot save the answer to %s (%s): the call goes on without saving its answers",
                           path, exc.strerror or exc)
            return None
        self.last_saved = path
        return path.parent

    async def _say(self, turn: Turn, quiet_s: float = QUIET_BEFORE_TURN_S) -> tuple[Answer, float, float | None]:
        """Say `turn` once the agent has been quiet for `quiet_s`, and wait for its answer to start: the
        answer, the monotonic time the turn's speech ended, and when it began being said (None: said over the
        agent still talking)."""
        line = self._line
        # a greeting or the last answer plays out first: the agent is quiet, and not making an answer, before
        # the caller speaks
        quiet = await line.until(lambda: line.quiet_for() >= quiet_s and not line.busy(), self._options.timeout)
        if self._options.pause:
            await asyncio.sleep(self._options.pause)
        answer = line.next_answer()
        # the end of speech is the end of its last loud window, not of its audio: what follows is silence, which
        # an agent may well answer in (a recording's last second, say)
        silence_after = trailing_silence(turn.pcm) or 0.0
        began: float | None = None
        if quiet:
            # the agent's audio from the start of the turn answers it: an agent may answer before the end of
            # speech (one that echoes, or one that takes a pause in the turn for its end)
            line.answers_from = began = time.monotonic()
            ended = await line.microphone.say(turn.pcm) - silence_after
        else:  # the caller speaks over an agent still talking: only what it says after the turn answers it
            line.answers_from = await line.microphone.say(turn.pcm)
            ended = line.answers_from - silence_after
        # the timeout counts from the end of speech, not of the recording (whose last seconds may be silence)
        await line.until(lambda: answer.started_at is not None or line.ended is not None,
                         max(0.0, ended + self._options.timeout - time.monotonic()))
        return answer, ended, began

    def _spoke_on_its_own(self, turn: Turn, answer: Answer, began: float) -> float | None:
        """Whether the agent's first audio in a turn was it talking on its own (a greeting that came late,
        say), not answering: it says its state, has not been thinking since the turn began, and had heard the
        caller speaking just before (so it had heard no end of a turn to answer: its audio began while the
        caller spoke, or just after). An agent that plays back what it hears says no state; a livekit-agents
        reply is made in the thinking state, and one from a realtime model (which skips it) follows a pause in
        the caller's speech. How far into the turn's audio the agent began, when it was so; else None.

        A greeting made as a reply (livekit-agents' `generate_reply`) is made thinking too: one that comes
        late is taken for the answer."""
        if answer.started_at is None or answer.thought_first or self._line.state() is None:
            return None
        # where the turn's audio was playing when the agent's audio arrived (it plays out of the microphone's
        # queue). The network's delays put this later than what the agent had heard when it began: that can
        # miss a greeting that came just after the speech, never take an answer that followed a pause for one
        at = answer.started_at - began - QUEUE_MS / 1000
        return at if speech_between(turn.pcm, at - HEARD_SPEAKING_S, at) else None

    async def _wait_for_agent(self, agent_name: str, audio: bool = True) -> None:
        """Until the agent is in the room (with its audio, listening if it says so, when `audio`)."""
        line = self._line

        def ready() -> bool:
            agent = line.agent()
            return agent is not None and (not audio or (line.agent_audio.is_set()
                                                       and line.state() in (None, "listening")))
        if await line.until(ready, self._options.timeout):
            return
        agent = line.agent()
        if agent is not None and not line.agent_audio.is_set() and line.state() in (None, "listening"):
            # an agent may publish its voice only as it first speaks: it is called without it (a turn it does
            # not answer says it published none)
            logger.info("agent %s has published no audio after %g s: calling it without", agent.identity,
                        self._options.timeout)
            return
        if agent is None:
            raise CallError(f"no agent {agent_name!r} joined the room within {self._options.timeout:g} s: no host "
                            "took its dispatch, or its job failed before it joined (the host's log says which). Is "
                            "one serving it? Start one with `agenthost run` (or `agenthost dev`, which also starts "
                            "a local server)")
        raise CallError(f"agent {agent.identity} is {line.state()!r}, not listening, after {self._options.timeout:g} s")

    async def _turn(self, turn: Turn) -> TurnResult:
        line = self._line
        result = TurnResult(said=turn.said)
        answer, ended, began = await self._say(turn)
        into = self._spoke_on_its_own(turn, answer, began) if began is not None and line.ended is None else None
        if into is not None:
            logger.warning("the agent began speaking %.1f s into %r, as the caller spoke and without thinking "
                           "first (a greeting that came late?): not its answer; the turn is said again once the "
                           "agent has been quiet for %g s", into, turn.said, GREETING_WAIT_S)
            # as long a quiet as before the first turn, counted from the end of speech at the earliest: time
            # for the agent to answer what it heard of the turn (or drop it) before it is said again
            line.answer.last_loud = max(line.answer.last_loud, ended)
            answer, ended, _ = await self._say(turn, GREETING_WAIT_S)
        if answer.started_at is None:
            result.error = line.ended or f"no answer within {self._options.timeout:g} s of the end of speech" + (
                "" if line.agent_audio.is_set() else " (the agent has published no audio track: is it a voice agent?)")
            result.understood = " ".join(answer.understood) or None
            return result
        result.latency_ms = round((answer.started_at - ended) * 1000, 1)
        # the answer is over after a silence, once the agent (if it says its state) is no longer making it, or
        # after a silence as long as the timeout whatever it says (a tool left running in the background)
        await line.until(lambda: line.quiet_for() >= ANSWER_OVER_S
                         and (not line.busy() or line.quiet_for() >= self._options.timeout), ANSWER_MAX_S)
        if line.saw_agent_text or line.speaking() is not None:
            await line.until(lambda: bool(answer.texts), TRANSCRIPT_GRACE_S)
        result.understood = " ".join(answer.understood) or None
        result.answered = " ".join(answer.texts) or None
        if self._recognizer is not None:
            pcm = trim(bytes(answer.pcm))
            result.heard = await asyncio.to_thread(self._recognizer.recognize, pcm)
        return result
