"""How long an edit takes to reach new jobs: hot reload against restarting the host.

Runs a real livekit-server and `agenthost run --reload` in a private network namespace
(root needed). Each round edits the agent's YAML (definition) or its module (code), then
dispatches a job as soon as the host has applied the reload, and measures from the file
write to (a) the reload applied and (b) the dispatched job reporting, from inside its
entrypoint, the new revision. The peer measured in the same run is what other workers do
on a change: restart the host process, then dispatch. Prints median and max per case,
and the ratio of restart to reload.
Usage: python bench/reload_bench.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from host.testing.harness import Client, LiveKitServer, dispatch, private_server

ROOT = Path(__file__).resolve().parent.parent


CODE = """\
VERSION = "{version}"


async def entrypoint(ctx):
    await ctx.connect()
    rev = ctx.room.local_participant.attributes.get("rev", "?")
    await ctx.room.local_participant.send_text(f"{{VERSION}} {{rev}}", topic="probe")
    ctx.shutdown("probe answered")
"""


def write_definition(folder: Path, rev: int) -> None:
    (folder / "probe.yaml").write_text(
        f"name: probe\nentrypoint: probe.py:entrypoint\nparticipant:\n  attributes: {{rev: '{rev}'}}\n"
        "processes: {idle: 2}\nshutdown: {timeout: 2s}\n")


def write_code(folder: Path, version: str) -> None:
    (folder / "probe.py").write_text(CODE.format(version=version))


class Host:
    def __init__(self, server: LiveKitServer, folder: Path, log: Path) -> None:
        self.log_path = log
        self.fh = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "host", "run", "--reload", str(folder)], cwd=ROOT,
                                     env={**os.environ, **server.env()}, stdout=self.fh, stderr=subprocess.STDOUT)

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log_path.read_text(errors="replace")))

    async def wait(self, pattern: str, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(pattern) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"waiting for {pattern!r}:\n{self.log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.fh.close()


async def served(server: LiveKitServer, expected: str) -> float:
    """Dispatch a probe job to a new room (client already in it); the time its answer arrives."""
    client = Client(server, f"bench-{uuid.uuid4().hex[:8]}")
    client.listen("probe")
    await client.connect()
    try:
        await dispatch(server, "probe", client.room_name)
        [answer] = await client.wait_text("probe", 1, timeout=30)
        done = time.perf_counter()
        if answer != expected:
            raise SystemExit(f"the job answered {answer!r}, expected {expected!r}: not the new definition/code")
        return done
    finally:
        await client.disconnect()


async def run(rounds: int) -> int:
    if rounds < 1:
        raise SystemExit("ROUNDS must be at least 1")
    server = private_server("reload-bench")
    work = server.workdir
    folder = work / "agents"
    folder.mkdir()
    write_definition(folder, 0)
    write_code(folder, "c0")
    host = Host(server, folder, work / "host.log")
    figures: dict[str, list[float]] = {"no edit (dispatch only)": [], "definition applied": [],
                                       "definition served": [], "code applied": [], "code served": [],
                                       "restart served": []}
    try:
        await host.wait(r"registered agent probe", 1)
        await served(server, "c0 0")  # warm up the server and the path
        for _ in range(rounds):
            await asyncio.sleep(0.3)
            start = time.perf_counter()
            figures["no edit (dispatch only)"].append(await served(server, "c0 0") - start)
        rev, version = 0, 0
        for i in range(2 * rounds):
            kind = "definition" if i % 2 == 0 else "code"
            await asyncio.sleep(0.3)  # let the previous round's processes settle
            start = time.perf_counter()
            if kind == "definition":
                rev += 1
                write_definition(folder, rev)
            else:
                version += 1
                write_code(folder, f"c{version}")
            await host.wait(r"reload \(changed .*\): changed probe", i + 1)
            figures[f"{kind} applied"].append(time.perf_counter() - start)
            figures[f"{kind} served"].append(await served(server, f"c{version} {rev}") - start)
        for n in range(max(2, rounds // 2)):
            await asyncio.sleep(0.3)
            start = time.perf_counter()
            rev += 1
            write_definition(folder, rev)
            host.stop()
            host = Host(server, folder, work / f"host-restart-{n}.log")
            await host.wait(r"registered agent probe", 1)
            figures["restart served"].append(await served(server, f"c{version} {rev}") - start)
    finally:
        if host.proc.poll() is None:
            host.stop()
        server.stop()
    print(f"{'from the file write to':<28}{'median':>10}{'max':>10}   ({rounds} edits of each kind)")
    for name, values in figures.items():
        print(f"{name:<28}{statistics.median(values) * 1000:>8.0f}ms{max(values) * 1000:>8.0f}ms")
    print("(served = the dispatched job answered from its entrypoint; 'no edit' is that path alone)")
    restart = statistics.median(figures["restart served"])
    for kind in ("definition", "code"):
        print(f"restart / hot reload ({kind}, served): "
              f"{restart / statistics.median(figures[f'{kind} served']):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 10)))
