"""Jobs served by agenthost next to livekit-agents' own agent server, in the same run.

Both serve the same probe entrypoint (bench/peer/) to the same local livekit-server, with two
prewarmed processes each, inside a private network namespace (root needed). Measured:
- start: from launching the host/worker to its registration with the server;
- dispatch: from creating a dispatch (client already in the room) to the entrypoint's first
  text arriving at the client, over ROUNDS sequential jobs;
- burst: BURST dispatches at once (their clients in their rooms since ROOMS_SETTLE seconds): until every
  entrypoint runs and every job is connected (the probes say when, in their text), and until the last text
  arrived; BURSTS times per side (each printed), medians in the table; each burst starts once the side is
  back to its prewarmed processes and quiet (each phase closes its rooms when its clients leave);
- memory: the proportional set size (PSS, so shared pages count once) of the whole process
  tree, idle (prewarmed) and with JOBS jobs running at once; per job = the difference / JOBS; and what
  a running job's process is made of (private pages by kind, from smaps);
- the CPU a burst used: each side's processes, and the server's and the clients' (the same work for both).
The peer runs from its own venv: scripts/setup-bench-peer.sh creates it (run before, or let
this script run it before it enters the namespace).
Usage: python bench/job_bench.py [ROUNDS] [JOBS]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from livekit import api
from record import save  # bench/record.py, beside this script

from host.testing.harness import (
    Client,
    LiveKitServer,
    dispatch,
    new_room,
    private_server,
    renew_agent_list,
    server_api,
)

ROOT = Path(__file__).resolve().parent.parent
PEER = Path(__file__).resolve().parent / "peer"


SETTLE = 6.0  # seconds for prewarmed processes to be ready before memory is measured
# seconds between the burst's clients joining their rooms and its dispatches. A new room makes the server look
# for agents to dispatch to it automatically; when its list of registered agents is older than a minute, that
# look-up renews it, asking every node and waiting out the full 5 s of the request (livekit-server
# pkg/agent/client.go: EnabledCacheTTL, CheckEnabledTimeout). Until it ends, each dispatch holds one of the
# server's 50 dispatch workers, and dispatches past those wait: bursts printed their last offer 1.9 s, and
# once 5.2 s, after their dispatches. So each burst has the server drop its list first (`renew_agent_list`):
# its rooms' look-up renews it, and it has ended before the dispatches.
ROOMS_SETTLE = 6.0
BURST = 30  # dispatches at once, to one agent with two prewarmed processes
BURSTS = 5  # bursts per side: a burst on a small shared machine varies a lot from one to the next; medians


def tree_pss(pid: int) -> int:
    """PSS in bytes of a process and all its descendants."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def mapping_kind(name: str) -> str:
    if name in ("", "[heap]") or name.startswith("[anon"):
        return "heap and anonymous (Python objects, native allocations)"
    if name.startswith("[stack"):
        return "stacks"
    base = os.path.basename(name)
    if base.startswith("libpython"):
        return "libpython's data"
    if base.startswith("liblivekit_ffi"):
        return "rtc library's data"
    return "other files' data"


def running_breakdown(side: Side, jobs: int) -> None:
    """What a running job's process is made of (from smaps), averaged over the `jobs` processes below the
    host or worker with the most threads (a connected job runs the rtc library's threads; the worker itself,
    with threads of its own, is not one of them): private pages by kind, and its share of pages shared with
    other processes."""
    assert side.proc is not None
    tree = [c.pid for c in psutil.Process(side.proc.pid).children(recursive=True)]
    threads = {}
    for pid in tree:
        with contextlib.suppress(OSError):
            threads[pid] = len(os.listdir(f"/proc/{pid}/task"))
    running = sorted(threads, key=threads.__getitem__)[-jobs:]
    private: dict[str, int] = {}
    shared = 0
    for pid in running:
        kind = ""
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps") as fh:
            for line in fh:
                if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                    fields = line.split(maxsplit=5)
                    kind = mapping_kind(fields[5].strip() if len(fields) > 5 else "")
                elif line.startswith(("Private_Dirty:", "Private_Clean:")):
                    private[kind] = private.get(kind, 0) + int(line.split()[1])
                elif line.startswith("Pss:"):
                    shared += int(line.split()[1])
    n = len(running)
    total_private = sum(private.values())
    kinds = ", ".join(f"{k} {v // n}" for k, v in sorted(private.items(), key=lambda kv: -kv[1]))
    print(f"a running job's process on {side.name} (KB, mean of {n}): private {total_private // n} = {kinds}; "
          f"share of shared pages {(shared - total_private) // n}")


