"""A real livekit-server, a real `agenthost run`, and real rtc clients, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from livekit import api, rtc

from host.testing import netns
from host.testing.netns import SERVER_IP

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "devkey"
API_SECRET = "secret-for-agenthost-tests-0123456789"


def server_binary() -> str:
    explicit = os.environ.get("LIVEKIT_SERVER_BIN")
    if explicit:
        return explicit
    out = subprocess.run(["bash", str(ROOT / "scripts" / "install-livekit-server.sh")], capture_output=True,
                         text=True, check=True, timeout=1200)
    return out.stdout.strip().splitlines()[-1]


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
        _stop(self.proc)
        self.proc = None


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class LiveKitServer:
    binary: str
    workdir: Path
    port: int = 7880
    proc: subprocess.Popen[bytes] | None = None
    ip: str = SERVER_IP  # where clients reach it, and its rtc.node_ip
    redis: str | None = None  # host:port of the Redis that makes it one node of a multi-node deployment

    @property
    def url(self) -> str:
        return f"ws://{self.ip}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    def env(self) -> dict[str, str]:
        return {"LIVEKIT_URL": self.url, "LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET}

    def start(self) -> None:
        cfg = self.workdir / f"livekit-{self.port}.yaml"
        rtc_base = 40000 + (self.port % 100) * 200  # 200 UDP ports of its own, all below 60000
        cfg.write_text(
            f"port: {self.port}\n"
            f"bind_addresses: ['{self.ip}', '127.0.0.1']\n"
            f"rtc:\n  tcp_port: {self.port + 1}\n  port_range_start: {rtc_base}\n"
            f"  port_range_end: {rtc_base + 199}\n  node_ip: {self.ip}\n  use_external_ip: false\n"
            f"  stun_servers: ['{self.ip}:3478']\n"
            f"keys:\n  {API_KEY}: {API_SECRET}\n"
            "logging:\n  level: warn\n"
            "room:\n  empty_timeout: 30\n"
            + (f"redis:\n  address: {self.redis}\n" if self.redis else "")
        )
        log = open(self.workdir / f"livekit-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([self.binary, "--config", str(cfg)], stdout=log, stderr=log)
        wait_port(self.ip, self.port, 20)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def kill(self) -> None:
        """A crash: SIGKILL, no goodbye to the workers or the other nodes."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def api(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(self.http_url, API_KEY, API_SECRET)


@dataclass
class HostProcess:
    """`agenthost run` as a user starts it, with its log captured to a file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path = ROOT
    new_session: bool = False  # a process group of its own, as a terminal or systemd starts it
    nofile: int | None = None  # a file-descriptor limit for the host (and what it starts)
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    def start(self) -> None:
        fh = open(self.log_path, "ab")  # noqa: SIM115
        self._log = fh
        http = [] if any(a.startswith("--http") for a in self.args) else ["--http", "127.0.0.1:0"]
        self.proc = subprocess.Popen([sys.executable, "-m", "host", "run", *http, *self.args], cwd=self.cwd,
                                     env={**os.environ, **self.env}, stdout=fh, stderr=subprocess.STDOUT,
                                     start_new_session=self.new_session, preexec_fn=self._limits)

    def _limits(self) -> None:
        if self.nofile is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    async def http_base(self) -> str:
        """The base URL of this host's HTTP surface (it listens on a free port by default)."""
        [found] = await self.wait_log(r"HTTP on (http://127\.0\.0\.1:\d+)")
        return found.group(1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_log(self, pattern: str, timeout: float = 20.0, count: int = 1) -> list[re.Match[str]]:
        """Wait until `pattern` has matched `count` times in the log."""
        deadline = time.monotonic() + timeout
        while True:
            found = list(re.finditer(pattern, self.log()))
            if len(found) >= count:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"host exited ({self.proc.returncode}) waiting for {pattern!r}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} seen {len(found)}/{count} times after {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.1)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
        return code


def token(room: str, identity: str, attributes: dict[str, str] | None = None) -> str:
    at = api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_grants(
        api.VideoGrants(room_join=True, room=room, can_update_own_metadata=True))
    if attributes:
        at = at.with_attributes(attributes)
    return at.to_jwt()


class Client:
    """A real participant: collects the text streams it receives, by topic."""

    def __init__(self, server: LiveKitServer, room: str, identity: str = "user",
                 attributes: dict[str, str] | None = None) -> None:
        self.server, self.room_name, self.identity, self.attributes = server, room, identity, attributes
        self.room = rtc.Room()
        self.texts: dict[str, list[str]] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def listen(self, topic: str) -> None:
        def handler(reader: rtc.TextStreamReader, _identity: str) -> None:
            async def read() -> None:
                self.texts.setdefault(topic, []).append(await reader.read_all())
                self._changed.set()
            task = asyncio.get_running_loop().create_task(read())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.room.register_text_stream_handler(topic, handler)

    async def connect(self) -> Client:
        await self.room.connect(self.server.url, token(self.room_name, self.identity, self.attributes))
        return self

    async def wait_text(self, topic: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.texts.get(topic, [])) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.identity}: {len(self.texts.get(topic, []))}/{count} texts on "
                                     f"{topic!r} after {timeout}s: {self.texts}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.texts[topic]

    async def wait_participant(self, prefix: str, timeout: float = 20.0) -> None:
        """Until a participant whose identity starts with `prefix` is in the room."""
        await self._until(lambda: any(i.startswith(prefix) for i in self.room.remote_participants), timeout,
                          f"no participant {prefix}*")

    async def wait_participant_gone(self, identity: str, timeout: float = 20.0) -> None:
        await self._until(lambda: identity not in self.room.remote_participants, timeout, f"{identity} still here")

    async def _until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.identity}: {what} after {timeout}s")
            await asyncio.sleep(0.05)

    async def disconnect(self) -> None:
        await self.room.disconnect()


@contextlib.asynccontextmanager
async def server_api(server: LiveKitServer) -> AsyncIterator[api.LiveKitAPI]:
    client = server.api()
    try:
        yield client
    finally:
        await client.aclose()


def private_server(tool: str) -> LiveKitServer:
    """For scripts (demo, benchmarks): move this process into a network namespace of its own and start a
    livekit-server there, in a fresh temporary folder. Exits with the reason when the namespace is refused."""
    if netns.enter() is not None:
        raise SystemExit(f"{tool}: {netns.ERROR}")
    server = LiveKitServer(server_binary(), Path(tempfile.mkdtemp(prefix=f"agenthost-{tool}-")))
    server.start()
    return server


def agent_file(folder: Path, name: str, body: str) -> Path:
    """Write an agent file `name.yaml` (its `name:` line, then `body`) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return path


def new_room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


async def job_in_new_room(server: LiveKitServer, agent: str, topic: str, count: int = 1) -> Client:
    """Dispatch `agent` to a new room with a client in it; return once `count` texts arrived on `topic`."""
    client = Client(server, new_room())
    client.listen(topic)
    await client.connect()
    await dispatch(server, agent, client.room_name)
    await client.wait_text(topic, count)
    return client


async def dispatch(server: LiveKitServer, agent: str, room: str, metadata: str = "") -> str:
    async with server_api(server) as lk:
        d = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent, room=room, metadata=metadata))
        return d.id
