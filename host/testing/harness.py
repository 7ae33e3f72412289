"""A real livekit-server, a real `agenthost run`, and real rtc clients, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from livekit import api

from host.testing import netns
from host.testing.netns import SERVER_IP
from host.testing.rooms import (  # re-exported: tests, bench/ and the demo take everything from here
    API_KEY,
    API_SECRET,
    Client,
    dispatch,
    job_in_new_room,
    new_room,
    renew_agent_list,
    server_api,
    token,
)
from host.testing.services import ROOT, JaegerServer, RedisServer, stop_process, wait_port

__all__ = ["API_KEY", "API_SECRET", "ROOT", "Client", "HostProcess", "JaegerServer", "LiveKitServer", "RedisServer",
           "agent_file", "dispatch", "job_in_new_room", "new_room", "private_server", "renew_agent_list", "server_api",
           "server_binary", "token"]

def server_binary() -> str:
    explicit = os.environ.get("LIVEKIT_SERVER_BIN")
    if explicit:
        return explicit
    out = subprocess.run(["bash", str(ROOT / "scripts" / "install-livekit-server.sh")], capture_output=True,
                         text=True, check=True, timeout=1200)
    return out.stdout.strip().splitlines()[-1]


@dataclass
class LiveKitServer:
    binary: str
    workdir: Path
    port: int = 7880
    proc: subprocess.Popen[bytes] | None = None
    ip: str = SERVER_IP  # where clients reach it, and its rtc.node_ip
    redis: str | None = None  # host:port of the Redis that makes it one node of a multi-node deployment
    # UDP ports for media: 10 jobs with a client each held 84 of them and 40 jobs 185 (the server's
    # /proc/<pid>/net/udp); when they run out, a new connection can fail. Tests stay far below 200; a bench
    # alone in its namespace takes more
    rtc_ports: int = 200

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
        rtc_base = 40000 + (self.port % 100) * 200  # its own ports: with 200 each, all below 60000
        cfg.write_text(
            f"port: {self.port}\n"
            f"bind_addresses: ['{self.ip}', '127.0.0.1']\n"
            f"rtc:\n  tcp_port: {self.port + 1}\n  port_range_start: {rtc_base}\n"
            f"  port_range_end: {rtc_base + self.rtc_ports - 1}\n  node_ip: {self.ip}\n  use_external_ip: false\n"
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
        stop_process(self.proc)
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
    cpus: set[int] | None = None  # the CPUs the host (and what it starts) may run on
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
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)
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


def private_server(tool: str) -> LiveKitServer:
    """For scripts (demo, benchmarks): move this process into a network namespace of its own and start a
    livekit-server there, in a fresh temporary folder, with 2,000 UDP ports for media (a density bench runs
    100 jobs). Exits with the reason when the namespace is refused."""
    if netns.enter() is not None:
        raise SystemExit(f"{tool}: {netns.ERROR}")
    server = LiveKitServer(server_binary(), Path(tempfile.mkdtemp(prefix=f"agenthost-{tool}-")), rtc_ports=2000)
    server.start()
    return server


def agent_file(folder: Path, name: str, body: str) -> Path:
    """Write an agent file `name.yaml` (its `name:` line, then `body`) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return path
