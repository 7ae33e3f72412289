"""Messages between the host and a job process.

Every message is a small frozen dataclass and crosses a `multiprocessing` pipe pickled;
the protobuf `Job` crosses as bytes so that this module never imports the LiveKit SDK.
Host -> process: StartJob, ShutdownJob. Process -> host: the rest.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class ShutdownJob:
    reason: str


@dataclass(frozen=True)
class Ready:
    """The process imported the entrypoint and ran setup; it waits for a job."""

    pid: int
    sources: dict[str, tuple[int, int]]  # the project files its prewarm imported (host.config.sources)


@dataclass(frozen=True)
class InitFailed:
    error: str


@dataclass(frozen=True)
class JobStarted:
    entrypoint_at: float


@dataclass(frozen=True)
class ShuttingDown:
    """The job began to shut down on its own (participants left, ctx.shutdown, room closed)."""

    reason: str


@dataclass(frozen=True)
class JobDone:
    error: str | None  # None: the job ended cleanly


HostMessage = StartJob | ShutdownJob
ProcessMessage = Ready | InitFailed | JobStarted | ShuttingDown | JobDone
