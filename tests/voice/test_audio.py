"""WAV files for `agenthost call --wav`: any PCM WAV becomes 16 kHz mono; anything else is refused by name."""

import struct
import wave

import numpy as np
import pytest

from host.voice.audio import AudioFileError, read_wav, rms, write_wav
from host.voice.speech import SAMPLE_RATE


def tone(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)


def write(path, samples: bytes, rate: int, channels: int, width: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples)


def test_16k_mono_is_read_as_it_is(tmp_path):
    samples = tone(SAMPLE_RATE)
    write_wav(tmp_path / "a.wav", samples.tobytes())
    assert read_wav(tmp_path / "a.wav") == samples.tobytes()


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    mono = tone(44100)
    write(tmp_path / "s.wav", np.repeat(mono, 2).tobytes(), 44100, 2, 2)
    pcm = read_wav(tmp_path / "s.wav")
    assert abs(len(pcm) / 2 - SAMPLE_RATE * 0.5) < SAMPLE_RATE * 0.02  # half a second, at 16 kHz
    assert rms(pcm) == pytest.approx(rms(mono.tobytes()), rel=0.1)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_other_sample_widths_are_converted(tmp_path, width):
    samples = tone(SAMPLE_RATE)
    if width == 1:
        data = bytes(((s >> 8) + 128) & 0xFF for s in samples.tolist())
    else:
        data = b"".join(struct.pack("<i", int(s) << 16)[4 - width:] for s in samples.tolist())
    write(tmp_path / "w.wav", data, SAMPLE_RATE, 1, width)
    pcm = np.frombuffer(read_wav(tmp_path / "w.wav"), dtype=np.int16)
    assert len(pcm) == len(samples)
    assert np.max(np.abs(pcm.astype(int) - samples.astype(int))) <= (256 if width == 1 else 1)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(AudioFileError, match=r"missing\.wav: no such file"):
        read_wav(tmp_path / "missing.wav")


def test_a_float_wav_is_refused_with_the_conversion_to_make(tmp_path):
    path = tmp_path / "float.wav"
    data = np.zeros(100, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, SAMPLE_RATE, SAMPLE_RATE * 4, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)
    with pytest.raises(AudioFileError, match=r"float\.wav: not a PCM WAV file .*sox .* -r 16000 -c 1 -b 16"):
        read_wav(path)


def test_not_a_wav_is_refused(tmp_path):
    (tmp_path / "x.wav").write_text("not audio")
    with pytest.raises(AudioFileError, match=r"x\.wav: not a PCM WAV file"):
        read_wav(tmp_path / "x.wav")


def test_rms_of_silence_and_of_a_tone():
    assert rms(bytes(320)) == 0.0
    assert rms(tone(SAMPLE_RATE).tobytes()) == pytest.approx(10000 / 2 ** 0.5, rel=0.01)
