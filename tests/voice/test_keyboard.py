"""Typed lines reaching the console's queue, from a terminal or pipe and from a file."""

from __future__ import annotations

import asyncio
import os

from host.voice.keyboard import read_lines


async def test_typed_lines_arrive_whole_and_the_end_of_input_says_so():
    read_end, write_end = os.pipe()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    with os.fdopen(read_end) as stream:
        stop = read_lines(queue, stream)
        os.write(write_end, b"hel")
        os.write(write_end, b"lo\nsecond line\nno newline")
        os.close(write_end)
        got = [await asyncio.wait_for(queue.get(), 5) for _ in range(4)]
        stop()
    assert got == ["hello", "second line", "no newline", None]


async def test_lines_from_a_file_are_read_too(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("first\nsecond\n")
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    with script.open() as stream:  # a regular file cannot be watched on the loop: a thread reads it
        read_lines(queue, stream)
        got = [await asyncio.wait_for(queue.get(), 5) for _ in range(3)]
    assert got == ["first", "second", None]
