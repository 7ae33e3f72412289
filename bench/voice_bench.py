"""Voice calls per machine: the same local voice agent (examples/voice_local.py: silero VAD, pocketsphinx, flite,
a rule LLM) served by agenthost (`api: livekit-agents`), by livekit-agents' own agent server and, where it is
installed (`pip install -e '.[bench]'`), by OpenRTC 0.20 in process mode (bench/peer/voice_local_openrtc.py),
against the same livekit-server, one side at a time.

Root needed (a private network namespace). Each step runs N concurrent calls made by real callers
(host/voice/caller.py, as `agenthost call` makes them, without its recogniser): the calls start 0.3 s
apart, and once every call's agent listens (and the side has refilled its prewarmed processes), they speak
TURNS scripted turns each, with a pause before each turn, from offsets 0.3 s apart. Measured while they
speak:
- end of speech -> first agent audio, p50 and p95 over every turn of every call;
- turns unanswered (no agent audio within 20 s), and calls whose agent never came;
- CPU of the serving side's process tree in cores (its CPU seconds over the step's wall time);
- PSS per call: the tree's largest PSS during the step, less its PSS idle, over N;
- the callers' own CPU (this process), which shares the machine;
- the whole machine's CPU, and the share of the time some task waited for a CPU.
Capacity is the most calls with p95 <= 1.5 s and no turn unanswered; the ramp stops at the first step past it.
Every side keeps two prewarmed processes and sheds no load (agenthost --load-threshold 0). The callers and the
server stand for other machines: they run 10 nice levels above the sides (and, where the kernel groups each
session's tasks for the scheduler, their group 10 levels above the sides' groups), so that what is measured is
the side serving the calls, not a caller late to speak or to hear.

Every side runs from the start, and each step runs on one side after the other, so that all meet the
machine in the same state. Then, overload: one agenthost host on one CPU is ramped the same way (its
capacity C1, and the share of its CPU it then uses); two hosts, each on a CPU of its own and with that
share as --load-threshold, are offered 1.5 x C1 calls, 3 s apart: how many each took, how many got no
agent, and the p50/p95 of every admitted call's turns.

With --repeat=R, the whole ramp runs R times: a step's p95 over a dozen turns is decided by its slowest
turns, so capacities are compared as the medians of the ramps, each ramp's printed.

With --spread, the calls of a step speak from offsets spread over a turn's cycle (CYCLE_S / N apart), as
independent callers would, rather than 0.3 s apart, where every call's turn ends at about the same time.

With --answers-favoured, a second agenthost side serves the same agent with `--answer-priority 5`: what
favouring the call whose answer is due gains (host.process.priority).

With --cpu-groups, a second agenthost side ("CPU groups") serves the same agent with a `cpu_limit` of all the
machine's CPUs, which bounds nothing but gives each job a CPU group of its own, as every job once had: what such
groups cost a call (host.process.cgroups).

Usage: python bench/voice_bench.py [MAX_CALLS] [TURNS] [--repeat=R] [--no-overload] [--cpu-groups]
       [--answers-favoured] [--spread]
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import psutil
from job_bench import SETTLE, Side, tree_pss
from record import save  # bench/record.py, beside this script

from host.config.credentials import Credentials
from host.process.cgroupfs import JobGroup
from host.testing.harness import API_KEY, API_SECRET, LiveKitServer, new_room, private_server, server_api
from host.voice.caller import Caller
from host.voice.speech import Synthesizer
from host.voice.turns import CallOptions, Turn

ROOT = Path(__file__).resolve().parent.parent
PEER = Path(__file__).resolve().parent / "peer"
STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24)
P95_LIMIT_MS = 1500.0
SAID = ("hello there", "what is your name", "how are you today", "the weather is nice")
STAGGER_S = 0.3  # between the starts of a step's calls
PAUSE_S = 1.0  # silence before each turn, once the agent is quiet
# about one turn's cycle at one call here (the pause, the speech, the wait, the answer's audio): with --spread,
# a step's calls speak from offsets spread over it, as independent callers would, not all at once
CYCLE_S = 5.0
SPREAD = "--spread" in sys.argv
CALLERS_NICE = -10  # the bench's own threads (the callers) and the server it starts
SERVED_NICE = 0  # each side's
ARRIVAL_S = 3.0  # between calls offered in the overload phase: the hosts' smoothed CPU follows within ~10 s


@dataclass
class Step:
    calls: int
    latencies: list[float] = field(default_factory=list)
    unanswered: int = 0
    no_agent: int = 0
    cores: float = 0.0
    pss_per_call_mb: float = 0.0
    caller_cores: float = 0.0
    machine_cores: float = 0.0  # the whole machine's CPU: the side, the callers, the server and the rest
    cpu_wait: float | None = None  # share of the step some task waited for a CPU
    new_processes: int = 0  # processes of the side's tree started during the step (a pool refilling, say)
    new_process_cores: float = 0.0  # their part of `cores`

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p95(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def good(self) -> bool:
        return bool(self.latencies) and self.p95 <= P95_LIMIT_MS and not self.unanswered and not self.no_agent


class TreeUse(NamedTuple):
    """What a process tree used over a step. The processes started during it are told apart, so that a step's
    outlier in CPU can be put down to its calls or to processes started beside them (a pool refilling)."""

    cores: float  # on average
    peak_pss: int  # bytes
    new_processes: int
    new_process_cores: float  # their part of `cores`


class TreeSampler:
    """CPU seconds and the largest PSS of a process tree over a step, sampled every half second (job
    processes that end during the step keep what they used until their last sample)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = self._cpu()
        self.seen = dict(self.base)
        self.peak_pss = 0
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._run())

    def _cpu(self) -> dict[int, float]:
        root = psutil.Process(self.pid)
        used = {}
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()  # its own: a child that exits keeps its last sample here
                used[proc.pid] = t.user + t.system
        return used

    async def _run(self) -> None:
        tick = 0
        while True:
            self.seen.update(await asyncio.to_thread(self._cpu))
            if tick % 4 == 0:
                self.peak_pss = max(self.peak_pss, await asyncio.to_thread(tree_pss, self.pid))
            tick += 1
            await asyncio.sleep(0.5)

    async def stop(self) -> TreeUse:
        self.seen.update(self._cpu())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        elapsed = time.monotonic() - self.started
        used = sum(self.seen.values()) - sum(self.base.get(pid, 0.0) for pid in self.seen)
        new = [pid for pid in self.seen if pid not in self.base]
        return TreeUse(used / elapsed, self.peak_pss, len(new), sum(self.seen[pid] for pid in new) / elapsed)


