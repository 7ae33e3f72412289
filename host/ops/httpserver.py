"""The host's small HTTP surface for operators: /healthz, /readyz, /status, /metrics.

It runs on the host's own event loop, so an answer from /healthz also shows that the
loop is not stuck. Nothing here changes host state.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from aiohttp import web

from host.errors import ListenError
from host.ops.metrics import CONTENT_TYPE
from host.ops.status import StatusDocument

logger = logging.getLogger("agenthost.http")


class Observable(Protocol):
    def status(self) -> StatusDocument: ...

    def not_ready(self) -> list[str]:
        """Why the host cannot take jobs now; empty when it can."""
        ...

    def metrics_text(self) -> bytes: ...


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` (or `:port`, meaning 127.0.0.1) into its parts; ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class HttpServer:
    def __init__(self, target: Observable, address: tuple[str, int]) -> None:
        self.target = target
        self.address = address
        self.port: int | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> None:
        await self._runner.setup()
        host, port = self.address
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ListenError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc} "
                              f"(choose another address with --http)") from exc
        bound = self._runner.addresses  # tells the port when 0 was asked for
        self.port = int(bound[0][1]) if bound else port
        logger.info("HTTP on http://%s:%d (/healthz /readyz /status /metrics)", host, self.port)

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        reasons = self.target.not_ready()
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def _status(self, _request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.target.status(), indent=2) + "\n",
                            content_type="application/json")

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.target.metrics_text(), headers={"Content-Type": CONTENT_TYPE})
