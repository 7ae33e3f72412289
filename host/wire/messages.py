"""Messages between the host and its processes: job processes, and agents' template processes.

Every message is a small frozen dataclass. Down (host -> process) they cross a `multiprocessing` pipe
pickled, the protobuf `Job` as bytes so that this module never imports the LiveKit SDK; up (process ->
host) as JSON the host checks field by field (host.wire.protocol), since the host trusts nothing its
processes write. What crosses once per job process between the host and a template is smaller still: FORK
and RETIRE are a byte each, and Forked and Exited are packed by hand (`pack_forked`, `pack_exited`), since
building them would write to many of the template's pages (see host.job.template_main).
Job processes: host -> process StartJob, ShutdownJob; process -> host Ready, InitFailed, JobStarted,
Answering, ShuttingDown, JobDone. Template processes: host -> template FORK, RETIRE; template -> host TemplateReady,
NotForkSafe, InitFailed, Forked (followed on the same socket by two file descriptors) or ForkFailed, Exited.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from host.config.credentials import Credentials
from host.config.definitions import AgentDefinition


@dataclass(frozen=True)
class Participant:
    """Who the job joins the room as: what the host answered the offer with."""

    identity: str
    name: str
    metadata: str
    attributes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StartJob:
    job: bytes  # livekit.protocol.agent.Job, serialized
    definition: AgentDefinition  # the definition in force when the job was accepted
    url: str
    token: str
    credentials: Credentials
    worker_id: str
    accepted_at: float  # time.time() when the offer was accepted, for offer-to-entrypoint figures
    metadata: object  # the job metadata as parsed and validated by the host when it accepted the offer
    participant: Participant
    recovery_of: str | None = None  # the job whose call this one takes over (its host died)
    traceparent: str | None = None  # the host's span of this job (W3C), when tracing is on
    otel_env: tuple[tuple[str, str], ...] = ()  # the host's OTEL_* settings, for the job's own spans


@dataclass(frozen=True)
class ShutdownJob:
    reason: str


@dataclass(frozen=True)
class Ready:
    """The process imported the entrypoint and ran setup; it waits for a job."""

    pid: int
    sources: dict[str, tuple[int, int]]  # the project files its prewarm imported (host.config.sources)
    prewarm_cpu: float = 0.0  # CPU seconds the process used to get ready (imports, setup, the rtc runtime)


@dataclass(frozen=True)
class InitFailed:
    error: str


@dataclass(frozen=True)
class JobStarted:
    entrypoint_at: float


VITALS_EVERY = 1.0  # seconds between two of a job's JobVitals


@dataclass(frozen=True)
class JobVitals:
    """How the job is doing, every second while it runs: its event loop's worst lag over the last second
    (a loop that cannot keep up delays audio and answers) and how many others are in its room."""

    loop_lag_ms: float
    participants: int
    spans_dropped: int = 0  # of its traces, since the job started (its exporter's queue full, or the export failed)
    # its own pages (host.memory), where the host may not read them (a host run as a user); 0: not measured
    own_bytes: int = 0


@dataclass(frozen=True)
class Answering:
    """The job's call waits for its agent's answer (its caller has stopped speaking), or no longer: the host
    favours the process meanwhile (host.process.priority)."""

    waiting: bool


@dataclass(frozen=True)
class ShuttingDown:
    """The job began to shut down on its own (participants left, ctx.shutdown, room closed)."""

    reason: str


@dataclass(frozen=True)
class JobDone:
    error: str | None  # None: the job ended cleanly
    # what it used, as it measured itself (the host's own figures, where a cgroup gives them, come first)
    cpu_seconds: float = 0.0  # its CPU time and that of the processes it reaped
    peak_rss_bytes: int = 0  # the most resident memory it, or a process it reaped, had at once
    spans_dropped: int = 0


@dataclass(frozen=True)
class TemplateReady:
    """The template imported the agent's code; it forks job processes on request."""

    pid: int
    sources: dict[str, tuple[int, int]]  # the project files its imports loaded (host.config.sources)


@dataclass(frozen=True)
class NotForkSafe:
    """The template cannot fork job processes safely: its imports started a thread (forking it could copy a
    lock that thread holds), or the system has no pidfd to watch them by."""

    reason: str


@dataclass(frozen=True)
class Forked:
    """A job process was forked. Two descriptors follow on the socket: the host's end of the job's pipe, and a
    pidfd of the job process (readable once it exits)."""

    pid: int


@dataclass(frozen=True)
class ForkFailed:
    """The template could not fork the job process asked for (no descriptors, no memory, a pids limit)."""

    error: str


@dataclass(frozen=True)
class Exited:
    """A job process the template forked has exited and been reaped."""

    pid: int
    code: int  # negative: killed by that signal


HostMessage = StartJob | ShutdownJob
ProcessMessage = Ready | InitFailed | JobStarted | JobVitals | Answering | ShuttingDown | JobDone
TemplateMessage = TemplateReady | NotForkSafe | InitFailed | Forked | ForkFailed | Exited


# host -> template: a byte each, framed by the host's Connection.send_bytes (REQUEST_FRAME bytes in all)
FORK = b"f"  # fork one job process: answered with Forked (or ForkFailed), in the order asked
RETIRE = b"r"  # fork no more; exit once every job process forked so far has exited and been reported
REQUEST_FRAME = 5

# Forked and Exited, packed: a tag that no JSON message starts with (it starts with b"{"), then the fields; each
# framed as multiprocessing's Connection frames a message (its length, 4 bytes big-endian), in one struct
_FORKED = struct.Struct("!ci")  # b"F", pid
_EXITED = struct.Struct("!cii")  # b"E", pid, code
_FORKED_FRAMED = struct.Struct("!i" + _FORKED.format[1:])
_EXITED_FRAMED = struct.Struct("!i" + _EXITED.format[1:])
FDS = struct.Struct("2i")  # the descriptors that follow Forked: the host's end of the job's pipe, its pidfd
FDS_DATA = [bytes([2])]  # sent with them: their count, as multiprocessing.reduction.recvfds checks


def pack_forked(pid: int) -> bytes:
    """Forked(pid), framed for the template's pipe to the host."""
    return _FORKED_FRAMED.pack(_FORKED.size, b"F", pid)


def pack_exited(pid: int, code: int) -> bytes:
    """Exited(pid, code), framed for the template's pipe to the host."""
    return _EXITED_FRAMED.pack(_EXITED.size, b"E", pid, code)


def unpack_template_message(data: bytes) -> Forked | Exited | None:
    """Forked or Exited, from a frame's payload; None for any other payload."""
    if data[:1] == b"F" and len(data) == _FORKED.size:
        _tag, pid = _FORKED.unpack(data)
        return Forked(pid)
    if data[:1] == b"E" and len(data) == _EXITED.size:
        _tag, pid, code = _EXITED.unpack(data)
        return Exited(pid, code)
    return None