async def ramp(sides: list[Side], server: LiveKitServer, turns: list[Turn], max_calls: int) -> dict[str, list[Step]]:
    """Each step on each side in turn (so that both meet the machine in the same state), until every side
    is past its capacity."""
    credentials = Credentials(server.url, API_KEY, API_SECRET)
    await asyncio.sleep(SETTLE)
    idle = {side.name: tree_pss(side.proc.pid) for side in sides if side.proc is not None}
    results: dict[str, list[Step]] = {side.name: [] for side in sides}
    for calls in (n for n in STEPS if n <= max_calls):
        going = [side for side in sides if all(s.good for s in results[side.name])]
        if not going:
            break
        for side in going:
            step = await run_step(side, credentials, turns, calls, idle[side.name])
            results[side.name].append(step)
            print(f"  {side.name}: {calls:>2} calls  p50 {step.p50:7.0f} ms  p95 {step.p95:7.0f} ms  "
                  f"unanswered {step.unanswered}  no agent {step.no_agent}  {step.cores:.2f} cores  "
                  f"PSS/call {step.pss_per_call_mb:.1f} MB  callers {step.caller_cores:.2f} cores  "
                  f"machine {step.machine_cores:.2f} of {psutil.cpu_count()} cores{waiting(step)}"
                  f"{started_beside(step)}", flush=True)
            await wait_rooms_gone(server)
    return results


