"""A job or template process's stdout and stderr, as the host reads them: a pipe of its own per process.

Agent code never shares the host's stderr (on which it could set O_NONBLOCK, or which it could flood, and the
host's own lines would be lost). Each process the host starts gets the write end of a pipe as its stdout and
stderr (host.wire.protocol.receive_output); the host reads the other end on its event loop and writes each
line to its own log, with the process's fields (agent, pid, job id) set by the host: a process cannot speak as
another one, nor as the host. A job process's own log records come as JSON lines (its logging is set up so)
and are logged again as records of the same level and logger; anything else it writes (print, a native
library, a child program) is logged as a line of `agenthost.output`.

Bounded: a line is cut at MAX_LINE characters; a process writing more than LINES_PER_SECOND lines in a second
loses the rest of that second's lines, counted and said once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from typing import Any, Protocol

from host.logs import bounded
from host.wire.protocol import OUTPUT

MAX_LINE = 16 * 1024
LINES_PER_SECOND = 200
MAX_FIELDS = 40  # of one JSON record
READ_CHUNK = 64 * 1024
MAX_DRAIN_READS = 64  # after the process exited: what is left is read up to this many times, not forever
_RECORD_KEYS = {"time", "level", "logger", "message", "exception"}
LOGGER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")

output_logger = logging.getLogger("agenthost.output")


class Sender(Protocol):
    def send_first(self, data: bytes, fds: list[int]) -> None: ...


def give_output(channel: Sender, fields: dict[str, Any]) -> ProcessOutput | None:
    """Send a new process the pipe it writes its output to (OUTPUT, before anything else), and start reading
    it; None when the process is gone already (its exit is seen as usual). Until it has its pipe, the process
    runs nothing."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        channel.send_first(OUTPUT, [write_end])
    except OSError:
        os.close(read_end)
        return None
    finally:
        os.close(write_end)
    output = ProcessOutput(read_end, fields)
    output.start()
    return output


def record_from_line(line: str, fields: dict[str, Any]) -> logging.LogRecord:
    """The log record a line of a process's output stands for, with `fields` (the host's) over its own."""
    body: object = None
    if line.startswith("{") and line.endswith("}"):
        with contextlib.suppress(ValueError, RecursionError):
            body = json.loads(line)
    if not (isinstance(body, dict) and isinstance(body.get("message"), str) and isinstance(body.get("logger"), str)):
        record = output_logger.makeRecord(output_logger.name, logging.INFO, "", 0, line, (), None)
        record.fields = dict(fields)
        return record
    level = logging.getLevelName(str(body.get("level", "info")).upper())
    name = body["logger"]
    if not LOGGER_NAME.fullmatch(name):
        name = output_logger.name
    elif name.startswith("agenthost") and not name.startswith("agenthost.job"):
        name = "agenthost.job." + name  # a process does not log as the host's own parts
    own = {k: v for k, v in list(body.items())[:MAX_FIELDS] if k not in _RECORD_KEYS and isinstance(k, str)}
    record = logging.LogRecord(name, level if isinstance(level, int) else logging.INFO, "", 0, body["message"], (),
                               None)
    created = body.get("time")
    if isinstance(created, (int, float)) and abs(created - time.time()) < 3600:
        record.created, record.msecs = float(created), (float(created) % 1) * 1000
    if isinstance(body.get("exception"), str):  # indented: no line of it can pass for one of the host's
        lines = body["exception"][:MAX_LINE].split("\n")
        record.exc_text = "\n".join("    " + bounded(part, MAX_LINE) for part in lines)
    record.fields = {**own, **fields}
    return record


class ProcessOutput:
    """Reads one process's output pipe (`fd`, owned from now on) into the host's log."""

    def __init__(self, fd: int, fields: dict[str, Any]) -> None:
        self.fd = fd
        self.fields = fields  # the host's fields for this process; a job id is added once it has one
        os.set_blocking(fd, False)
        self._partial = bytearray()
        self._skipping = False  # the rest of a line that was cut
        self._window = 0.0
        self._in_window = 0
        self._dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self.read_available)

    def read_available(self) -> bool:
        """Log the whole lines the pipe holds now; False when it held nothing (or has ended)."""
        if self.closed:
            return False
        try:
            data = os.read(self.fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self._flush_partial()
            self.close()
            return False
        self._take(data)
        return True

    def _take(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._over_budget():  # the rest of its whole lines are dropped at once, each counted, none read
                last = data.rfind(b"\n")
                self._dropped += data.count(b"\n", start, last + 1) - (1 if self._skipping else 0)
                self._partial.clear()
                self._skipping = False
                start = last + 1
                break
            piece = data[start:end]
            start = end + 1
            if self._skipping:
                self._skipping = False
                self._partial.clear()
                continue
            self._partial += piece
            self._emit(bytes(self._partial))
            self._partial.clear()
        if self._skipping:
            return
        self._partial += data[start:]
        if len(self._partial) > MAX_LINE:
            self._emit(bytes(self._partial[:MAX_LINE]), cut=True)
            self._partial.clear()
            self._skipping = True

    def _over_budget(self) -> bool:
        """Whether this second's lines are all taken (its drops are said once it is over)."""
        return self._in_window >= LINES_PER_SECOND and time.monotonic() - self._window < 1.0 and self._dropped > 0

    def _emit(self, raw: bytes, cut: bool = False) -> None:
        if len(raw) > MAX_LINE:
            raw, cut = raw[:MAX_LINE], True
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._say_dropped()
            self._window, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > LINES_PER_SECOND:
            if not self._dropped and self._loop is not None:  # said when the second is over, whatever comes next
                self._loop.call_later(max(0.0, self._window + 1.0 - now), self._say_dropped)
            self._dropped += 1
            return
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if cut:
            line += " ... (line cut)"
        if not line.strip():
            return
        record = record_from_line(line, self.fields)
        output_logger.handle(record)  # through one logger: a name a process chose is shown, never registered

    def _say_dropped(self) -> None:
        if self._dropped:
            output_logger.warning("dropped %d line(s) of output (more than %d a second)", self._dropped,
                                  LINES_PER_SECOND, extra={"fields": dict(self.fields)})
            self._dropped = 0

    def _flush_partial(self) -> None:
        if self._partial and not self._skipping:
            self._emit(bytes(self._partial))
        self._partial.clear()

    def drain(self) -> None:
        """Log what is left (the process has exited), boundedly: a process it started may still write."""
        for _ in range(MAX_DRAIN_READS):
            if not self.read_available():
                break
        self._flush_partial()
        self._say_dropped()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._say_dropped()
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)
