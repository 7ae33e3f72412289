"""What the rtc library's log records cost idle connected rooms: handed to Python one by one (what the rtc client
does by default, and what livekit-agents' job processes do), or kept by the library (what agenthost's job
processes do, host.job.native.start_runtime).

For each way, a fresh process connects ROOMS rtc clients, each to a room of its own on a local livekit-server:
the CPU it used to connect them, then (SETTLE seconds later) the CPU it uses over IDLE seconds while they idle.
Also the CPU of the short processes the library starts to connect (it runs `lsb_release -a` and `getconf
LONG_BIT` to describe the machine to the server; both ways alike): it counts in no process's own CPU.
Root needed (a private network namespace). Usage: python bench/rtc_logs_bench.py [ROOMS]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from host.testing.harness import private_server

ROOT = Path(__file__).resolve().parent.parent
IDLE = 5.0  # seconds over which the idle CPU is measured
SETTLE = 2.0  # seconds between the last connection and the measurement

# run in a fresh process (the rtc library's runtime is one per process), inside this script's namespace
ONE_WAY = f"""
import asyncio, resource, sys
from livekit import rtc
from host.job.native import start_runtime
from host.testing.rooms import new_room, token

def cpu(who=resource.RUSAGE_SELF):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime

async def main(url, rooms, keep_native):
    if keep_native:
        start_runtime()
    before, started = cpu(), cpu(resource.RUSAGE_CHILDREN)
    connected = [rtc.Room() for _ in range(rooms)]
    await asyncio.gather(*(r.connect(url, token(new_room(), "user")) for r in connected))
    connecting, children = cpu() - before, cpu(resource.RUSAGE_CHILDREN) - started
    await asyncio.sleep({SETTLE})
    before = cpu()
    await asyncio.sleep({IDLE})
    print(f"{{connecting:.2f}} {{(cpu() - before) / {IDLE}:.3f}} {{children:.2f}}")
    await asyncio.gather(*(r.disconnect() for r in connected))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "native"))
"""


def one_way(url: str, rooms: int, way: str) -> tuple[float, float, float]:
    out = subprocess.run([sys.executable, "-c", ONE_WAY, url, str(rooms), way], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{way}: {out.stderr[-2000:]}")
    connecting, idle, children = out.stdout.split()
    return float(connecting), float(idle), float(children)


def main(rooms: int) -> int:
    server = private_server("rtc-logs-bench")
    try:
        python = one_way(server.url, rooms, "python")
        native = one_way(server.url, rooms, "native")
    finally:
        server.stop()
    print(f"{rooms} connected rooms in one process    {'records to Python':>18}{'kept native':>14}{'ratio':>8}")
    print(f"{'CPU to connect them (s)':<38}{python[0]:>18.2f}{native[0]:>14.2f}{native[0] / python[0]:>7.2f}x")
    print(f"{'CPU while they idle (cores)':<38}{python[1]:>18.3f}{native[1]:>14.3f}{native[1] / python[1]:>7.2f}x")
    print(f"{'CPU of what it started to connect (s)':<38}{python[2]:>18.2f}{native[2]:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
