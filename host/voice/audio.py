"""WAV files in and out of a call, as 16 kHz mono 16-bit PCM, and the loudness of a stretch of audio."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from livekit import rtc

from host.errors import AgentHostError
from host.voice.speech import SAMPLE_RATE

MAX_SECONDS = 600  # a turn longer than ten minutes is a mistake, not a test


class AudioFileError(AgentHostError):
    """A WAV file that cannot be read or used; the message names it and says why."""


def read_wav(path: str | Path) -> bytes:
    """The PCM of a WAV file, converted to 16 kHz mono 16-bit (any rate, channels, 8/16/24/32-bit PCM)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width, count = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(),
                                            wav.getnframes())
            if count > rate * MAX_SECONDS:
                raise AudioFileError(f"{path}: {count / rate:.0f} s of audio; a turn may be at most {MAX_SECONDS} s")
            data = wav.readframes(count)
    except FileNotFoundError as exc:
        raise AudioFileError(f"{path}: no such file") from exc
    except (wave.Error, EOFError) as exc:
        raise AudioFileError(f"{path}: not a PCM WAV file ({exc}); convert it with "
                             f"`sox {path} -r {SAMPLE_RATE} -c 1 -b 16 out.wav`") from exc
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read it: {exc}") from exc
    samples = _to_int16(data, width)
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate == SAMPLE_RATE:
        return samples.tobytes()
    frame = rtc.AudioFrame(samples.tobytes(), rate, 1, len(samples))
    resampler = rtc.AudioResampler(rate, SAMPLE_RATE, num_channels=1,
                                   quality=rtc.AudioResamplerQuality.HIGH)
    return b"".join(bytes(f.data) for f in [*resampler.push(frame), *resampler.flush()])


def _to_int16(data: bytes, width: int) -> np.ndarray:
    if width == 2:
        return np.frombuffer(data, dtype="<i2").astype(np.int16)
    if width == 1:  # unsigned 8-bit
        return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width in (3, 4):  # signed little-endian: keep the top 16 bits of each sample
        raw = np.frombuffer(data[: len(data) // width * width], dtype=np.uint8).reshape(-1, width)
        return raw[:, width - 2:].copy().view("<i2").reshape(-1).astype(np.int16)
    raise AudioFileError(f"{width * 8}-bit samples are not supported")


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)


def rms(pcm: bytes | memoryview) -> float:
    """Root mean square of 16-bit samples: about 0 for silence, thousands for speech."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
