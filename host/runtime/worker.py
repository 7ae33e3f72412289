"""One worker registration with the LiveKit server's agent service (`/agent` WebSocket).

A `WorkerConnection` registers one agent name, answers the server's messages through a
`JobHandler`, keeps the connection alive with pings, and reconnects with capped
exponential backoff and jitter when it is lost. Running jobs live in their own
processes and are not touched by a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from typing import Protocol
from urllib.parse import urlencode

import aiohttp
from livekit import api
from livekit.protocol import agent as agent_pb

from host import __version__
from host.aio import TaskSet, backoff_delay
from host.config.credentials import Credentials, redact_url
from host.config.definitions import AgentDefinition
from host.runtime.admission import Accept, Admission, Decline, Refuse

logger = logging.getLogger("agenthost.worker")

PROTOCOL_VERSION = 1
PING_INTERVAL = 10.0
BACKOFF_START = 0.5
BACKOFF_MAX = 15.0
REGISTER_TIMEOUT = 10.0

JOB_TYPES = {
    "room": agent_pb.JobType.JT_ROOM,
    "publisher": agent_pb.JobType.JT_PUBLISHER,
    "participant": agent_pb.JobType.JT_PARTICIPANT,
}


class JobHandler(Protocol):
    """What the host does with the server's requests for one worker."""

    async def on_offer(self, worker: WorkerConnection, request: agent_pb.AvailabilityRequest) -> Admission: ...

    async def on_assignment(self, worker: WorkerConnection, assignment: agent_pb.JobAssignment) -> None: ...

    def on_termination(self, worker: WorkerConnection, job_id: str) -> None: ...

    def on_registered(self, worker: WorkerConnection) -> None: ...


