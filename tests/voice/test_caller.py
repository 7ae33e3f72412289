"""The caller's judgement of a turn's first agent audio: an answer, or the agent talking on its own."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from livekit import rtc

from host.config.credentials import Credentials
from host.voice.caller import Caller
from host.voice.line import AGENT_STATE
from host.voice.microphone import QUEUE_MS
from host.voice.speech import SAMPLE_RATE
from host.voice.turns import Answer, CallOptions, Turn

SPEECH = (np.sin(np.arange(2 * SAMPLE_RATE) / 5) * 5000).astype(np.int16)  # two seconds of speech
TURN = Turn("a two second turn", np.concatenate([SPEECH, np.zeros(SAMPLE_RATE, dtype=np.int16)]).tobytes())
BEGAN = 100.0  # when the turn began being said (monotonic)


def caller(state: str | None) -> Caller:
    """A caller in a room with an agent saying `state` (None: none); made in a running loop, as its room needs."""
    made = Caller(Credentials("ws://127.0.0.1:9", "k", "s" * 32), CallOptions(recognize=False))
    agent = SimpleNamespace(kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT, identity="agent-1",
                            attributes={} if state is None else {AGENT_STATE: state})
    made._line.room = SimpleNamespace(remote_participants={"agent-1": agent})  # type: ignore[assignment]
    return made


def heard_at(seconds_into_speech: float, thought_first: bool = False) -> Answer:
    """An answer whose first audio reached the caller as the turn's audio was `seconds_into_speech` in."""
    return Answer(started_at=BEGAN + QUEUE_MS / 1000 + seconds_into_speech, thought_first=thought_first)


async def test_an_agent_that_says_its_state_and_speaks_unthinking_as_the_caller_speaks_is_talking_on_its_own():
    into = caller("speaking")._spoke_on_its_own(TURN, heard_at(0.5), BEGAN)
    assert into is not None and abs(into - 0.5) < 1e-6
    assert caller("speaking")._spoke_on_its_own(TURN, heard_at(2.1), BEGAN) is not None  # just after the speech


async def test_audio_made_thinking_after_a_pause_or_from_an_agent_with_no_state_is_an_answer():
    assert caller("speaking")._spoke_on_its_own(TURN, heard_at(0.5, thought_first=True), BEGAN) is None
    assert caller("speaking")._spoke_on_its_own(TURN, heard_at(2.6), BEGAN) is None  # after a pause: a reply
    assert caller(None)._spoke_on_its_own(TURN, heard_at(0.5), BEGAN) is None  # one that plays back what it hears
    assert caller("speaking")._spoke_on_its_own(TURN, Answer(), BEGAN) is None  # no audio at all
