"""What a call is made of: a turn's result as printed in --json, an answer's trailing silence trimmed."""

import numpy as np

from host.voice.speech import SAMPLE_RATE
from host.voice.turns import ANSWER_OVER_S, CallOptions, TurnResult, speech_between, trailing_silence, trim


def test_an_answer_loses_most_of_the_silence_that_ended_it_and_nothing_of_a_short_one():
    speech = np.full(SAMPLE_RATE, 3000, dtype=np.int16)
    silence = np.zeros(int(ANSWER_OVER_S * SAMPLE_RATE), dtype=np.int16)
    trimmed = np.frombuffer(trim(np.concatenate([speech, silence]).tobytes()), dtype=np.int16)
    assert len(speech) <= len(trimmed) < len(speech) + len(silence) // 2
    assert (trimmed[: len(speech)] == 3000).all()
    assert trim(np.zeros(100, dtype=np.int16).tobytes()) == b""


def test_a_turn_result_has_every_field_json_prints_and_each_caller_its_own_identity():
    result = TurnResult(said="hello", understood="hello", latency_ms=412.5)
    assert result.as_dict() == {"said": "hello", "understood": "hello", "answered": None, "heard": None,
                                "latency_ms": 412.5, "error": None}
    assert CallOptions().identity != CallOptions().identity
    assert CallOptions().identity.startswith("caller-")


def test_the_end_of_speech_is_its_last_loud_window_not_the_end_of_its_audio():
    rng = np.random.default_rng(1)
    speech = (np.sin(np.arange(SAMPLE_RATE) / 5) * 5000).astype(np.int16)
    silence = np.zeros(SAMPLE_RATE, dtype=np.int16)
    assert abs(trailing_silence(np.concatenate([speech, silence]).tobytes()) - 1.0) < 0.021
    assert trailing_silence(speech.tobytes()) < 0.021
    # a recording's noise floor after the speech is silence too, and before it changes nothing
    noise = (rng.normal(0, 120, SAMPLE_RATE // 2)).astype(np.int16)
    assert abs(trailing_silence(np.concatenate([noise, speech, noise]).tobytes()) - 0.5) < 0.021
    assert trailing_silence(np.concatenate([silence, noise // 4]).tobytes()) is None
    assert trailing_silence(b"") is None


def test_flites_speech_ends_a_little_before_its_audio():
    import pytest

    from host.voice.speech import SpeechUnavailable, Synthesizer

    try:
        pcm = Synthesizer().synthesize("hello there")
    except SpeechUnavailable as exc:
        pytest.skip(str(exc))
    tail = trailing_silence(pcm)
    assert tail is not None and 0.0 <= tail < 0.5


def test_speech_between_two_times_is_found_in_its_windows_and_not_in_the_pause_around_it():
    tone = (np.sin(np.arange(SAMPLE_RATE // 2) / 5) * 5000).astype(np.int16)
    pause = np.zeros(SAMPLE_RATE, dtype=np.int16)
    pcm = np.concatenate([tone, pause, tone]).tobytes()  # speech 0-0.5 s, a pause, speech 1.5-2 s
    assert speech_between(pcm, 0.2, 0.4) and speech_between(pcm, 1.4, 1.6) and speech_between(pcm, 0.45, 1.0)
    assert not speech_between(pcm, 0.6, 1.4)  # inside the pause
    assert not speech_between(pcm, 2.1, 2.5)  # after the end
    assert not speech_between(np.zeros(SAMPLE_RATE, dtype=np.int16).tobytes(), 0.0, 1.0)
