"""`agenthost call`'s turns and report, below the CLI."""

import numpy as np
import pytest

from host.errors import AgentHostError
from host.voice.audio import write_wav
from host.voice.command import render_turn, turns
from host.voice.speech import SAMPLE_RATE
from host.voice.turns import TurnResult


def tone(seconds: float) -> bytes:
    return (np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 5) * 5000).astype(np.int16).tobytes()


def test_turns_keep_the_order_of_their_options(tmp_path):
    write_wav(tmp_path / "one.wav", tone(0.1))
    result = turns(["say", "wav", "say"], ["hello", "bye"], [str(tmp_path / "one.wav")])
    assert [t.said for t in result] == ["hello", "one.wav", "bye"]
    assert result[1].pcm == tone(0.1)
    assert len(result[0].pcm) > 3200  # spoken


def test_a_turn_is_rendered_with_what_was_understood_answered_and_heard():
    turn = TurnResult(said="hello there", understood="hello there", answered="hi", heard="hi", latency_ms=812.4)
    assert render_turn(1, turn) == (
        "turn 1: said      'hello there'\n"
        "        understood 'hello there'\n"
        "        answered   'hi'\n"
        "        heard      'hi'\n"
        "        latency    812 ms (end of speech -> first agent audio)")


def test_an_answer_that_began_before_the_end_of_speech_says_so():
    turn = TurnResult(said="hello", heard="hello", latency_ms=-655.2)
    assert render_turn(1, turn).splitlines()[-1] == (
        "        latency    655 ms before the end of speech (the agent spoke while the caller did)")


def test_an_unanswered_turn_says_why():
    turn = TurnResult(said="hello", error="no answer within 20 s of the end of speech")
    assert render_turn(2, turn) == ("turn 2: said      'hello'\n"
                                    "        NO ANSWER: no answer within 20 s of the end of speech")


def test_a_turn_with_no_audio_is_refused(tmp_path):
    write_wav(tmp_path / "empty.wav", b"")
    with pytest.raises(AgentHostError, match=r"empty\.wav has no audio: nothing would be said"):
        turns(["wav"], [], [str(tmp_path / "empty.wav")])


def test_a_recording_of_silence_is_refused(tmp_path):
    write_wav(tmp_path / "silence.wav", bytes(SAMPLE_RATE * 2))
    with pytest.raises(AgentHostError, match=r"silence\.wav holds only silence"):
        turns(["wav"], [], [str(tmp_path / "silence.wav")])