async def run_step(side: Side, credentials: Credentials, turns: list[Turn], calls: int, idle: int) -> Step:
    """`calls` calls that all have their agent listening first (a call's start, its process and VAD, is
    not what a call in progress costs), then speak at once, each from its own offset."""
    assert side.proc is not None
    step = Step(calls)
    callers = [Caller(credentials, CallOptions(timeout=20.0, recognize=False, pause=PAUSE_S)) for _ in range(calls)]

    async def start(i: int, caller: Caller) -> Caller | None:
        await asyncio.sleep(i * STAGGER_S)
        try:
            await caller.start(side.agent, new_room(), "")
            return caller
        except Exception as exc:
            print(f"  {side.name}: a call's agent did not come: {exc}", file=sys.stderr)
            step.no_agent += 1
            return None

    async def speak(i: int, caller: Caller) -> None:
        await asyncio.sleep(i * (CYCLE_S / calls if SPREAD else STAGGER_S))
        for turn in await caller.speak(turns):
            if turn.latency_ms is None:
                step.unanswered += 1
            else:
                step.latencies.append(turn.latency_ms)

    try:
        started = [c for c in await asyncio.gather(*(start(i, c) for i, c in enumerate(callers))) if c]
        await asyncio.sleep(SETTLE)  # the pool refills its prewarmed processes
        sampler, me, machine = TreeSampler(side.proc.pid), CallerCpu(), MachineCpu()
        await asyncio.gather(*(speak(i, c) for i, c in enumerate(started)))
        tree, step.caller_cores, (step.machine_cores, step.cpu_wait) = \
            await sampler.stop(), me.cores(), machine.stop()
        step.cores, step.new_processes, step.new_process_cores = tree.cores, tree.new_processes, tree.new_process_cores
        step.pss_per_call_mb = max(0, tree.peak_pss - idle) / calls / 2**20
    finally:
        await asyncio.gather(*(c.hang_up() for c in callers), return_exceptions=True)
    return step


class CallerCpu:
    """The CPU of this process, where the callers run, in cores."""

    def __init__(self) -> None:
        self._start = (time.process_time(), time.monotonic())

    def cores(self) -> float:
        cpu, wall = self._start
        return (time.process_time() - cpu) / (time.monotonic() - wall)


class MachineCpu:
    """The whole machine's CPU over a step: cores used, from the root cgroup's CPU accounting (the tasks' own
    run time; /proc/stat's tick samples miss much of it here, where audio threads wake every 10 ms and sleep
    again between two ticks), and the share of the time some task waited for a CPU (the kernel's CPU
    pressure, where it is kept)."""

    # the root group as each layout mounts it: v1's cpuacct hierarchy (alone or with cpu), v2's one
    ROOTS = (JobGroup(1, {"cpuacct": Path("/sys/fs/cgroup/cpuacct")}),
             JobGroup(1, {"cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct")}), JobGroup(2, {"cpu": Path("/sys/fs/cgroup")}))

    def __init__(self) -> None:
        self._start = (self._used(), self._waited(), time.monotonic())

    @classmethod
    def _used(cls) -> float:
        for group in cls.ROOTS:
            used = group.cpu_seconds()
            if used is not None:
                return used
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)

    @staticmethod
    def _waited() -> float | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
            return int(some.rsplit("total=", 1)[1]) * 1e-6
        return None

    def stop(self) -> tuple[float, float | None]:
        """(cores used, share of the time some task waited for a CPU, or None)."""
        used, waited, wall = self._start
        elapsed = time.monotonic() - wall
        now = self._waited()
        wait = (now - waited) / elapsed if now is not None and waited is not None else None
        return (self._used() - used) / elapsed, wait


def agenthost(name: str, work: Path, threshold: float, cpus: set[int] | None = None,
              agent: str = "voice-local", options: tuple[str, ...] = ()) -> Side:
    return Side(name, agent, [sys.executable, "-m", "host", "run", *options, "--http", "127.0.0.1:0",
                              "--load-threshold", f"{threshold:g}", str(work / f"{agent}.yaml")],
                rf"registered agent {agent} as worker", ROOT, work / f"{name.replace(' ', '-')}.log", cpus=cpus,
                nice=SERVED_NICE)


