"""A soak on LiveKit's distributed engine: Redis, two livekit-server nodes, two hosts (one on each node),
a steady CONCURRENT jobs for MINUTES minutes (each lasts a random 5-30 s, then its client leaves and a new
dispatch replaces it) and a reload (YAML and code) of each host every minute. Root needed (a private
network namespace). Prints dispatches, jobs that ran, jobs lost (never started, or started twice), jobs
failed and why, each host's RSS, open file descriptors and threads at the start and the end, dispatch ->
entrypoint p50/p95 per minute, and the processes left behind after both hosts stopped.
tests/e2e/test_e2e_soak.py runs a one-minute variant in CI.
Usage: python bench/soak_bench.py [MINUTES] [CONCURRENT]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from host.testing import netns
from host.testing.harness import HostProcess, LiveKitServer, RedisServer, server_binary
from host.testing.soak import soak, write_agent

ROOT = Path(__file__).resolve().parent.parent


async def run(minutes: float, concurrent: int) -> int:
    if netns.enter() is not None:
        raise SystemExit(f"soak: {netns.ERROR}")
    work = Path(tempfile.mkdtemp(prefix="agenthost-soak-"))
    binary = server_binary()
    redis = RedisServer(work)
    redis.start()
    nodes = [LiveKitServer(binary, work, port=port, ip=ip, redis=redis.address)
             for port, ip in ((7950, netns.SERVER_IP), (7960, netns.NODE2_IP))]
    hosts: list[HostProcess] = []
    try:
        for node in nodes:
            node.start()
        folders = [work / "a", work / "b"]
        for i, (node, folder) in enumerate(zip(nodes, folders, strict=True)):
            write_agent(folder, 0)
            # one machine runs both nodes, both hosts and the load: its CPU is no measure of a host's room
            host = HostProcess(["--http", "127.0.0.1:0", "--load-threshold", "0", str(folder)], node.env(),
                               work / f"host-{i}.log")
            host.start()
            hosts.append(host)
        for h in hosts:
            await h.wait_log(r"registered agent soak", timeout=60)
        report = await soak(nodes, hosts, folders, seconds=minutes * 60, concurrent=concurrent, hold=(5, 30),
                            reload_every=60)
    finally:
        for h in hosts:
            h.stop()
        for node in nodes:
            node.stop()
        redis.stop()
    print(f"soak: {minutes:g} min, {concurrent} concurrent jobs, two hosts on two livekit-server nodes over Redis; "
          f"logs in {work}")
    print("\n".join(report.lines()))
    return 0 if not (report.lost or report.doubled or report.leftovers) else 1


if __name__ == "__main__":
    args = sys.argv[1:3]
    sys.exit(asyncio.run(run(float(args[0]) if args else 10, int(args[1]) if len(args) > 1 else 40)))
