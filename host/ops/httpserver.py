"""The host's small HTTP surface for operators: /healthz (and `/`, livekit-agents' health path), /readyz,
/status, /metrics, and /logs (each call's recent log lines: `agenthost console --logs`).

A deliberately small HTTP/1.1 server on the host's own event loop (so an answer from /healthz also shows
that the loop is not stuck), built to stay up when the port is exposed to a cluster:
- at most `max_connections` at once, far below the process's file-descriptor limit, so the job processes
  can always be started: a new connection evicts the one that has waited longest without a request (closed
  at once only when every connection is being answered);
- a request must arrive whole within `header_timeout` and fit in MAX_REQUEST_BYTES; one request per
  connection;
- a malformed or slow request is logged once at debug level, never with a traceback; accept errors
  (EMFILE) are said at most once a minute;
- with a token, /status, /metrics and /logs need `Authorization: Bearer <token>`; /healthz and /readyz
  stay open for probes.
Nothing here changes host state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import resource
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from host.errors import ListenError
from host.ops.joblogs import JobLogs
from host.ops.metrics import CONTENT_TYPE
from host.ops.status import StatusDocument

logger = logging.getLogger("agenthost.http")

MAX_REQUEST_BYTES = 8192
ACCEPT_ERROR_EVERY = 60.0  # seconds between two log lines about failing accepts
LOOPBACK = ("127.", "::1", "localhost")


class Observable(Protocol):
    job_limits: str  # how job limits are enforced, said by /readyz too: a rollout may require a mode

    def status(self) -> StatusDocument: ...

    def warnings(self) -> list[str]:
        """What the host does without while it serves (no journal, say): said, but ready."""
        ...

    def not_ready(self) -> list[str]:
        """Why the host cannot take jobs now; empty when it can."""
        ...

    def metrics_text(self) -> bytes: ...


@dataclass(frozen=True)
class HttpOptions:
    token: str | None = None  # required by /status and /metrics when set
    header_timeout: float = 5.0  # the whole request must arrive within this
    max_connections: int = 0  # 0: a quarter of the file-descriptor limit, at most 256


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` (or `:port`, meaning 127.0.0.1) into its parts; ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def default_max_connections() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(8, min(256, soft // 4)) if soft != resource.RLIM_INFINITY else 256


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           503: "Service Unavailable"}


def _json(status: int, doc: Any) -> Response:
    return Response(status, (json.dumps(doc, indent=2) + "\n").encode())


class HttpServer:
    def __init__(self, target: Observable, address: tuple[str, int], options: HttpOptions = HttpOptions(),
                 logs: JobLogs | None = None) -> None:
        self.target = target
        self.logs = logs  # each call's recent log lines, for /logs
        self.address = address
        self.options = options
        self.max_connections = options.max_connections or default_max_connections()
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # connections whose request has not come, oldest first
        self._answering = 0
        self._last_accept_error = 0.0
        self._routes: dict[str, tuple[bool, Callable[[Mapping[str, str]], Response]]] = {
            "/healthz": (False, lambda _q: _json(200, {"status": "ok"})),
            "/": (False, lambda _q: _json(200, {"status": "ok"})),  # livekit-agents' health path: its probes work
            "/readyz": (False, lambda _q: self._readyz()),
            "/status": (True, lambda _q: _json(200, self.target.status())),
            "/metrics": (True, lambda _q: Response(200, self.target.metrics_text(), CONTENT_TYPE)),
            "/logs": (True, self._logs),
        }

    async def start(self) -> None:
        host, port = self.address
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True,
                                                      limit=MAX_REQUEST_BYTES)
        except OSError as exc:
            loop.set_exception_handler(self._previous_handler)
            raise ListenError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc} "
                              f"(choose another address with --http)") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        logger.info("HTTP on http://%s:%d (/healthz and / /readyz /status /metrics%s)", host, self.port,
                    " /logs" if self.logs is not None else "")
        if not self.options.token and not host.startswith(LOOPBACK):
            logger.warning("HTTP listens on %s beyond loopback without a token: /status, /metrics%s are open "
                           "to anyone who can reach it (set --http-token or AGENTHOST_HTTP_TOKEN)", host,
                           " and /logs" if self.logs is not None else "")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        asyncio.get_running_loop().set_exception_handler(self._previous_handler)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio reports a failing accept (EMFILE) on every retry: say it once a minute, without a traceback."""
        if "accept" in str(context.get("message", "")):
            now = time.monotonic()
            if now - self._last_accept_error >= ACCEPT_ERROR_EVERY:
                self._last_accept_error = now
                logger.error("HTTP cannot accept connections: %s", context.get("exception"))
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._waiting) + self._answering >= self.max_connections:
            if not self._waiting:
                writer.transport.abort()  # every connection is being answered: no room for this one
                return
            # evict the connection that has waited longest without a request: a flood of idle connections
            # cannot starve a real request, which arrives whole at once
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.transport.abort()
        self._waiting[writer] = None
        answering = False
        try:
            response = await self._answer(reader)
            if writer not in self._waiting:
                return  # evicted while it waited
            del self._waiting[writer]
            answering = True
            self._answering += 1
            if response is not None:
                head = (f"HTTP/1.1 {response.status} {REASONS.get(response.status, '')}\r\n"
                        f"Content-Type: {response.content_type}\r\nContent-Length: {len(response.body)}\r\n"
                        "Connection: close\r\n\r\n").encode()
                writer.write(head + response.body)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(writer.drain(), self.options.header_timeout)
        except (ConnectionError, OSError) as exc:
            logger.debug("HTTP connection failed: %s", exc)
        finally:
            self._waiting.pop(writer, None)
            if answering:
                self._answering -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> Response | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.options.header_timeout)
        except asyncio.TimeoutError:
            logger.debug("HTTP request not complete within %gs; closed", self.options.header_timeout)
            return None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            logger.debug("HTTP request cut short or over %d bytes; closed", MAX_REQUEST_BYTES)
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            logger.debug("malformed HTTP request line %r", lines[0][:80])
            return _json(400, {"error": "malformed request"})
        method, target, _version = parts
        path, _, query = target.partition("?")
        route = self._routes.get(path)
        if route is None:
            return _json(404, {"error": "not found"})
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": "only GET"})
        protected, handler = route
        if protected and self.options.token and not self._authorized(lines[1:]):
            return _json(401, {"error": "a bearer token is required (Authorization: Bearer <token>)"})
        response = handler({k: v[-1] for k, v in urllib.parse.parse_qs(query).items()})
        return Response(response.status, b"", response.content_type) if method == "HEAD" else response

    def _authorized(self, headers: list[str]) -> bool:
        assert self.options.token is not None
        expected = f"Bearer {self.options.token}".encode()
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "authorization":
                return hmac.compare_digest(value.strip().encode("latin-1"), expected)
        return False

    def _logs(self, query: Mapping[str, str]) -> Response:
        """The recent log lines of the jobs of `room` (or of `job`) after the sequence number `after`."""
        if self.logs is None:
            return _json(404, {"error": "this host keeps no job logs (agenthost run --job-logs)"})
        try:
            after = int(query.get("after", "0"))
        except ValueError:
            return _json(400, {"error": "after: not a whole number"})
        if not query.get("room") and not query.get("job"):
            return _json(400, {"error": "room or job: which call's lines"})
        return _json(200, self.logs.after(after, room=query.get("room"), job_id=query.get("job")))

    def _readyz(self) -> Response:
        reasons = self.target.not_ready()
        said = {"job_limits": self.target.job_limits, "warnings": self.target.warnings()}
        if reasons:
            return _json(503, {"status": "not ready", "reasons": reasons, **said})
        return _json(200, {"status": "ready", **said})
