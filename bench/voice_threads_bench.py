"""Where a voice call's CPU goes: the same `voice-local` module (examples/voice_local.py) served by agenthost and
by livekit-agents' own agent server, against the same livekit-server, one side after the other. Each side gets
CALLS concurrent calls (host/voice/caller.py, without its recogniser) that speak TURNS scripted turns; while
they speak, the CPU of every thread of the serving process tree is read from /proc (the scheduler's run time,
/proc/PID/task/TID/schedstat: tick samples miss much of threads that wake every 10 ms and sleep again), and
summed by thread name: the Python threads (AgentSession with its VAD, speech-to-text and text-to-speech run
there) apart from the rtc library's own (audio encoding, the synthetic audio device, tokio, WebRTC). It also
splits the tree's CPU between the side's own process (agenthost's host, livekit-agents' agent server) and
the rest (its job processes, pools and helpers): what the host itself adds to its calls.

With --perf, the same window is also sampled by Linux's `perf record` (a software clock, so it runs in a
virtual machine too) over every process of the tree, and each side's CPU is split by the library its samples
fell in: the speech-to-text and VAD models, the text-to-speech library, the rtc library, the Python
interpreter, the kernel. What is the agent's own work and what a host could make cheaper, side by side.

Root needed (a private network namespace). Usage: python bench/voice_threads_bench.py [CALLS] [TURNS] [--perf]
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
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
PERF_HZ = 499  # samples a second per CPU: off the 10 ms beat of the audio threads, so none is sampled in step

# what each library a sample falls in does in a voice call (the rest are counted as "other")
LIBRARIES = {
    "_pocketsphinx": "pocketsphinx (speech to text)",
    "onnxruntime": "onnxruntime (silero VAD)",
    "libflite": "flite (text to speech)",
    "liblivekit_ffi": "rtc library (WebRTC, Opus, tokio)",
    "libpython": "Python interpreter",
    "python3": "Python interpreter",  # a Python built without a shared libpython (Debian's own)
    "[kernel": "kernel (system calls, scheduling)",
    "libc.so": "C library (memory, copies)",
    "_multiarray": "numpy",
    "_pocketfft": "numpy",
}


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


def library_of(dso: str) -> str:
    return next((label for prefix, label in LIBRARIES.items() if dso.startswith(prefix)), "other")


def perf_split(data: Path) -> dict[str, float]:
    """The share of `data`'s samples by library (`LIBRARIES`)."""
    report = subprocess.run(["perf", "report", "-i", str(data), "--sort", "dso", "--stdio"],
                            capture_output=True, text=True, check=True).stdout
    shares: dict[str, float] = collections.defaultdict(float)
    for line in report.splitlines():
        found = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if found:
            shares[library_of(found.group(2))] += float(found.group(1)) / 100
    return dict(shares)


class Sampler:
    """`perf record` over some processes while it is open; `split` is then its samples' share by library."""

    def __init__(self, pids: list[int]) -> None:
        self._data = Path(tempfile.mkdtemp(prefix="voice-threads-")) / "perf.data"
        self._proc = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ),
                                       "-p", ",".join(map(str, pids)), "-o", str(self._data)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.split: dict[str, float] = {}

    def stop(self) -> None:
        self._proc.send_signal(signal.SIGINT)
        _, err = self._proc.communicate(timeout=60)
        if not self._data.exists():
            raise SystemExit(f"perf record wrote nothing: {err.decode(errors='replace').strip()}")
        self.split = perf_split(self._data)
        shutil.rmtree(self._data.parent)

    def kill(self) -> None:
        """End perf if it still runs (the calls failed), leaving nothing behind."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        shutil.rmtree(self._data.parent, ignore_errors=True)


async def measure(side: Side, credentials: Credentials, turns: list[Turn], calls: int,
                  sample: bool) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Cores used by thread name, by the side's own process against the rest, and (`sample`) by library,
    while `calls` calls speak their turns (the tree as it is once they listen)."""
    assert side.proc is not None
    callers = [Caller(credentials, CallOptions(timeout=20.0, recognize=False, pause=PAUSE_S)) for _ in range(calls)]
    sampler: Sampler | None = None
    try:
        for caller in callers:
            await caller.start(side.agent, new_room(), "")
        await asyncio.sleep(SETTLE)  # the pool refills its prewarmed processes
        root = psutil.Process(side.proc.pid)
        pids = [root.pid, *(p.pid for p in root.children(recursive=True))]
        sampler = Sampler(pids) if sample else None
        before, split_before, started = thread_cpu(pids), process_cpu(root.pid, pids), time.monotonic()
        await asyncio.gather(*(caller.speak(turns) for caller in callers))
        after, split_after, wall = thread_cpu(pids), process_cpu(root.pid, pids), time.monotonic() - started
        if sampler is not None:
            sampler.stop()
    finally:
        if sampler is not None:
            sampler.kill()
        await asyncio.gather(*(caller.hang_up() for caller in callers), return_exceptions=True)
    if sampler is not None:
        # perf's own work as it ends is machine CPU that livekit-agents' worker reports as its load, a few
        # seconds after: the next side's calls are dispatched once it is over (a worker over the server's
        # target load is offered no job)
        await asyncio.sleep(SETTLE)
    by_thread = {name: (after[name] - before.get(name, 0.0)) / wall for name in after}
    total = sum(by_thread.values())
    return (by_thread, {part: (split_after[part] - split_before[part]) / wall for part in split_after},
            {library: share * total for library, share in (sampler.split if sampler else {}).items()})


async def run(calls: int, turn_count: int, sample: bool) -> int:
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
    libraries: dict[str, dict[str, float]] = {}
    try:
        for side in sides:
            await side.start(server.env())
        await asyncio.sleep(SETTLE)
        for side in sides:
            figures[side.name], split[side.name], libraries[side.name] = await measure(
                side, credentials, turns, calls, sample)
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
    if sample:
        print_libraries(libraries, calls)
    save("voice_threads_bench", {"calls": calls, "turns": turn_count, "cores": figures, "totals": totals,
                                 "by_process": split, **({"by_library": libraries} if sample else {})})
    return 0


def print_libraries(libraries: dict[str, dict[str, float]], calls: int) -> None:
    ours, peer = libraries["agenthost"], libraries["livekit-agents"]
    print(f"cores a call, by library (perf samples, {PERF_HZ} Hz):")
    print(f"    {'':<40}{'agenthost':>10}{'livekit-agents':>16}{'ratio':>8}")
    for library in sorted(ours.keys() | peer.keys(), key=lambda k: -peer.get(k, 0.0)):
        mine, theirs = ours.get(library, 0.0) / calls, peer.get(library, 0.0) / calls
        print(f"    {library:<40}{mine:>10.3f}{theirs:>16.3f}{mine / theirs if theirs else float('nan'):>7.2f}x")


if __name__ == "__main__":
    sample = "--perf" in sys.argv[1:]
    if sample and shutil.which("perf") is None:
        sys.exit("--perf needs Linux's perf (Debian: apt-get install linux-perf)")
    args = [int(a) for a in sys.argv[1:] if a != "--perf"]
    sys.exit(asyncio.run(run(args[0] if args else 2, args[1] if len(args) > 1 else 8, sample)))
