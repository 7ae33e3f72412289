import json
from typing import Any

import aiohttp
import pytest

from host.errors import ListenError
from host.ops.httpserver import HttpServer, parse_address


class Target:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def status(self) -> dict[str, Any]:
        return {"agents": [{"name": "a"}], "jobs": []}

    def not_ready(self) -> list[str]:
        return self.reasons

    def metrics_text(self) -> bytes:
        return b"agenthost_up 1\n"


def test_parse_address():
    assert parse_address("0.0.0.0:8081") == ("0.0.0.0", 8081)
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("8081", "host:", "host:port", "h:70000"):
        with pytest.raises(ValueError, match="is not HOST:PORT"):
            parse_address(bad)


async def test_endpoints():
    target = Target()
    server = HttpServer(target, ("127.0.0.1", 0))
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/healthz") as r:
                assert r.status == 200
            async with session.get(base + "/readyz") as r:
                assert (r.status, (await r.json())["status"]) == (200, "ready")
            target.reasons = ["agent a is not registered with ws://x: refused"]
            async with session.get(base + "/readyz") as r:
                assert r.status == 503
                assert (await r.json())["reasons"] == target.reasons
            async with session.get(base + "/status") as r:
                assert json.loads(await r.text()) == target.status()
            async with session.get(base + "/metrics") as r:
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert await r.text() == "agenthost_up 1\n"
    finally:
        await server.close()


async def test_a_taken_port_is_a_clear_error():
    first = HttpServer(Target(), ("127.0.0.1", 0))
    await first.start()
    try:
        with pytest.raises(ListenError, match=rf"cannot serve HTTP on 127.0.0.1:{first.port}: .*--http"):
            await HttpServer(Target(), ("127.0.0.1", first.port or 0)).start()
    finally:
        await first.close()