@dataclass
class Side:
    name: str
    agent: str
    cmd: list[str]
    registered: str  # log pattern
    cwd: Path
    log: Path
    figures: dict[str, float] = field(default_factory=dict)
    dispatch_ms: list[float] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    idle_processes: int = 0  # processes in its tree once prewarmed, before any job
    cpus: set[int] | None = None  # the CPUs it may run on (all when None)
    nice: int | None = None  # its nice value (the bench's own when None)

    async def start(self, env: dict[str, str]) -> None:
        fh = open(self.log, "wb")  # noqa: SIM115
        started = time.perf_counter()
        cpus, nice = self.cpus, self.nice

        def placed() -> None:
            if cpus is not None:
                os.sched_setaffinity(0, cpus)
            if nice is not None:
                os.setpriority(os.PRIO_PROCESS, 0, nice)

        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env={**os.environ, **env}, stdout=fh,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=None if cpus is None and nice is None else placed)
        deadline = time.monotonic() + 60
        while not re.search(self.registered, self.log.read_text(errors="replace")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not register:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.01)
        self.figures["start to registered (ms)"] = (time.perf_counter() - started) * 1000

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # measuring is over; no need to drain
            self.proc.wait(10)


async def served(server: LiveKitServer, agent: str, metadata: str = "") -> tuple[float, Client]:
    client = Client(server, new_room())
    client.listen("probe")
    await client.connect()
    start = time.perf_counter()
    await dispatch(server, agent, client.room_name, metadata)
    try:
        await client.wait_text("probe", 1, timeout=30)
    except AssertionError:
        await client.disconnect()
        raise
    return (time.perf_counter() - start) * 1000, client


def print_table(ours: Side, peer: Side) -> None:
    """The figures side by side, with the ratio peer / agenthost (above 1: agenthost is ahead on time and memory)."""
    print(f"{'':<52}{'agenthost':>12}{'livekit-agents':>16}{'peer / ours':>13}")
    for key, value in ours.figures.items():
        other = peer.figures[key]
        print(f"{key:<52}{value:>12.1f}{other:>16.1f}{other / value if value else float('nan'):>12.2f}x")


