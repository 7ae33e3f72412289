"""The real services end-to-end tests run beside livekit-server: Redis (a multi-node deployment, the shared job
journal) and Jaeger (an OpenTelemetry backend), each started from its real binary and stopped after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class RedisServer:
    """A real redis-server (Debian's), for a multi-node LiveKit deployment; no persistence."""

    workdir: Path
    port: int = 6390
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs it)")
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)], stdout=log, stderr=log)
        wait_port("127.0.0.1", self.port, 20)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@dataclass
class JaegerServer:
    """A real Jaeger (all-in-one, memory storage; built by scripts/install-jaeger.sh): OTLP on 4317 (gRPC) and
    4318 (HTTP), its query API on 16686. Its ports are fixed: one per test run, in the run's namespace."""

    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    otlp_http: str = "http://127.0.0.1:4318"
    query: str = "http://127.0.0.1:16686"

    def start(self) -> None:
        binary = os.environ.get("JAEGER_BIN") or subprocess.run(
            ["bash", str(ROOT / "scripts" / "install-jaeger.sh")], capture_output=True, text=True, check=True,
            timeout=1800).stdout.strip().splitlines()[-1]
        log = open(self.workdir / "jaeger.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([binary], stdout=log, stderr=log, cwd=self.workdir)
        wait_port("127.0.0.1", 4318, 30)
        wait_port("127.0.0.1", 16686, 30)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    async def spans(self, service: str, operation: str | None = None, trace_id: str | None = None,
                    timeout: float = 20.0, count: int = 1) -> list[dict[str, Any]]:
        """The spans Jaeger holds of `service` (or of one trace), once there are `count`: each with its
        `tags` as a dict and its `trace`."""
        import aiohttp

        url = f"{self.query}/api/traces/{trace_id}" if trace_id else f"{self.query}/api/traces"
        params = {} if trace_id else {"service": service, "limit": "500", "lookback": "1h",
                                      **({"operation": operation} if operation else {})}
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(url, params=params) as r:
                    body = await r.json() if r.status == 200 else {"data": []}
                found = [{**span, "trace": t["traceID"], "tags": {tag["key"]: tag["value"] for tag in span["tags"]}}
                         for t in body.get("data") or [] for span in t["spans"]
                         if operation is None or span["operationName"] == operation]
                if len(found) >= count or time.monotonic() > deadline:
                    return found
                await asyncio.sleep(0.5)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
