"""What the example voice agent's recogniser settings cost and what they understand: pocketsphinx's defaults (what
`agenthost call` hears with) against `QUICK` (examples/local_speech.py, what `voice-local` listens with) and
against FASTER, pocketsphinx's other speed settings on top of it (no second search pass, fewer active states).

Each phrase is spoken by flite (the voice `agenthost call` speaks with), padded with 0.2 s of silence each side,
and fed to the recogniser in 20 ms pieces as a call's audio arrives. Per setting: the CPU per second of audio
fed, the CPU left when the utterance ends (on the path of the answer), and how many phrases were
understood (at most one word in three wrong, host.voice.speech.understood) and recognised exactly.

Usage: python bench/speech_bench.py
"""

from __future__ import annotations

import sys
import time
from typing import Any

from record import save  # bench/record.py, beside this script

from examples.local_speech import QUICK
from host.voice.speech import SAMPLE_RATE, Recognizer, Synthesizer, understood, word_error_rate

PHRASES = (
    "hello there", "what is your name", "how are you today", "the weather is nice", "what time is it", "goodbye",
    "book a table for two", "hello, this is the local voice agent", "i am fine, thank you", "my name is local agent",
    "goodbye, have a nice day", "you said the weather is nice", "sorry, i did not hear you", "tell me a story",
    "please call me tomorrow morning", "good morning", "can you help me", "i would like to order a pizza",
    "what is the weather like today", "please repeat that", "my phone number is five five five one two three four",
    "i need to change my booking", "where is the nearest station", "thank you very much",
    "is the store open on sunday", "send me the invoice", "i want to speak to a person",
    "the meeting is at three o'clock", "how much does it cost", "cancel my order please", "what time do you close",
    "i lost my password", "turn on the lights", "play some music", "check my account balance",
    "how long will it take", "i am calling about my delivery", "yes that is right", "no thank you",
    "can you call me back later",
)
PIECE = SAMPLE_RATE * 2 // 50  # 20 ms of 16-bit samples
PAD = b"\0" * (SAMPLE_RATE * 2 // 5)  # 0.2 s of silence
REPEAT = 2  # each phrase decoded this many times, for steadier CPU figures
FASTER = {**QUICK, "fwdflat": False, "maxhmmpf": 3000, "maxwpf": 5}


def measure(recognizer: Recognizer, spoken: dict[str, bytes]) -> dict[str, Any]:
    recognizer.recognize(next(iter(spoken.values())))  # warm: the first utterance also pages the model in
    fed = finished = 0.0
    heard: dict[str, str] = {}
    for _ in range(REPEAT):
        for text, pcm in spoken.items():
            audio = PAD + pcm + PAD
            recognizer.start()
            started = time.process_time()
            for i in range(0, len(audio), PIECE):
                recognizer.feed(audio[i:i + PIECE])
            ended = time.process_time()
            heard[text] = recognizer.finish()
            finished += time.process_time() - ended
            fed += ended - started
    seconds = REPEAT * sum(len(PAD + pcm + PAD) for pcm in spoken.values()) / (SAMPLE_RATE * 2)
    return {"cpu_per_audio_second": fed / seconds,
            "ms_at_end_of_utterance": 1000 * finished / (REPEAT * len(spoken)),
            "understood": sum(understood(text, heard[text]) for text in spoken),
            "exact": sum(word_error_rate(text, heard[text]) == 0 for text in spoken),
            "phrases": len(spoken), "misheard": {t: h for t, h in heard.items() if not understood(t, h)}}


def main() -> int:
    synthesizer = Synthesizer()
    spoken = {text: synthesizer.synthesize(text) for text in PHRASES}
    settings = {"defaults": {}, "QUICK": QUICK, "FASTER": FASTER}
    figures = {name: measure(Recognizer(**options), spoken) for name, options in settings.items()}
    for name, f in figures.items():
        print(f"{name:<9} {f['cpu_per_audio_second']:.3f} CPU-s per second of audio, "
              f"{f['ms_at_end_of_utterance']:5.1f} ms at the end of an utterance, understood "
              f"{f['understood']}/{f['phrases']}, exact {f['exact']}/{f['phrases']}")
        for text, heard in f["misheard"].items():
            print(f"          misheard {text!r} as {heard!r}")
    quick, defaults = figures["QUICK"], figures["defaults"]
    print(f"QUICK / defaults: {quick['cpu_per_audio_second'] / defaults['cpu_per_audio_second']:.2f}x the CPU "
          f"while fed, {quick['ms_at_end_of_utterance'] / defaults['ms_at_end_of_utterance']:.2f}x at the end")
    save("speech_bench", {"settings": settings, "figures": figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
