"""The host's end of a job or template process's pipe, on the host's event loop: it never blocks the loop.

Reading: whatever the socket holds is taken at once (non-blocking), and split into frames (a 4-byte length,
then the payload, as multiprocessing's Connection frames them); each whole frame is decoded (a hostile
process cannot make the host run code: host.wire.protocol). A frame longer than MAX_FRAME, one begun and
not ended within FRAME_DEADLINE, or one that does not decode breaks the protocol: reading stops and the
owner is told why, once. Descriptors passed with a message (a template's Forked) are taken from the same
reads, in order.

Writing: frames are queued and written as the socket takes them, so a process that does not read (still in
its `setup`, say) never stalls the host.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable

from host.wire.protocol import FRAME_DEADLINE, HEADER, MAX_FRAME, ProtocolError

logger = logging.getLogger("agenthost.process")

READ_CHUNK = 256 * 1024
# a process's messages in one second: a job says a few, a template one per fork and exit; past this, it floods the
# host's loop with decoding (each message is JSON), which is a violation
MAX_MESSAGES_PER_SECOND = 1000
MAX_PENDING_FDS = 2  # the descriptors of one message (a Forked process's pipe and pidfd) at a time
MAX_DRAIN_READS = 16  # after an exit: what is left is read up to this many times (4 MiB), not forever
_FD_SPACE = socket.CMSG_SPACE(8 * array.array("i").itemsize)  # room for more descriptors than a message has

Decode = Callable[[bytes], object]
OnMessage = Callable[[object, tuple[int, ...]], None]  # the message, and the descriptors that came with it


class Channel:
    """`fds_per_message` says, of a decoded message, how many descriptors follow it (after one byte with
    their count, as multiprocessing.reduction.sendfds writes them); 0 for most."""

    def __init__(self, fd: int, decode: Decode, on_message: OnMessage, on_end: Callable[[str | None], None],
                 fds_per_message: Callable[[object], int] | None = None) -> None:
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self._decode, self._on_message, self._on_end = decode, on_message, on_end
        self._takes_fds = fds_per_message is not None
        self._fds_per_message = fds_per_message or (lambda _msg: 0)
        self._inbox = bytearray()
        self._fds: deque[int] = deque()
        self._awaiting_fds: object | None = None  # a message whose descriptors have not all arrived
        self._frame_timer: asyncio.TimerHandle | None = None
        self._outbox = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self._ended = False
        self._second, self._in_second = 0.0, 0  # when the current second began, and its messages so far

    def fileno(self) -> int:
        return self._sock.fileno()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self.read_available)

    # -- writing ------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Queue `data` (whole frames) for the process; OSError once it is known to be gone."""
        if self.closed:
            raise OSError("the process's pipe is closed")
        self._outbox += data
        self._write()

    def send_first(self, data: bytes, fds: list[int]) -> None:
        """Send `data` with descriptors `fds`, before anything else is queued (a new process's socket has
        room for it); OSError when the process is gone."""
        if self.closed or self._outbox:
            raise OSError("the process's pipe is closed" if self.closed else "sent after other data")
        sent = socket.send_fds(self._sock, [data], fds)
        self._outbox += data[sent:]  # a short write: the rest follows as usual, the descriptors went with the first
        if self._outbox:
            self._write()

    def _write(self) -> None:
        try:
            sent = self._sock.send(self._outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._outbox.clear()
            self._stop_writing()
            raise
        del self._outbox[:sent]
        if self._loop is None:
            return
        if self._outbox:
            self._loop.add_writer(self._sock.fileno(), self._on_writable)
        else:
            self._stop_writing()

    def _on_writable(self) -> None:
        with contextlib.suppress(OSError):  # gone: its end is seen by the reader or the exit
            self._write()

    def _stop_writing(self) -> None:
        if self._loop is not None and not self.closed:
            self._loop.remove_writer(self._sock.fileno())

    # -- reading ------------------------------------------------------------------------------
    def read_available(self) -> bool:
        """Take what the socket holds now and hand on each whole message; at its end, tell the owner. False
        when there was nothing to take."""
        if self._ended:
            return False
        try:
            data, ancdata, flags, _ = self._sock.recvmsg(READ_CHUNK, _FD_SPACE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._end(None if isinstance(exc, ConnectionResetError) else f"reading failed: {exc}")
            return False
        for level, kind, fds in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(fds[: len(fds) - len(fds) % received.itemsize])
                self._fds.extend(received)
        if flags & socket.MSG_CTRUNC:
            self.fail("more descriptors than a message carries")
            return False
        if len(self._fds) > MAX_PENDING_FDS or (self._fds and not self._takes_fds):
            self.fail(f"{len(self._fds)} descriptors sent with no message to carry them")
            return False
        if not data and not ancdata:
            self._end(None)
            return False
        self._inbox += data
        try:
            self._parse()
        except ProtocolError as exc:
            self.fail(str(exc))
        return True

    def _parse(self) -> None:
        completed = 0
        while not (self._ended or self.closed):
            if self._awaiting_fds is not None:
                if not self._take_fds():
                    break
                continue
            if len(self._inbox) < HEADER.size:
                break
            (size,) = HEADER.unpack_from(self._inbox)
            if not 0 <= size <= MAX_FRAME:
                raise ProtocolError(f"a frame of {size} bytes (at most {MAX_FRAME})")
            if len(self._inbox) < HEADER.size + size:
                break
            payload = bytes(self._inbox[HEADER.size:HEADER.size + size])
            del self._inbox[:HEADER.size + size]
            self._count_message()
            msg = self._decode(payload)
            completed += 1
            if self._fds_per_message(msg):
                self._awaiting_fds = msg
            else:
                self._on_message(msg, ())
        self._time_partial_frame(restart=completed > 0)

    def _count_message(self) -> None:
        now = time.monotonic()
        if now - self._second >= 1.0:
            self._second, self._in_second = now, 0
        self._in_second += 1
        if self._in_second > MAX_MESSAGES_PER_SECOND:
            raise ProtocolError(f"more than {MAX_MESSAGES_PER_SECOND} messages in a second")

    def _take_fds(self) -> bool:
        msg = self._awaiting_fds
        count = self._fds_per_message(msg)
        if not self._inbox or len(self._fds) < count:
            return False
        if self._inbox[0] != count % 256:
            raise ProtocolError(f"{count} descriptors announced as {self._inbox[0]}")
        del self._inbox[:1]
        fds = tuple(self._fds.popleft() for _ in range(count))
        self._awaiting_fds = None
        self._on_message(msg, fds)
        return True

    def _time_partial_frame(self, restart: bool) -> None:
        """A frame begun must end within FRAME_DEADLINE: timed from its first byte, as near as reads tell."""
        if restart and self._frame_timer is not None:  # the frame it timed has ended
            self._frame_timer.cancel()
            self._frame_timer = None
        partial = bool(self._inbox) or self._awaiting_fds is not None
        if partial and self._frame_timer is None and self._loop is not None:
            self._frame_timer = self._loop.call_later(FRAME_DEADLINE, self._frame_overdue, len(self._inbox))
        elif not partial and self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None

    def _frame_overdue(self, had: int) -> None:
        self._frame_timer = None
        if self._inbox or self._awaiting_fds is not None:
            self.fail(f"a frame begun {FRAME_DEADLINE:g} s ago did not end ({had} bytes of it came)")

    def fail(self, violation: str) -> None:
        """The process broke the protocol: read nothing more from it, and tell the owner once."""
        self._end(violation)

    def _end(self, violation: str | None) -> None:
        if self._ended:
            return
        self._ended = True
        if self._loop is not None and not self.closed:
            self._loop.remove_reader(self._sock.fileno())
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        self._on_end(violation)

    def drain(self) -> None:
        """Read what is left now (the process has exited), boundedly: a process it started may still hold the
        pipe and write."""
        for _ in range(MAX_DRAIN_READS):
            if not self.read_available():
                break

    def close(self) -> None:
        if self.closed:
            return
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._sock.fileno())
                self._loop.remove_writer(self._sock.fileno())
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        self.closed = True
        while self._fds:
            os.close(self._fds.popleft())
        self._sock.close()