class WorkerConnection:
    def __init__(self, definition: AgentDefinition, credentials: Credentials, handler: JobHandler) -> None:
        self.agent = definition.name
        self.definition = definition
        self.credentials = credentials
        self.handler = handler
        self.worker_id: str | None = None
        self.registered = False
        self.last_error: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._status = agent_pb.WorkerStatus.WS_AVAILABLE
        self._load = 0.0
        self._last_sent: tuple[int, float, int] | None = None  # what the server last heard, on this connection
        self._tasks = TaskSet(f"worker {self.agent}")
        self._log_fields = {"agent": self.agent}

    def update(self, definition: AgentDefinition) -> None:
        """Serve a new definition of the same agent (same registered name and job type)."""
        assert (definition.registered_name, definition.job_type) == (
            self.definition.registered_name, self.definition.job_type), "a new registration needs a new worker"
        self.definition = definition

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"worker-{self.agent}")

    @property
    def closed(self) -> bool:
        """Closed for good (unregistered), not just between reconnects."""
        return self._closing

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send(self, msg: agent_pb.WorkerMessage) -> bool:
        """Send if connected; a message for a lost connection is dropped (and logged)."""
        ws = self._ws
        if ws is None or ws.closed:
            logger.warning("not connected; dropped %s", msg.WhichOneof("message"), extra=self._log_fields)
            return False
        try:
            await ws.send_bytes(msg.SerializeToString())
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            logger.warning("send failed: %s", exc, extra=self._log_fields)
            return False
        return True

    async def update_job(self, job_id: str, status: agent_pb.JobStatus, error: str = "") -> None:
        await self.send(agent_pb.WorkerMessage(update_job=agent_pb.UpdateJobStatus(
            job_id=job_id, status=status, error=error)))

    async def update_worker(self, *, full: bool, load: float, job_count: int) -> None:
        """Tell the server the worker's status and load; the same figures twice are sent once."""
        self._status = agent_pb.WorkerStatus.WS_FULL if full else agent_pb.WorkerStatus.WS_AVAILABLE
        self._load = load
        figures = (self._status, round(load, 2), job_count)
        if figures == self._last_sent:
            return
        if await self.send(agent_pb.WorkerMessage(update_worker=agent_pb.UpdateWorkerStatus(
                status=self._status, load=load, job_count=job_count))):
            self._last_sent = figures

    @property
    def reported_full(self) -> bool:
        """Whether this worker last told the server it is full."""
        return self._status == agent_pb.WorkerStatus.WS_FULL

    @property
    def reported_load(self) -> float:
        return self._load

    # -- connection loop --------------------------------------------------------------------------
    def _url(self) -> str:
        base = self.credentials.url.rstrip("/")
        return f"{base}/agent?{urlencode({'protocol': PROTOCOL_VERSION})}"

    def _token(self) -> str:
        c = self.credentials
        return (api.AccessToken(c.api_key, c.api_secret).with_grants(api.VideoGrants(agent=True))
                .with_ttl(datetime.timedelta(hours=1)).to_jwt())

    async def _run(self) -> None:
        attempt = 0
        async with aiohttp.ClientSession() as session:
            while not self._closing:
                started = time.monotonic()
                try:
                    await self._connect_once(session)
                    self.last_error = "connection closed by the server"
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError, RegistrationError) as exc:
                    self.last_error = redact_url(_describe(exc))
                except Exception as exc:  # anything else (a malformed URL, a bug): said, and tried again
                    self.last_error = f"{type(exc).__name__}: {redact_url(str(exc))}"
                    logger.exception("agent %s: connecting to %s failed", self.agent, self.credentials.shown_url,
                                     extra=self._log_fields)
                finally:
                    self.registered = False
                    self._ws = None
                if self._closing:
                    return
                if time.monotonic() - started > 30:
                    attempt = 0  # it was up for a while: start the backoff over
                delay = backoff_delay(attempt, BACKOFF_START, BACKOFF_MAX)
                attempt += 1
                logger.warning("agent %s: not connected to %s (%s); retrying in %.1fs", self.agent,
                               self.credentials.shown_url, self.last_error, delay, extra=self._log_fields)
                await asyncio.sleep(delay)

    async def _connect_once(self, session: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {self._token()}"}
        async with session.ws_connect(self._url(), headers=headers, heartbeat=None,
                                      timeout=aiohttp.ClientWSTimeout(ws_close=5.0)) as ws:
            self._ws = ws
            self._last_sent = None
            await ws.send_bytes(agent_pb.WorkerMessage(register=agent_pb.RegisterWorkerRequest(
                type=JOB_TYPES[self.definition.job_type],
                agent_name=self.definition.registered_name,
                version=__version__,
                ping_interval=int(PING_INTERVAL),
            )).SerializeToString())
            first = await asyncio.wait_for(ws.receive(), REGISTER_TIMEOUT)
            msg = _parse(first)
            if msg is None or msg.WhichOneof("message") != "register":
                raise RegistrationError(f"unexpected answer to registration: {first.type.name}")
            self.worker_id = msg.register.worker_id
            self.registered = True
            self.last_error = None
            logger.info("registered agent %s as worker %s", self.agent, self.worker_id,
                        extra={**self._log_fields, "worker_id": self.worker_id})
            self.handler.on_registered(self)  # which tells the server this worker's status and load again
            pinger = asyncio.get_running_loop().create_task(self._ping(ws))
            try:
                async for raw in ws:
                    server_msg = _parse(raw)
                    if server_msg is not None:
                        self._dispatch(server_msg)
            finally:
                pinger.cancel()

    def _dispatch(self, msg: agent_pb.ServerMessage) -> None:
        kind = msg.WhichOneof("message")
        if kind == "availability":
            self._tasks.spawn(self._answer_offer(msg.availability))
        elif kind == "assignment":
            self._tasks.spawn(self.handler.on_assignment(self, msg.assignment))
        elif kind == "termination":
            self.handler.on_termination(self, msg.termination.job_id)
        elif kind == "go_away":
            logger.info("server asked agent %s to go away", self.agent)

    async def _answer_offer(self, request: agent_pb.AvailabilityRequest) -> None:
        try:
            answer: Admission = await self.handler.on_offer(self, request)
        except Exception:  # a bug: still answer, so that the server can offer the job elsewhere
            logger.exception("answering the offer of job %s failed; declined", request.job.id,
                             extra={**self._log_fields, "job_id": request.job.id})
            answer = Decline("error", "the offer could not be decided")
        await self.send(agent_pb.WorkerMessage(availability=availability_response(request.job.id, answer)))

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(PING_INTERVAL)
            with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                await ws.send_bytes(agent_pb.WorkerMessage(ping=agent_pb.WorkerPing(
                    timestamp=int(time.time() * 1000))).SerializeToString())


def availability_response(job_id: str, answer: Admission) -> agent_pb.AvailabilityResponse:
    """The protocol's form of an admission: a refusal also asks the server not to offer the job again."""
    if isinstance(answer, Accept):
        return agent_pb.AvailabilityResponse(
            job_id=job_id, available=True, participant_identity=answer.identity, participant_name=answer.name,
            participant_metadata=answer.participant_metadata, participant_attributes=answer.attributes)
    return agent_pb.AvailabilityResponse(job_id=job_id, available=False, terminate=isinstance(answer, Refuse))


class RegistrationError(Exception):
    pass


def _parse(raw: aiohttp.WSMessage) -> agent_pb.ServerMessage | None:
    if raw.type != aiohttp.WSMsgType.BINARY:
        return None
    msg = agent_pb.ServerMessage()
    msg.ParseFromString(raw.data)
    return msg


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"handshake refused: HTTP {exc.status} {exc.message}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
