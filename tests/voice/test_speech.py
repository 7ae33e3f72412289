"""Local speech: flite speaks, pocketsphinx hears it back, and how a turn is judged understood."""

import pytest

from host.voice.speech import SAMPLE_RATE, Recognizer, Synthesizer, understood, word_error_rate, words


def test_words_are_lower_case_without_punctuation():
    assert words("Hello, there! It's 12 o'clock.") == ["hello", "there", "it's", "12", "o'clock"]


@pytest.mark.parametrize(("reference", "hypothesis", "rate"), [
    ("hello there", "hello there", 0.0),
    ("hello there", "Hello, there.", 0.0),
    ("i would like to book a table", "i would like to a buffet table", 2 / 7),
    ("what time is it", "while i'm at it", 3 / 4),
    ("hello", "", 1.0),
    ("", "", 0.0),
    ("", "noise", 1.0),
])
def test_word_error_rate(reference, hypothesis, rate):
    assert word_error_rate(reference, hypothesis) == pytest.approx(rate)


def test_understood_allows_one_word_in_three():
    assert understood("i would like to book a table", "i would like to a buffet table")
    assert not understood("what time is it", "while i'm at it")


def test_flite_speaks_what_pocketsphinx_recognises():
    pcm = Synthesizer().synthesize("what is your name")
    assert len(pcm) % 2 == 0 and 0.5 < len(pcm) / 2 / SAMPLE_RATE < 3.0
    assert Recognizer().recognize(pcm) == "what is your name"


def test_decoder_settings_reach_pocketsphinx_and_the_example_agents_quick_ones_understand_streamed_speech():
    from examples.local_speech import QUICK

    quick = Recognizer(**QUICK)
    assert quick._decoder.config["topn"] == 2 != Recognizer()._decoder.config["topn"]
    synthesizer = Synthesizer()
    piece = SAMPLE_RATE * 2 // 50  # 20 ms, fed as a call's audio arrives (what the example agent does)
    for text in ("hello there", "what is your name", "how are you today", "the weather is nice", "good morning",
                 "can you help me", "cancel my order please", "what time do you close"):
        pcm = synthesizer.synthesize(text)
        quick.start()
        for start in range(0, len(pcm), piece):
            quick.feed(pcm[start:start + piece])
        assert understood(text, quick.finish()), text
