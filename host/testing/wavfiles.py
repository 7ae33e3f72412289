"""WAV files made by hand for tests, as tools other than Python's `wave` write them: any format chunk, and the
WAVE_FORMAT_EXTENSIBLE header sox and ffmpeg write for 24-bit or multichannel audio."""

from __future__ import annotations

import struct

_SUB_FORMAT_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # the KSDATAFORMAT GUID after its first 2 bytes


def riff(fmt: bytes, data: bytes) -> bytes:
    """A RIFF WAVE file of a format chunk `fmt` and a data chunk `data`."""
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def extensible(sub_format: int, channels: int, rate: int, bits: int) -> bytes:
    """A WAVE_FORMAT_EXTENSIBLE format chunk; `sub_format` 1 is integer PCM, 3 float."""
    block = channels * bits // 8
    return (struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
            + struct.pack("<HHI", 22, bits, 3) + struct.pack("<H", sub_format) + _SUB_FORMAT_TAIL)


def pcm24(samples: list[int], channels: int) -> bytes:
    """16-bit `samples` as 24-bit little-endian ones, each repeated on `channels` channels."""
    return b"".join(struct.pack("<i", s << 8)[:3] * channels for s in samples)
