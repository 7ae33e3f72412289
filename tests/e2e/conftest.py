from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from host.testing import netns
from host.testing.harness import HostProcess, LiveKitServer, RedisServer, server_binary
from host.testing.netns import NODE2_IP, SERVER_IP

_ports = itertools.count(7890, 2)


@pytest.fixture(scope="session")
def livekit_binary() -> str:
    if netns.ERROR is not None:
        pytest.fail(f"cannot run the end-to-end tests: {netns.ERROR}", pytrace=False)
    return server_binary()


@pytest.fixture(scope="session")
def livekit_server(livekit_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    server = LiveKitServer(livekit_binary, tmp_path_factory.mktemp("livekit"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_server(livekit_binary: str, tmp_path: Path) -> Iterator[LiveKitServer]:
    """A server of this test's own, for tests that stop or restart it."""
    server = LiveKitServer(livekit_binary, tmp_path, port=next(_ports) + 100)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_host(tmp_path: Path) -> Iterator[object]:
    hosts: list[HostProcess] = []

    def start(server: LiveKitServer, *paths: str | Path, extra_env: dict[str, str] | None = None,
              args: tuple[str, ...] = (), new_session: bool = False, nofile: int | None = None,
              cpus: set[int] | None = None) -> HostProcess:
        # the test's own state directory (the journal of running jobs), shared by the hosts it starts
        state = {"AGENTHOST_STATE_DIR": str(tmp_path / "state")}
        h = HostProcess([*args, *map(str, paths)], {**server.env(), **state, **(extra_env or {})},
                        tmp_path / f"host-{len(hosts)}.log", new_session=new_session, nofile=nofile, cpus=cpus)
        h.start()
        hosts.append(h)
        return h

    yield start
    for h in hosts:
        h.stop()


@dataclass
class Cluster:
    """A multi-node LiveKit deployment: two livekit-server nodes sharing a real Redis."""

    redis: RedisServer
    nodes: list[LiveKitServer]


@pytest.fixture
def cluster(livekit_binary: str, tmp_path: Path) -> Iterator[Cluster]:
    redis = RedisServer(tmp_path, port=6390)
    redis.start()
    nodes = [LiveKitServer(livekit_binary, tmp_path, port=port, ip=ip, redis=redis.address)
             for port, ip in ((7950, SERVER_IP), (7960, NODE2_IP))]
    try:
        for node in nodes:
            node.start()
        yield Cluster(redis, nodes)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
