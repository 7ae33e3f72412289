"""What job and template processes tell the host, as data the host checks, never as code it runs.

The host trusts nothing its processes send: they run agent code, and agent code may write anything to the
pipe it inherits. So messages up (process -> host) are JSON objects of a fixed, versioned form, decoded
field by field against their dataclass (`decode`); pickle is only ever read by the processes, from the host.
Forked and Exited, sent once per job process, stay packed by hand (host.wire.messages).

Before any frame, the host sends each process it starts OUTPUT (a fixed 8 bytes) with one descriptor: the
write end of a pipe of the process's own, which it makes its stdout and stderr before agent code runs
(`receive_output`; the host reads the other end: host.process.output). The host's own stderr is then never
shared with agent code.

A frame is what multiprocessing's Connection writes: a 4-byte big-endian length, then the payload. The host
reads at most MAX_FRAME bytes of payload, and a frame it has begun must end within FRAME_DEADLINE seconds.
"""

from __future__ import annotations

import array
import json
import math
import os
import pickle
import socket
import struct
from dataclasses import fields
from typing import Any

from host.errors import AgentHostError
from host.wire.messages import (
    Answering,
    Exited,
    Forked,
    ForkFailed,
    InitFailed,
    JobDone,
    JobStarted,
    JobVitals,
    NotForkSafe,
    ProcessMessage,
    Ready,
    ShutdownJob,
    ShuttingDown,
    StartJob,
    TemplateMessage,
    TemplateReady,
    unpack_template_message,
)

VERSION = 1
HEADER = struct.Struct("!i")
MAX_FRAME = 1024 * 1024  # a Ready with the project files a large prewarm imported fits many times over
FRAME_DEADLINE = 10.0  # seconds from a frame's first byte to its last
MAX_TEXT = 4096  # longest error or reason kept from a process; the rest is cut
MAX_INT = 2**63 - 1  # the largest integer a message carries (a pid, a count, a size, a time in ns)

OUTPUT = b"AHOUTPUT"  # the first bytes down to every process, with the write end of its output pipe

_UP: dict[str, type[Any]] = {cls.__name__: cls for cls in (Ready, InitFailed, JobStarted, JobVitals, Answering,
                                                           ShuttingDown, JobDone, TemplateReady, NotForkSafe,
                                                           ForkFailed)}


class ProtocolError(AgentHostError):
    """A process wrote something that is not a message of this protocol; the message says what."""


def encode(msg: ProcessMessage | TemplateMessage) -> bytes:
    """The payload of `msg`, as a process sends it up."""
    body: dict[str, Any] = {"v": VERSION, "type": type(msg).__name__}
    for f in fields(msg):
        value = getattr(msg, f.name)
        body[f.name] = {k: list(v) for k, v in value.items()} if isinstance(value, dict) else value
    return json.dumps(body, separators=(",", ":")).encode()


def decode(payload: bytes) -> ProcessMessage | TemplateMessage:
    """The message in `payload`; ProtocolError for anything else."""
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not a message: {_cut(repr(payload[:80]))}") from exc
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise ProtocolError(f"not a message of version {VERSION}")
    cls = _UP.get(body.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown message type {_cut(repr(body.get('type')))}")
    values = {}
    for f in fields(cls):
        if f.name not in body:
            raise ProtocolError(f"{cls.__name__} without {f.name}")
        values[f.name] = _field(cls.__name__, f.name, str(f.type), body[f.name])
    if set(body) - {"v", "type", *values}:
        raise ProtocolError(f"{cls.__name__} with unknown fields")
    msg: ProcessMessage | TemplateMessage = cls(**values)
    return msg


def _field(message: str, name: str, kind: str, value: Any) -> Any:
    """`value` checked against the annotation `kind` of the field (the few kinds messages up use)."""
    if kind == "int" and _bounded(value):
        return value
    if kind == "bool" and type(value) is bool:
        return value
    if kind == "float" and (_bounded(value) or (type(value) is float and math.isfinite(value))):
        return float(value)
    if kind == "str" and type(value) is str:
        return _cut(value)
    if kind == "str | None" and (value is None or type(value) is str):
        return None if value is None else _cut(value)
    if kind == "dict[str, tuple[int, int]]" and isinstance(value, dict) and all(
            type(v) is list and len(v) == 2 and all(_bounded(n) for n in v) for v in value.values()):
        return {str(k): (v[0], v[1]) for k, v in value.items()}
    raise ProtocolError(f"{message}.{name} is not {kind}")


def _bounded(value: Any) -> bool:
    """An integer a field can hold (JSON's have no bound: one of 400 digits overflows a float)."""
    return type(value) is int and -MAX_INT <= value <= MAX_INT


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... ({len(text) - MAX_TEXT} more characters)"


def frame(payload: bytes) -> bytes:
    """`payload` framed as a Connection reads it (`recv_bytes`, `recv`)."""
    return HEADER.pack(len(payload)) + payload


def down(msg: StartJob | ShutdownJob) -> bytes:
    """`msg` framed for a job process, which reads it with `Connection.recv` (pickle flows down only)."""
    return frame(pickle.dumps(msg))


_JOB_UP = (Ready, InitFailed, JobStarted, JobVitals, Answering, ShuttingDown, JobDone)
_TEMPLATE_UP = (TemplateReady, NotForkSafe, InitFailed, ForkFailed)


def decode_job(payload: bytes) -> ProcessMessage:
    """A message from a job process; ProtocolError for anything else."""
    msg = decode(payload)
    if not isinstance(msg, _JOB_UP):
        raise ProtocolError(f"{type(msg).__name__} is not a job process's message")
    return msg


def decode_template(payload: bytes) -> TemplateMessage:
    """A message from a template process (Forked and Exited come packed); ProtocolError for anything else."""
    packed = unpack_template_message(payload)
    if packed is not None:
        return packed
    msg = decode(payload)
    if not isinstance(msg, _TEMPLATE_UP):
        raise ProtocolError(f"{type(msg).__name__} is not a template's message")
    return msg


def receive_output(fd: int) -> int:
    """In a process the host started: read OUTPUT and its descriptor, the first thing on pipe `fd`; the
    descriptor. EOFError when the host is gone; ProtocolError for anything else."""
    received, fds = b"", array.array("i")
    with socket.socket(fileno=os.dup(fd)) as sock:
        sock.setblocking(True)
        while len(received) < len(OUTPUT):
            data, ancdata, _flags, _ = sock.recvmsg(len(OUTPUT) - len(received), socket.CMSG_SPACE(fds.itemsize))
            if not data:
                raise EOFError
            received += data
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if received != OUTPUT or len(fds) != 1:
        for extra in fds:
            os.close(extra)
        raise ProtocolError(f"expected the output pipe first, got {received!r} with {len(fds)} descriptors")
    return fds[0]


def fds_after(msg: object) -> int:
    """How many descriptors follow a template's message: a Forked process's pipe and pidfd."""
    return 2 if isinstance(msg, Forked) else 0


__all__ = ["OUTPUT", "Exited", "Forked", "ProtocolError", "decode_job", "decode_template", "down", "encode",
           "fds_after", "frame", "receive_output"]
