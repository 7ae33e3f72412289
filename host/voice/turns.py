"""What a call is made of: its options, the turns the caller speaks, each turn's result, and the agent's answer
as it is heard."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from host.errors import AgentHostError
from host.voice.speech import SAMPLE_RATE

SPEECH_RMS = 200.0  # louder than this is the agent speaking; decoded silence is near 0, flite's speech thousands
ANSWER_OVER_S = 0.8  # this much silence after the agent spoke ends its answer (flite pauses ~0.3 s at a comma)
# an agent that heard the caller speak this recently cannot be answering: it has not heard the end of a turn
HEARD_SPEAKING_S = 0.3


class CallError(AgentHostError):
    """The call could not go on (the agent never joined, the room was closed); the message says why."""


@dataclass(frozen=True)
class Turn:
    """One thing the caller says: `said` is its text (for --say) or the WAV file's name."""

    said: str
    pcm: bytes  # 16 kHz mono 16-bit


@dataclass
class TurnResult:
    said: str
    understood: str | None = None  # the agent's final transcript of the caller's turn
    answered: str | None = None  # the agent's own transcript of its answer
    heard: str | None = None  # what the caller's recogniser heard in the agent's audio
    latency_ms: float | None = None  # end of the caller's speech -> the agent's first audio (< 0: before it)
    error: str | None = None  # why the turn counts as unanswered

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class CallOptions:
    timeout: float = 20.0  # for the agent to join, and for each answer to start
    record: Path | None = None  # a folder for one WAV per answer
    recognize: bool = True  # run the recogniser on each answer (the `heard` field)
    pause: float = 0.0  # seconds of silence before each turn, once the agent is quiet
    identity: str = field(default_factory=lambda: f"caller-{uuid.uuid4().hex[:6]}")


@dataclass
class Answer:
    """The agent's audio and text for the turn in progress; written by the listeners, read by the turn."""

    started_at: float | None = None  # monotonic time of the first loud frame
    thought_first: bool = False  # the agent had said it was thinking since the turn began, by that frame
    last_loud: float = 0.0
    pcm: bytearray = field(default_factory=bytearray)
    texts: list[str] = field(default_factory=list)
    understood: list[str] = field(default_factory=list)


SPEECH_FLOOR_RMS = 100.0  # a 20 ms window quieter than this (about -50 dBFS) is silence in what a caller says
SPEECH_DROP = 0.05  # ... and one quieter than this share of the loudest window (a recording's noise floor)
WINDOW = SAMPLE_RATE // 50  # 20 ms


def _speech_windows(pcm: bytes) -> tuple[np.ndarray, int]:
    """The indexes of `pcm`'s 20 ms windows that are speech (16 kHz mono 16-bit), and how many samples it has."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16).astype(np.float64)
    windows = len(samples) // WINDOW
    if windows == 0:
        return np.zeros(0, dtype=np.int64), len(samples)
    rms = np.sqrt(np.mean(samples[: windows * WINDOW].reshape(windows, WINDOW) ** 2, axis=1))
    return np.flatnonzero(rms >= max(SPEECH_FLOOR_RMS, SPEECH_DROP * float(rms.max()))), len(samples)


def trailing_silence(pcm: bytes) -> float | None:
    """Seconds of silence after the last speech in `pcm` (16 kHz mono 16-bit), where the turn's speech ends
    (a recording often ends with a second of it, flite's speech with a tenth); None when it holds no speech."""
    loud, samples = _speech_windows(pcm)
    if len(loud) == 0:
        return None
    return (samples - (int(loud[-1]) + 1) * WINDOW) / SAMPLE_RATE


def speech_between(pcm: bytes, start: float, end: float) -> bool:
    """Whether `pcm` holds speech (as `trailing_silence` counts it) between `start` and `end` seconds in."""
    loud, _ = _speech_windows(pcm)
    seconds = loud * WINDOW / SAMPLE_RATE
    return bool(np.any((seconds + WINDOW / SAMPLE_RATE > start) & (seconds < end)))


def trim(pcm: bytes) -> bytes:
    """The answer without the trailing silence that told its end (the recogniser needs no more of it)."""
    samples = np.frombuffer(pcm, dtype=np.int16)
    keep = len(samples) - int(ANSWER_OVER_S * SAMPLE_RATE * 0.75)
    return samples[: max(keep, 0)].tobytes()