STAGES = (("offered", r"job offer"), ("assigned", r"job assigned"), ("given a process", r"job running in process"),
          ("entrypoint", r"job started"))


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds used so far by a process and each of its descendants, by pid."""
    root = psutil.Process(pid)
    used = {}
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = proc.cpu_times()
            used[proc.pid] = times.user + times.system
    return used


async def quiet(side: Side, server: LiveKitServer, cores: float = 0.1, bound: float = 60.0) -> None:
    """Until the side's processes and the server together use under `cores` over a second, and the side has no
    more processes than once prewarmed (at most `bound` seconds): a burst starts from an idle host, however
    long the last one took to wind down (an idle job uses little CPU: its process is what shows it runs)."""
    assert side.proc is not None and server.proc is not None
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        before, server_before = tree_cpu(side.proc.pid), tree_cpu(server.proc.pid)[server.proc.pid]
        await asyncio.sleep(1.0)
        after, server_after = tree_cpu(side.proc.pid), tree_cpu(server.proc.pid)[server.proc.pid]
        used = sum(after.values()) - sum(before.values()) + server_after - server_before
        settled = after.keys() == before.keys() and len(after) <= side.idle_processes  # none came, went, or runs
        if settled and used < cores:
            return
    print(f"{side.name}: still busy after {bound:g} s; the burst starts anyway")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def burst(server: LiveKitServer, side: Side) -> dict[str, float]:
    """BURST dispatches at once (each client already in its room); ms until the last job answered. Also the
    CPU the burst used: the side's processes, the server and the clients (this process); a burst on this
    machine cannot end sooner than all of it divided by its cores. For agenthost (which logs at debug level
    here), where each job's time went, from its host's log."""
    assert side.proc is not None and server.proc is not None
    await renew_agent_list(server)
    await asyncio.sleep(0.5)  # every node has heard of the worker that came and went
    clients = [Client(server, new_room()) for _ in range(BURST)]
    for c in clients:
        c.listen("probe")
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.sleep(ROOMS_SETTLE)
    ours, the_server, mine = tree_cpu(side.proc.pid), tree_cpu(server.proc.pid)[server.proc.pid], own_cpu()
    sent = time.time()
    start = time.perf_counter()
    # "stay": the jobs hold until their clients leave (a probe that leaves at once may leave before its
    # text is delivered, under a burst's load)
    await asyncio.gather(*(dispatch(server, side.agent, c.room_name, "stay") for c in clients))
    texts = await asyncio.gather(*(c.wait_text("probe", 1, timeout=60) for c in clients))
    took = (time.perf_counter() - start) * 1000
    # each probe said when its entrypoint started and when it was connected (one clock: one machine)
    said = [t[0].split() for t in texts]  # "ready STARTED CONNECTED"
    figures = {f"burst of {BURST}: all entrypoints running (ms)": (max(float(w[1]) for w in said) - sent) * 1000,
               f"burst of {BURST}: all jobs connected (ms)": (max(float(w[2]) for w in said) - sent) * 1000}
    now = tree_cpu(side.proc.pid)
    used = sum(cpu - ours.get(pid, 0.0) for pid, cpu in now.items())
    shared = (tree_cpu(server.proc.pid)[server.proc.pid] - the_server) + (own_cpu() - mine)
    figures[f"burst of {BURST}: CPU of host and jobs (s)"] = used
    floor = (used + shared) / (os.cpu_count() or 1) * 1000
    print(f"burst of {BURST} on {side.name}: {used:.2f} s CPU in its processes, {shared:.2f} s in the server and the "
          f"clients; all of it on {os.cpu_count()} cores takes at least {floor:.0f} ms (it took {took:.0f} ms)")
    if side.name == "agenthost":
        print_breakdown(side.log.read_text(errors="replace"), {c.room_name for c in clients}, sent, took)
    await leave(server, clients)
    figures[f"burst of {BURST}: last job answered (ms)"] = took
    return figures


def print_breakdown(log: str, rooms: set[str], sent: float, took_ms: float) -> None:
    """When each stage of the burst's jobs was reached, in ms after the dispatches were sent: median and last."""
    day = time.strftime("%Y-%m-%d ")
    job_room: dict[str, str] = {}
    reached: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for line in log.splitlines():
        m = re.match(r"(\d\d:\d\d:\d\d)\.(\d{3}) .*? (job offer|job assigned|job running in process|job started)"
                     r".*?job_id=(\S+)", line)
        if not m:
            continue
        at = time.mktime(time.strptime(day + m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
        room = re.search(r"room=(\S+)", line)
        if room:
            job_room.setdefault(m.group(4), room.group(1))
        if job_room.get(m.group(4)) in rooms and at >= sent - 1:
            name = next(n for n, pattern in STAGES if re.fullmatch(pattern + ".*", m.group(3)))
            reached[name].append((at - sent) * 1000)
    print(f"burst of {BURST} on agenthost, ms after the dispatches were sent (median / last):")
    for name, _ in STAGES:
        values = sorted(reached[name])
        if values:
            print(f"  {name:<16} {statistics.median(values):>7.0f} / {values[-1]:>7.0f}  ({len(values)} jobs)")
    print(f"  {'client has text':<16} {'':>7}   {took_ms:>7.0f}")


async def leave(server: LiveKitServer, clients: list[Client]) -> None:
    """The clients leave and their rooms are closed: their jobs end now, not once the server closes the empty
    rooms (which would be during the next burst)."""
    await asyncio.gather(*(c.disconnect() for c in clients))
    async with server_api(server) as lk:
        await asyncio.gather(*(lk.room.delete_room(api.DeleteRoomRequest(room=c.room_name)) for c in clients),
                             return_exceptions=True)  # a room already closed is fine


async def measure(side: Side, server: LiveKitServer, rounds: int, jobs: int) -> None:
    await side.start(server.env())
    assert side.proc is not None
    await asyncio.sleep(SETTLE)
    side.idle_processes = len(tree_cpu(side.proc.pid))
    idle = tree_pss(side.proc.pid)
    side.figures["memory idle, 2 prewarmed (MB)"] = idle / 2**20
    for _ in range(rounds):
        try:
            ms, client = await served(server, side.agent)
        except AssertionError:  # never answered: counted, and the round is not a latency
            side.figures["dispatches never answered"] = side.figures.get("dispatches never answered", 0) + 1
            continue
        side.dispatch_ms.append(ms)
        await client.disconnect()
        await asyncio.sleep(0.5)  # the pool refills
    side.figures.setdefault("dispatches never answered", 0)
    side.figures["dispatch to entrypoint, median (ms)"] = statistics.median(side.dispatch_ms)
    side.figures["dispatch to entrypoint, max (ms)"] = max(side.dispatch_ms)
    await asyncio.sleep(SETTLE)
    idle = tree_pss(side.proc.pid)
    clients = [c for _ms, c in await asyncio.gather(*(served(server, side.agent, "stay") for _ in range(jobs)))]
    await asyncio.sleep(SETTLE)  # jobs running, pool refilled
    loaded = tree_pss(side.proc.pid)
    running_breakdown(side, jobs)
    side.figures[f"memory with {jobs} jobs (MB)"] = loaded / 2**20
    side.figures["memory per running job (MB)"] = (loaded - idle) / jobs / 2**20
    await leave(server, clients)
    await asyncio.sleep(SETTLE)  # last: a burst leaves the machine busy for a while
    runs = []
    for _ in range(BURSTS):
        await quiet(side, server)  # the last phase's jobs have ended and the pool is refilled, on either host
        runs.append(await burst(server, side))
    for key in runs[0]:
        values = [run[key] for run in runs]
        print(f"{side.name}: {key}: {', '.join(f'{v:.1f}' for v in values)}")
        side.figures[key.replace(f"burst of {BURST}:", f"burst of {BURST}, median of {BURSTS}:")] = statistics.median(
            values)
    side.stop()


async def run(rounds: int, jobs: int, peer_python: str) -> int:
    server = private_server("job-bench")
    work = server.workdir
    ours = Side("agenthost", "probe", [sys.executable, "-m", "host", "run", "--http", "127.0.0.1:0",
                                       "--load-threshold", "0", "--log-level", "debug", str(PEER / "probe.yaml")],
                r"registered agent probe", ROOT, work / "agenthost.log")
    peer = Side("livekit-agents", "probe-peer", [peer_python, str(PEER / "peer_worker.py"), "start"],
                r"registered worker", PEER, work / "peer.log")
    try:
        for side in (ours, peer):
            await measure(side, server, rounds, jobs)
    finally:
        ours.stop()
        peer.stop()
        server.stop()
    print_table(ours, peer)
    save("job_bench", {"figures": {key: {"agenthost": value, "livekit-agents": peer.figures[key]}
                                   for key, value in ours.figures.items()}})
    print(f"({rounds} sequential dispatches, {jobs} concurrent jobs; same server, same entrypoint, "
          "two prewarmed processes each)")
    return 0


def peer_python() -> str:
    """A python with livekit-agents: this one when the `agents` extra is installed, else a venv of its own."""
    try:
        import livekit.agents  # noqa: F401
    except ImportError:
        pass
    else:
        return sys.executable
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup-bench-peer.sh")], capture_output=True, text=True,
                         check=False, timeout=1200)
    if out.returncode != 0:
        raise SystemExit(f"cannot set up the peer (livekit-agents):\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    python = peer_python()  # before entering the namespace: it may install from PyPI
    sys.exit(asyncio.run(run(args[0] if args else 10, args[1] if len(args) > 1 else 12, python)))
