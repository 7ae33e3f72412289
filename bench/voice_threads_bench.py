"""Where a voice call's CPU goes: the same `voice-local` module (examples/voice_local.py) served by agenthost and
by livekit-agents' own agent server, against the same livekit-server, one side after the other. Each side gets
CALLS concurrent calls (host/voice/caller.py, without its recogniser) that speak TURNS scripted turns; while
they speak, the CPU of every thread of the serving process tree is read from /proc (the scheduler's run time,
/proc/PID/task/TID/schedstat: tick samples miss much of threads that wake every 10 ms and sleep again), and
summed by thread name: the Python threads (AgentSession with its VAD, speech-to-text and text-to-speech run
there) apart from the rtc library's own (audio encoding, the synthetic audio device, tokio, WebRTC). It also
splits the tree's CPU between the side's own process (agenthost's host, livekit-agents' agent server) and
the rest (its job processes, pools and helpers): what the host itself adds to its calls.

Root needed (a private network namespace). Usage: python bench/voice_threads_bench.py [CALLS] [TURNS]
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import time
from pathlib import Path

import psutil
from job_bench import SETTLE, Side
from record import save  # bench/record.py, beside this script
from voice_bench import PAUSE_S, PEER, SAID, agenthost

from host.config.credentials import Credentials
from host.testing.harness import API_KEY, API_SECRET, new_room, private_server
from host.voice.caller import Caller
from host.voice.speech import Synthesizer
from host.voice.turns import CallOptions, Turn

ROOT = Path(__file__).resolve().parent.parent
OWN = "(the side's own process)"  # the key of the serving process's CPU in `process_cpu`


def thread_cpu(pids: list[int]) -> collections.Counter[str]:
    """CPU seconds so far of every thread of `pids`, summed by thread name."""
    used: collections.Counter[str] = collections.Counter()
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as fh:
                    name = fh.read().strip()
                with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                    used[name] += int(fh.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                continue
    return used


def process_cpu(root: int, pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the serving process `root`, and of the others of `pids` together."""
    own = sum(thread_cpu([root]).values())
    return {OWN: own, "(its job processes and helpers)": sum(thread_cpu(pids).values()) - own}


async def measure(side: Side, credentials: Credentials, turns: list[Turn],
                  calls: int) -> tuple[dict[str, float], dict[str, float]]:
    """Cores used by thread name, and by the side's own process against the rest, while `calls` calls speak
    their turns (the tree as it is once they listen)."""
    assert side.proc is not None
    callers = [Caller(credentials, CallOptions(timeout=20.0, recognize=False, pause=PAUSE_S)) for _ in range(calls)]
    try:
        for caller in callers:
            await caller.start(side.agent, new_room(), "")
        await asyncio.sleep(SETTLE)  # the pool refills its prewarmed processes
        root = psutil.Process(side.proc.pid)
        pids = [root.pid, *(p.pid for p in root.children(recursive=True))]
        before, split_before, started = thread_cpu(pids), process_cpu(root.pid, pids), time.monotonic()
        await asyncio.gather(*(caller.speak(turns) for caller in callers))
        after, split_after, wall = thread_cpu(pids), process_cpu(root.pid, pids), time.monotonic() - started
    finally:
        await asyncio.gather(*(caller.hang_up() for caller in callers), return_exceptions=True)
    return ({name: (after[name] - before.get(name, 0.0)) / wall for name in after},
            {part: (split_after[part] - split_before[part]) / wall for part in split_after})


async def run(calls: int, turn_count: int) -> int:
    server = private_server("voice-threads")
    work = server.workdir
    (work / "voice-local.yaml").write_text((ROOT / "agents.d" / "voice-local.yaml").read_text())
    synthesizer = Synthesizer()
    turns = [Turn(text, synthesizer.synthesize(text)) for text in (SAID * turn_count)[:turn_count]]
    sides = [agenthost("agenthost", work, 0),
             Side("livekit-agents", "voice-local-peer", [sys.executable, str(PEER / "voice_local_peer.py"), "start"],
                  r"registered worker", ROOT, work / "voice_local_peer.py.log")]
    credentials = Credentials(server.url, API_KEY, API_SECRET)
    figures: dict[str, dict[str, float]] = {}
    split: dict[str, dict[str, float]] = {}
    try:
        for side in sides:
            await side.start(server.env())
        await asyncio.sleep(SETTLE)
        for side in sides:
            figures[side.name], split[side.name] = await measure(side, credentials, turns, calls)
    finally:
        for side in sides:
            side.stop()
        server.stop()
    totals = {name: sum(by_thread.values()) for name, by_thread in figures.items()}
    for name, by_thread in figures.items():
        python = sum(v for k, v in by_thread.items() if k.startswith("python"))
        print(f"{name}: {totals[name]:.3f} cores for {calls} calls, of which Python threads {python:.3f}")
        for thread, cores in sorted(by_thread.items(), key=lambda kv: -kv[1])[:8]:
            print(f"    {thread:<24} {cores:.3f}")
        for part, cores in split[name].items():
            print(f"    {part:<40} {cores:.3f} ({cores / calls:.3f} a call)")
    print(f"agenthost / livekit-agents: {totals['agenthost'] / totals['livekit-agents']:.2f}x the CPU "
          f"({turn_count} turns a call, {psutil.cpu_count()} cores, callers in this process)")
    save("voice_threads_bench", {"calls": calls, "turns": turn_count, "cores": figures, "totals": totals,
                                 "by_process": split})
    return 0


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    sys.exit(asyncio.run(run(args[0] if args else 2, args[1] if len(args) > 1 else 8)))
