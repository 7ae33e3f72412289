import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest

from host.errors import ListenError
from host.ops.httpserver import HttpOptions, HttpServer, parse_address


class Target:
    job_limits = "cgroup v1"

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def status(self) -> dict[str, Any]:
        return {"agents": [{"name": "a"}], "jobs": []}

    def not_ready(self) -> list[str]:
        return self.reasons

    def warnings(self) -> list[str]:
        return ["no journal"]

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
                assert (r.status, await r.json()) == (200, {"status": "ready", "job_limits": "cgroup v1",
                                                            "warnings": ["no journal"]})
            target.reasons = ["agent a is not registered with ws://x: refused"]
            async with session.get(base + "/readyz") as r:
                assert r.status == 503
                body = await r.json()
                assert (body["reasons"], body["job_limits"]) == (target.reasons, "cgroup v1")
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


async def raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_a_token_guards_status_and_metrics_but_not_the_probes():
    server = HttpServer(Target(), ("127.0.0.1", 0), HttpOptions(token="s3cret"))
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/healthz", "/readyz", "/"):  # `/` is livekit-agents' health path
                async with session.get(base + path) as r:
                    assert r.status == 200
            for path in ("/status", "/metrics"):
                async with session.get(base + path) as r:
                    assert r.status == 401
                async with session.get(base + path, headers={"Authorization": "Bearer wrong"}) as r:
                    assert r.status == 401
                async with session.get(base + path, headers={"Authorization": "Bearer s3cret"}) as r:
                    assert r.status == 200
    finally:
        await server.close()


async def test_slow_malformed_and_excess_connections_do_not_stop_the_probes(caplog):
    caplog.set_level(logging.DEBUG, logger="agenthost.http")
    server = HttpServer(Target(), ("127.0.0.1", 0), HttpOptions(header_timeout=0.3, max_connections=20))
    await server.start()
    port = server.port
    assert port is not None
    try:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]  # past the cap
        for _reader, writer in idle[:5]:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # half a request
        await asyncio.sleep(0.6)  # past the header timeout: the half requests were closed
        answer = await raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'"ok"\n}\n')
        assert (await raw(port, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400")
        assert (await raw(port, b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n")) == b""  # over the size bound
        assert (await raw(port, b"POST /status HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert "not complete within 0.3s" in caplog.text and "Traceback" not in caplog.text
        for _reader, writer in idle:
            writer.close()
    finally:
        await server.close()


async def test_beyond_loopback_without_a_token_is_warned(caplog):
    server = HttpServer(Target(), ("0.0.0.0", 0))
    await server.start()
    await server.close()
    assert "beyond loopback without a token" in caplog.text
