"""Local speech, with nothing downloaded at run time: Debian's flite speaks, pocketsphinx listens.

Both serve `agenthost call` (the caller's voice, and its ear for the agent's answers) and the example voice
agent (examples/voice_local.py). Audio is 16 kHz mono signed 16-bit PCM throughout, the rate flite's kal16
voice speaks at and pocketsphinx's en-US model was trained on, so neither side resamples.

flite is called through its shared library (ctypes releases the GIL for the call, so synthesis in a thread
runs beside the event loop). pocketsphinx decodes holding the GIL, a tenth to a quarter of the audio's
duration depending on its settings: fed as the audio arrives, each piece is a few milliseconds of work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from typing import Any

from host.errors import AgentHostError

SAMPLE_RATE = 16000
VOICE = "kal16"  # of flite's voices, the one pocketsphinx recognises best (14 of 15 test phrases exactly)


class SpeechUnavailable(AgentHostError):
    """A local speech engine is not installed; the message says how to install it."""


class _Wave(ctypes.Structure):
    _fields_ = [("type", ctypes.c_char_p), ("sample_rate", ctypes.c_int), ("num_samples", ctypes.c_int),
                ("num_channels", ctypes.c_int), ("samples", ctypes.POINTER(ctypes.c_short))]


class Synthesizer:
    """Text to 16 kHz PCM with flite's kal16 voice, from Debian's libflite (the `flite` package)."""

    def __init__(self, voice: str = VOICE) -> None:
        try:
            self._lib = ctypes.CDLL("libflite.so.1")
            voice_lib = ctypes.CDLL(f"libflite_cmu_us_{voice}.so.1")
        except OSError as exc:
            raise SpeechUnavailable(f"local speech synthesis needs flite's library and its {voice} voice "
                                    f"(Debian: apt-get install flite): {exc}") from exc
        self._lib.flite_init()
        register = getattr(voice_lib, f"register_cmu_us_{voice}")
        register.restype, register.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
        self._voice = register(None)
        self._lib.flite_text_to_wave.restype = ctypes.POINTER(_Wave)
        self._lib.flite_text_to_wave.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        self._lib.delete_wave.argtypes = [ctypes.POINTER(_Wave)]
        self._lock = threading.Lock()  # flite keeps state in its voice; one utterance at a time

    def synthesize(self, text: str) -> bytes:
        """The PCM of `text` spoken (16 kHz, mono, 16-bit)."""
        with self._lock:
            wave = self._lib.flite_text_to_wave(text.encode("utf-8", "replace"), self._voice)
            try:
                if wave.contents.sample_rate != SAMPLE_RATE or wave.contents.num_channels != 1:
                    raise SpeechUnavailable(f"flite spoke at {wave.contents.sample_rate} Hz, "
                                            f"{wave.contents.num_channels} channels; expected {SAMPLE_RATE} Hz mono")
                return ctypes.string_at(wave.contents.samples, wave.contents.num_samples * 2)
            finally:
                self._lib.delete_wave(wave)


class Recognizer:
    """16 kHz PCM to text with pocketsphinx's en-US model, which ships in its wheel (`agenthost[voice]`).

    One utterance at a time: `start`, `feed` as audio arrives (decoding goes along with it, so little is left
    to do at the end), `finish`. The model's 90 MB are read-only once loaded: a recogniser made before a fork
    is shared by the processes forked after it. `options` are pocketsphinx decoder settings (its
    command-line options without the dash, `fwdflat=False`); left out, its defaults, its most accurate.
    """

    def __init__(self, **options: Any) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:
            raise SpeechUnavailable("local speech recognition needs pocketsphinx: "
                                    "pip install 'agenthost[voice]'") from exc
        self._decoder: Any = Decoder(samprate=SAMPLE_RATE, logfn=os.devnull, **options)

    def start(self) -> None:
        self._decoder.start_utt()

    def feed(self, pcm: bytes) -> None:
        self._decoder.process_raw(pcm, full_utt=False)

    def finish(self) -> str:
        """What was said since `start`, lower case; "" for nothing recognised."""
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def recognize(self, pcm: bytes) -> str:
        """What was said in `pcm` (16 kHz, mono, 16-bit), as one utterance."""
        self.start()
        self._decoder.process_raw(pcm, full_utt=True)
        return self.finish()


_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """`text` as the recogniser would write it: lower-case words, no punctuation."""
    return _WORD.findall(text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance from `reference` to `hypothesis`, over the reference's length (0: exact)."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / len(ref)


# A turn counts as understood when at most one word in three differs: pocketsphinx's full language model
# sometimes splits or merges a word on flite's voice ("book a" -> "a buffet") while getting the sentence.
UNDERSTOOD_WER = 1 / 3


def understood(reference: str, hypothesis: str) -> bool:
    return word_error_rate(reference, hypothesis) <= UNDERSTOOD_WER
