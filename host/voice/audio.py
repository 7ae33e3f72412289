"""WAV files in and out of a call, as 16 kHz mono 16-bit PCM, and the loudness of a stretch of audio."""

from __future__ import annotations

import os
import struct
import tempfile
import wave
from pathlib import Path

import numpy as np
from livekit import rtc

from host.errors import AgentHostError
from host.voice.speech import SAMPLE_RATE

MAX_SECONDS = 600  # a turn longer than ten minutes is a mistake, not a test
MIN_RATE, MAX_RATE = 1000, 768_000  # outside these, a header's rate is not one audio is recorded at
MAX_BYTES = 2**30  # a larger file is refused before it is read (it would be copied several times on the way)


class AudioFileError(AgentHostError):
    """A WAV file that cannot be read or used; the message names it and says why."""


def read_wav(path: str | Path) -> bytes:
    """The PCM of a WAV file, converted to 16 kHz mono 16-bit: any rate and channels; 8/16/24/32-bit integer
    or 32/64-bit float samples; plain or WAVE_FORMAT_EXTENSIBLE headers (which sox, ffmpeg and audio editors
    write for 24-bit or multichannel files, and Python's `wave` module does not read)."""
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise AudioFileError(f"{path}: {size // 2**20} MB; a turn's file may be at most "
                                 f"{MAX_BYTES // 2**20} MB (and {MAX_SECONDS} s)")
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise AudioFileError(f"{path}: no such file") from exc
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read it: {exc}") from exc
    tag, rate, channels, bits, body = _riff(data, path)
    if (tag, bits) not in _SUPPORTED:
        kind = "integer" if tag == _PCM else "float" if tag == _FLOAT else _FORMATS.get(tag, f"format {tag}")
        raise AudioFileError(f"{path}: {kind} samples ({bits}-bit) are not supported; "
                             f"{_CONVERT.format(path=path)}")
    if not MIN_RATE <= rate <= MAX_RATE or not channels:
        raise AudioFileError(f"{path}: its header says {rate} Hz, {channels} channels: not audio; "
                             f"{_CONVERT.format(path=path)}")
    width = bits // 8
    count = len(body) // (width * channels)
    if count > rate * MAX_SECONDS:
        raise AudioFileError(f"{path}: {count / rate:.0f} s of audio; a turn may be at most {MAX_SECONDS} s")
    body = body[: count * width * channels]
    if tag == _PCM:
        samples = _to_int16(body, width)
    else:  # float: NaN is silence, beyond full scale is clipped
        floats = np.nan_to_num(np.frombuffer(body, dtype="<f4" if width == 4 else "<f8"), nan=0.0)
        samples = (np.clip(floats, -1.0, 1.0) * 32767).astype(np.int16)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate == SAMPLE_RATE:
        return samples.tobytes()
    frame = rtc.AudioFrame(samples.tobytes(), rate, 1, len(samples))
    resampler = rtc.AudioResampler(rate, SAMPLE_RATE, num_channels=1,
                                   quality=rtc.AudioResamplerQuality.HIGH)
    return b"".join(bytes(f.data) for f in [*resampler.push(frame), *resampler.flush()])


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_SUPPORTED = {(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (_FLOAT, 32), (_FLOAT, 64)}
_FORMATS = {2: "ADPCM", 6: "A-law", 7: "mu-law", 0x55: "MP3"}
_CONVERT = "convert it with `sox {path} -r 16000 -c 1 -b 16 out.wav`"


def _riff(data: bytes, path: str | Path) -> tuple[int, int, int, int, bytes]:
    """(format tag, rate, channels, bits per sample, sample bytes) of a RIFF WAVE file; the tag of an
    extensible header is its sub-format's."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError(f"{path}: not a WAV file (no RIFF/WAVE header); {_CONVERT.format(path=path)}")
    fmt = body = None
    at = 12
    while at + 8 <= len(data) and (fmt is None or body is None):
        chunk, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if chunk == b"fmt ":
            fmt = data[at + 8:at + 8 + size]
        elif chunk == b"data":
            body = data[at + 8:at + 8 + size]  # a streamed file's size may overstate: what is there is read
        at += 8 + size + (size & 1)
    if fmt is None or body is None:
        raise AudioFileError(f"{path}: a WAV file with no {'format' if fmt is None else 'data'} chunk; "
                             f"{_CONVERT.format(path=path)}")
    if len(fmt) < 16:
        raise AudioFileError(f"{path}: its format chunk is {len(fmt)} bytes, too short to say what the audio is; "
                             f"{_CONVERT.format(path=path)}")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    return tag, rate, channels, bits, body


def _to_int16(data: bytes, width: int) -> np.ndarray:
    if width == 2:
        return np.frombuffer(data, dtype="<i2").astype(np.int16)
    if width == 1:  # unsigned 8-bit
        return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    # 3 or 4 bytes, signed little-endian: keep the top 16 bits of each sample
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
    return raw[:, width - 2:].copy().view("<i2").reshape(-1).astype(np.int16)


def record_folder(path: str) -> Path:
    """The folder a call saves the agent's answers in, made if need be and found writable before the call
    starts; AgentHostError (saying why) when it cannot be."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise AgentHostError(f"cannot save the answers in {path}: {exc.strerror or exc}") from exc
    return folder


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