def with_cpu_groups(work: Path) -> Side:
    """agenthost serving voice-local with every job in a CPU group of its own (a `cpu_limit` of all the
    machine's CPUs, which bounds nothing here): what a CPU group per job costs a call on a busy machine."""
    (work / "voice-local-cpu-groups.yaml").write_text(
        (work / "voice-local.yaml").read_text().replace("name: voice-local", "name: voice-local-cpu-groups")
        + f"limits:\n  cpu_limit: {os.cpu_count() or 1}\n")
    return agenthost("CPU groups", work, 0, agent="voice-local-cpu-groups")


def with_answer_priority(work: Path) -> Side:
    """agenthost serving voice-local with the answer that is due favoured (host.process.priority)."""
    (work / "voice-local-favoured.yaml").write_text(
        (work / "voice-local.yaml").read_text().replace("name: voice-local", "name: voice-local-favoured"))
    return agenthost("answers favoured", work, 0, agent="voice-local-favoured", options=("--answer-priority", "5"))


async def overload(server: LiveKitServer, turns: list[Turn], work: Path, max_calls: int) -> dict[str, object]:
    """What one host on one CPU carries (capacity C1, and the CPU share it uses then), then 1.5 x C1 calls
    offered to two hosts on a CPU each, whose --load-threshold is that share: each takes calls while it has
    room and then reports itself full, so that the other takes the rest."""
    one = agenthost("one CPU", work, 0, cpus={0})
    await one.start(server.env())
    try:
        steps = (await ramp([one], server, turns, max_calls))[one.name]
    finally:
        one.stop()
    c1 = capacity(steps)
    share = next((s.cores for s in steps if s.calls == c1), 0.5)
    threshold = round(min(0.95, share + 0.05), 2)
    offered = math.ceil(1.5 * max(1, c1))
    credentials = Credentials(server.url, API_KEY, API_SECRET)
    hosts = [agenthost(f"host {i}", work, threshold, cpus={i}) for i in range(2)]
    step = Step(offered)
    try:
        for host in hosts:
            await host.start(server.env())
        await asyncio.sleep(SETTLE)
        callers = [Caller(credentials, CallOptions(timeout=20.0, recognize=False, pause=PAUSE_S))
                   for _ in range(offered)]

        async def call(i: int, caller: Caller) -> None:
            await asyncio.sleep(i * ARRIVAL_S)
            try:
                await caller.start("voice-local", new_room(), "")
            except Exception as exc:
                print(f"  overload: call {i + 1} got no agent: {exc}", file=sys.stderr)
                step.no_agent += 1
                return
            for turn in await caller.speak(turns * 2):  # still talking while the last calls arrive
                if turn.latency_ms is None:
                    step.unanswered += 1
                else:
                    step.latencies.append(turn.latency_ms)

        try:
            await asyncio.gather(*(call(i, c) for i, c in enumerate(callers)))
        finally:
            await asyncio.gather(*(c.hang_up() for c in callers), return_exceptions=True)
        taken = [h.log.read_text(errors="replace").count("job running") for h in hosts]
        full = [h.log.read_text(errors="replace").count("takes no new jobs") for h in hosts]
    finally:
        for host in hosts:
            host.stop()
    print(f"\noverload: one host on one CPU carries {c1} calls using {share:.2f} of it; {offered} calls offered "
          f"{ARRIVAL_S:g} s apart to two hosts on a CPU each, --load-threshold {threshold:g}: taken {taken[0]} "
          f"and {taken[1]}, no agent {step.no_agent}, unanswered turns {step.unanswered}; p50 {step.p50:.0f} ms, "
          f"p95 {step.p95:.0f} ms over {len(step.latencies)} turns; hosts reported full {full[0]} and {full[1]} "
          "times")
    return {"one_cpu_capacity": c1, "one_cpu_share": share, "threshold": threshold, "offered": offered,
            "taken": taken, "no_agent": step.no_agent, "unanswered": step.unanswered, "p50_ms": step.p50,
            "p95_ms": step.p95, "reported_full": full}


