"""`agenthost call`'s turns and report, below the CLI."""

import json

import numpy as np
import pytest

from host.config.credentials import Credentials
from host.errors import AgentHostError
from host.voice import command
from host.voice.audio import write_wav
from host.voice.command import EXIT_OK, EXIT_UNANSWERED, render_turn, run_call, turns
from host.voice.speech import SAMPLE_RATE, SpeechUnavailable
from host.voice.turns import CallError, Turn, TurnResult

CREDENTIALS = Credentials("ws://127.0.0.1:9", "key", "s" * 32)


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



class ScriptedCaller:
    """Stands in for the caller: answers the first turn, then (`fail`) the call ends; records its options."""

    options: list = []  # the options of each caller made
    fail = False
    missing_recognizer = False

    def __init__(self, _credentials, options) -> None:
        if options.recognize and self.missing_recognizer:
            raise SpeechUnavailable("local speech recognition needs pocketsphinx: pip install 'agenthost[voice]'")
        ScriptedCaller.options.append(options)
        self.joined = False

    async def call(self, _agent, _room, _metadata, call_turns, on_turn):
        on_turn(1, TurnResult(said=call_turns[0].said, answered="hi", latency_ms=420.0))
        if self.fail:
            raise CallError("agent agent-1 left the room")
        results = [TurnResult(said=turn.said, answered="hi", latency_ms=420.0) for turn in call_turns[1:]]
        for i, result in enumerate(results, 2):
            on_turn(i, result)
        return [TurnResult(said=call_turns[0].said, answered="hi", latency_ms=420.0), *results]


def call(monkeypatch, **scripted) -> int:
    ScriptedCaller.options = []
    for key, value in {"fail": False, "missing_recognizer": False, **scripted}.items():
        monkeypatch.setattr(ScriptedCaller, key, value)
    monkeypatch.setattr(command, "Caller", ScriptedCaller)
    return run_call(CREDENTIALS, "voice-local", "", [Turn("one", b"x"), Turn("two", b"x"), Turn("three", b"x")],
                    room="r", record=None, timeout=5.0, as_json=True)


def test_a_call_that_ends_early_reports_the_turns_it_had_answered_and_the_rest_as_not_spoken(monkeypatch, capsys):
    code = call(monkeypatch, fail=True)
    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_UNANSWERED and report["error"] == "agent agent-1 left the room"
    assert [(t["said"], t["latency_ms"], t["error"]) for t in report["turns"]] == [
        ("one", 420.0, None),
        ("two", None, "not spoken: agent agent-1 left the room"),
        ("three", None, "not spoken: agent agent-1 left the room")]


def test_without_the_recogniser_a_call_is_made_and_measured_and_says_what_it_leaves_out(monkeypatch, capsys):
    code = call(monkeypatch, missing_recognizer=True)
    out, err = capsys.readouterr()
    assert code == EXIT_OK and [t["latency_ms"] for t in json.loads(out)["turns"]] == [420.0] * 3
    assert [options.recognize for options in ScriptedCaller.options] == [False]
    assert "needs pocketsphinx" in err and "'heard' is left out" in err
