"""What a call is made of: a turn's result as printed in --json, an answer's trailing silence trimmed."""

import numpy as np

from host.voice.speech import SAMPLE_RATE
from host.voice.turns import ANSWER_OVER_S, CallOptions, TurnResult, trim


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