async def wait_rooms_gone(server: LiveKitServer, timeout: float = 60.0) -> None:
    """Until the last step's rooms are closed (its jobs ended by their policy), so steps do not overlap."""
    deadline = time.monotonic() + timeout
    async with server_api(server) as lk:
        from livekit import api

        while (await lk.room.list_rooms(api.ListRoomsRequest())).rooms and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)  # the pool refills its prewarmed processes


def waiting(step: Step) -> str:
    return f", a task waiting for one {step.cpu_wait:.0%} of the time" if step.cpu_wait is not None else ""


def started_beside(step: Step) -> str:
    return f", {step.new_processes} process(es) started using {step.new_process_cores:.2f} cores" \
        if step.new_processes else ""


def capacity(steps: list[Step]) -> int:
    return max((s.calls for s in steps if s.good), default=0)


def print_results(ramps: list[dict[str, list[Step]]]) -> dict[str, object]:
    """Every ramp's steps, then each side's capacity in every ramp and the ratios of their medians (one slow
    turn decides a step, so a single ramp's capacity is noisy)."""
    print(f"\n{'ramp':<6}{'side':<16}{'calls':>6}{'p50 ms':>9}{'p95 ms':>9}{'unanswered':>12}{'cores':>8}"
          f"{'PSS/call MB':>13}")
    for number, results in enumerate(ramps, 1):
        for name, steps in results.items():
            for s in steps:
                print(f"{number:<6}{name:<16}{s.calls:>6}{s.p50:>9.0f}{s.p95:>9.0f}{s.unanswered + s.no_agent:>12}"
                      f"{s.cores:>8.2f}{s.pss_per_call_mb:>13.1f}")
    names = list(ramps[0])
    capacities = {name: [capacity(results[name]) for results in ramps] for name in names}
    p50s = {name: [results[name][0].p50 for results in ramps] for name in names}
    both = max(n for n in STEPS if all(any(s.calls == n for s in results[name]) for results in ramps
                                       for name in names))
    pss = {name: statistics.median(next(s.pss_per_call_mb for s in results[name] if s.calls == both)
                                   for results in ramps) for name in names}
    summary = {
        "ramps": len(ramps), "capacities": capacities,
        "capacity": {name: statistics.median(c) for name, c in capacities.items()},
        "p50_ms_at_1_call": {name: statistics.median(v) for name, v in p50s.items()},
        "pss_per_call_mb": pss, "pss_measured_at_calls": both,
    }
    cap, p50 = summary["capacity"], summary["p50_ms_at_1_call"]
    for peer in (name for name in names if name != "agenthost"):
        print(f"\nagenthost against {peer} (medians of {len(ramps)} ramp(s)):")
        print(f"  capacity (p95 <= {P95_LIMIT_MS:.0f} ms, nothing unanswered): {cap['agenthost']:g} calls against "
              f"{cap[peer]:g}: {cap['agenthost'] / max(cap[peer], 1):.2f}x  (each ramp: "
              f"{capacities['agenthost']} against {capacities[peer]})")
        print(f"  p50 at 1 call: {p50['agenthost']:.0f} ms against {p50[peer]:.0f} ms: "
              f"{p50['agenthost'] / p50[peer]:.2f}x")
        print(f"  PSS per call at {both} calls: {pss['agenthost']:.1f} MB against {pss[peer]:.1f} MB: "
              f"{pss['agenthost'] / pss[peer]:.2f}x")
    steps = [{name: [{"calls": s.calls, "p50_ms": s.p50, "p95_ms": s.p95, "unanswered": s.unanswered,
                      "no_agent": s.no_agent, "cores": s.cores, "pss_per_call_mb": s.pss_per_call_mb,
                      "caller_cores": s.caller_cores, "machine_cores": s.machine_cores, "cpu_wait": s.cpu_wait,
                      "new_processes": s.new_processes, "new_process_cores": s.new_process_cores}
                     for s in steps] for name, steps in results.items()} for results in ramps]
    return {"steps": steps, **summary}


