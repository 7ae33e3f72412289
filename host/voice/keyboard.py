"""The lines typed at the console, fed to an asyncio queue as they come (None at the end of the input): a terminal or
a pipe watched on the loop, a file (`console AGENT < script.txt`) read by a thread."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from typing import TextIO


def read_lines(queue: asyncio.Queue[str | None], stream: TextIO = sys.stdin) -> Callable[[], None]:
    """Feed `queue` with the lines typed on `stream` (None at its end); returns what stops it. A terminal or
    a pipe is watched on the loop; a file (`console AGENT < script.txt`) is read by a thread."""
    loop = asyncio.get_running_loop()
    try:
        return _watch_lines(loop, queue, stream.fileno())
    except (PermissionError, OSError, ValueError):  # not selectable: a regular file, /dev/null
        def read_all() -> None:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
            loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=read_all, name="console-input", daemon=True).start()
        return lambda: None


def _watch_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], fd: int) -> Callable[[], None]:
    buffer = bytearray()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(fd)
            if buffer:
                queue.put_nowait(buffer.decode("utf-8", "replace"))
            queue.put_nowait(None)
            return
        buffer.extend(data)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            queue.put_nowait(line.decode("utf-8", "replace"))

    loop.add_reader(fd, readable)

    def stop() -> None:
        loop.remove_reader(fd)

    return stop
