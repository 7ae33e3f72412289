"""WAV files for `agenthost call --wav`: integer or float samples, plain or extensible headers, become 16 kHz
mono; anything else is refused by name, with the conversion to make."""

import struct
import wave

import numpy as np
import pytest

from host.errors import AgentHostError
from host.testing.wavfiles import extensible, pcm24, riff
from host.voice.audio import AudioFileError, read_wav, record_folder, rms, write_wav
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


def test_a_float_wav_is_converted(tmp_path):
    samples = tone(SAMPLE_RATE)
    data = (samples.astype("<f4") / 32767).tobytes()
    (tmp_path / "float.wav").write_bytes(riff(struct.pack("<HHIIHH", 3, 1, SAMPLE_RATE, SAMPLE_RATE * 4, 4, 32), data))
    pcm = np.frombuffer(read_wav(tmp_path / "float.wav"), dtype=np.int16)
    assert np.max(np.abs(pcm.astype(int) - samples.astype(int))) <= 1


def test_an_extensible_24_bit_stereo_wav_is_read(tmp_path):
    mono = tone(48000)
    (tmp_path / "ext.wav").write_bytes(riff(extensible(1, 2, 48000, 24), pcm24(mono.tolist(), 2)))
    pcm = read_wav(tmp_path / "ext.wav")
    assert abs(len(pcm) / 2 - SAMPLE_RATE * 0.5) < SAMPLE_RATE * 0.02
    assert rms(pcm) == pytest.approx(rms(mono.tobytes()), rel=0.1)


def test_an_extensible_float_wav_is_read(tmp_path):
    samples = tone(SAMPLE_RATE)
    data = (samples.astype("<f4") / 32767).tobytes()
    (tmp_path / "f.wav").write_bytes(riff(extensible(3, 1, SAMPLE_RATE, 32), data))
    assert rms(read_wav(tmp_path / "f.wav")) == pytest.approx(rms(samples.tobytes()), rel=0.01)


def test_a_compressed_wav_is_refused_with_the_conversion_to_make(tmp_path):
    path = tmp_path / "mulaw.wav"
    path.write_bytes(riff(struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8), bytes(100)))
    with pytest.raises(AudioFileError, match=r"mulaw\.wav: mu-law samples \(8-bit\) are not supported; convert it "
                                             r"with `sox .* -r 16000 -c 1 -b 16 out\.wav`"):
        read_wav(path)


def test_chunks_are_found_wherever_they_are_and_odd_ones_skipped_with_their_pad_byte(tmp_path):
    samples = tone(SAMPLE_RATE)
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    odd = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # 5 bytes, padded to 6
    body = (b"data" + struct.pack("<I", len(samples) * 2) + samples.tobytes() + odd
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt)  # data before fmt, a chunk between them
    (tmp_path / "order.wav").write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    assert read_wav(tmp_path / "order.wav") == samples.tobytes()
    # a LIST chunk of odd size first, then fmt and a data chunk whose size overstates what was written
    data = b"data" + struct.pack("<I", 10**6) + samples.tobytes()
    (tmp_path / "list.wav").write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + odd + b"fmt "
                                        + struct.pack("<I", len(fmt)) + fmt + data)
    assert read_wav(tmp_path / "list.wav") == samples.tobytes()


def test_a_header_with_no_channels_or_a_short_format_is_refused(tmp_path):
    (tmp_path / "none.wav").write_bytes(riff(struct.pack("<HHIIHH", 1, 0, SAMPLE_RATE, 0, 0, 16), bytes(100)))
    with pytest.raises(AudioFileError, match=r"none\.wav: its header says 16000 Hz, 0 channels: not audio"):
        read_wav(tmp_path / "none.wav")
    (tmp_path / "fast.wav").write_bytes(riff(struct.pack("<HHIIHH", 1, 1, 4_000_000_000, 0, 2, 16), bytes(100)))
    with pytest.raises(AudioFileError, match=r"fast\.wav: its header says 4000000000 Hz, 1 channels: not audio"):
        read_wav(tmp_path / "fast.wav")
    (tmp_path / "short.wav").write_bytes(riff(b"\x01\x00\x01\x00", bytes(100)))
    with pytest.raises(AudioFileError, match=r"short\.wav: its format chunk is 4 bytes, too short"):
        read_wav(tmp_path / "short.wav")


def test_adpcm_is_named_and_nan_is_silence(tmp_path):
    (tmp_path / "adpcm.wav").write_bytes(riff(struct.pack("<HHIIHH", 2, 1, 8000, 4000, 256, 4), bytes(100)))
    with pytest.raises(AudioFileError, match=r"adpcm\.wav: ADPCM samples \(4-bit\) are not supported"):
        read_wav(tmp_path / "adpcm.wav")
    data = np.array([np.nan, 0.5, -2.0], dtype="<f4").tobytes()
    (tmp_path / "nan.wav").write_bytes(riff(struct.pack("<HHIIHH", 3, 1, SAMPLE_RATE, SAMPLE_RATE * 4, 4, 32), data))
    assert np.frombuffer(read_wav(tmp_path / "nan.wav"), dtype=np.int16).tolist() == [0, 16383, -32767]


def test_a_wav_with_no_data_is_refused(tmp_path):
    path = tmp_path / "nodata.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 28) + b"WAVEfmt " + struct.pack("<I", 16)
                     + struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16))
    with pytest.raises(AudioFileError, match=r"nodata\.wav: a WAV file with no data chunk"):
        read_wav(path)


def test_not_a_wav_is_refused(tmp_path):
    (tmp_path / "x.wav").write_text("not audio")
    with pytest.raises(AudioFileError, match=r"x\.wav: not a WAV file \(no RIFF/WAVE header\); convert it"):
        read_wav(tmp_path / "x.wav")


def test_rms_of_silence_and_of_a_tone():
    assert rms(bytes(320)) == 0.0
    assert rms(tone(SAMPLE_RATE).tobytes()) == pytest.approx(10000 / 2 ** 0.5, rel=0.01)


def test_a_record_folder_is_made_or_refused_with_the_reason(tmp_path):
    assert record_folder(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())  # its probe is gone
    (tmp_path / "file").write_text("")
    with pytest.raises(AgentHostError, match=r"cannot save the answers in .*file/x: Not a directory"):
        record_folder(str(tmp_path / "file" / "x"))