async def run(max_calls: int, turn_count: int, overload_phase: bool, repeat: int, cpu_groups: bool,
              favoured: bool) -> int:
    # the callers and the server stand for other machines: ahead of the sides for the CPU, they are not what is
    # measured (a caller late to send its speech or to hear the answer would add its own delay to the side's);
    # the server inherits it, each side runs at the usual nice value
    os.setpriority(os.PRIO_PROCESS, 0, CALLERS_NICE)
    # each side runs in a session of its own (job_bench.Side); where the kernel groups a session's tasks for
    # the scheduler (autogroup), a nice value counts only within its group, and the groups weigh the same:
    # this process's group gets the callers' nice value too, so that they are ahead of the sides there as well
    with group_nice(CALLERS_NICE):
        return await measured(max_calls, turn_count, overload_phase, repeat, cpu_groups, favoured)


@contextlib.contextmanager
def group_nice(nice: int) -> Iterator[None]:
    """This process's scheduler group at `nice` (its session's, where the kernel groups them), as it was after."""
    group = Path("/proc/self/autogroup")
    try:
        before = group.read_text().split("nice")[1].strip()
        group.write_text(f"{nice}\n")
    except (OSError, IndexError):
        yield  # no such groups here: the nice value of each process is enough
        return
    try:
        yield
    finally:
        group.write_text(f"{before}\n")


async def measured(max_calls: int, turn_count: int, overload_phase: bool, repeat: int, cpu_groups: bool,
                   favoured: bool) -> int:
    server = private_server("voice-bench")
    work = server.workdir
    synthesizer = Synthesizer()
    turns = [Turn(text, synthesizer.synthesize(text)) for text in (SAID * turn_count)[:turn_count]]
    ours = agenthost("agenthost", work, 0)
    (work / "voice-local.yaml").write_text(
        (ROOT / "agents.d" / "voice-local.yaml").read_text().replace("idle: 1", "idle: 2"))
    def peer(name: str, agent: str, script: str) -> Side:
        return Side(name, agent, [sys.executable, str(PEER / script), "start"], r"registered worker", ROOT,
                    work / f"{script}.log", nice=SERVED_NICE)

    sides = [ours, *([with_cpu_groups(work)] if cpu_groups else []),
             *([with_answer_priority(work)] if favoured else []),
             peer("livekit-agents", "voice-local-peer", "voice_local_peer.py")]
    if importlib.util.find_spec("openrtc") is not None:
        sides.append(peer("OpenRTC", "voice-local-openrtc", "voice_local_openrtc.py"))
    else:
        print("OpenRTC is not installed (pip install -e '.[bench]'): its column is left out", flush=True)
    try:
        try:
            for side in sides:
                await side.start(server.env())
            ramps = []
            for number in range(1, repeat + 1):
                print(f"ramp {number} of {repeat}", flush=True)
                ramps.append(await ramp(sides, server, turns, max_calls))
        finally:
            for side in sides:
                side.stop()
        summary = print_results(ramps)
        if overload_phase and len(os.sched_getaffinity(0)) >= 2:
            summary["overload"] = await overload(server, turns, work, max_calls)
    finally:
        server.stop()
    print(f"({turn_count} turns a call, {PAUSE_S:g} s pause before each, calls started {STAGGER_S:g} s apart, "
          f"speaking {f'{CYCLE_S:g} s / N' if SPREAD else f'{STAGGER_S:g} s'} apart; "
          f"{psutil.cpu_count()} cores; callers in the bench's own process on the same machine)")
    save("voice_bench", summary)
    return 0


if __name__ == "__main__":
    options = [a for a in sys.argv[1:] if a.startswith("--")]
    args = [int(a) for a in sys.argv[1:] if not a.startswith("--")]
    repeats = [int(o.split("=", 1)[1]) for o in options if o.startswith("--repeat=")]
    if repeats and repeats[-1] < 1:
        sys.exit("--repeat=R needs R >= 1")
    sys.exit(asyncio.run(run(args[0] if args else 24, args[1] if len(args) > 1 else 4,
                             "--no-overload" not in options, repeats[-1] if repeats else 1,
                             "--cpu-groups" in options, "--answers-favoured" in options)))
