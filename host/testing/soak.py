"""A soak run on a multi-node deployment: two hosts (one per node), a steady number of concurrent jobs,
each lasting a random while before its client leaves and a new dispatch replaces it, and a reload (YAML
and code) of each host at a steady interval. It counts what a user would count: dispatches, jobs that ran,
jobs lost (a dispatch whose job never started, or started twice), failures and why, the hosts' resources
at the start and the end, dispatch -> entrypoint per minute, and processes left behind.

Used by bench/soak_bench.py (the 10-minute run) and by tests/e2e/test_e2e_soak.py (a short one in CI).
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from host.testing.harness import Client, HostProcess, LiveKitServer, dispatch, new_room
from host.tree import descendants

SOAK_AGENT = """\
VERSION = "{version}"


async def entrypoint(ctx):
    await ctx.connect()
    await ctx.room.local_participant.send_text(f"started {{ctx.job.id}} {{VERSION}}", topic="status")
"""


@dataclass
class Resources:
    rss_mb: float
    fds: int
    threads: int

    @classmethod
    def of(cls, pid: int) -> Resources:
        p = psutil.Process(pid)
        return cls(p.memory_info().rss / 2**20, p.num_fds(), p.num_threads())


@dataclass
class SoakReport:
    dispatches: int = 0
    ran: int = 0
    lost: list[str] = field(default_factory=list)  # rooms whose job never started (on any host)
    doubled: list[str] = field(default_factory=list)  # rooms whose job started twice
    unanswered: list[str] = field(default_factory=list)  # the client saw no first text in 30 s
    failed: Counter[str] = field(default_factory=Counter)  # reason -> count, from the hosts' logs
    reloads_sent: int = 0
    reloads_applied: int = 0
    latency_by_minute: dict[int, list[float]] = field(default_factory=dict)  # ms, dispatch -> first text
    resources: dict[str, tuple[Resources, Resources]] = field(default_factory=dict)
    leftovers: list[int] = field(default_factory=list)
    jobs_per_host: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"dispatches created      {self.dispatches}", f"jobs that ran           {self.ran}",
               f"jobs lost               {len(self.lost)} never started, {len(self.doubled)} started twice",
               f"first text missed       {len(self.unanswered)} (the job started, its client saw no text in 30 s)",
               f"jobs failed             {sum(self.failed.values())} {dict(self.failed) or ''}",
               f"reloads                 {self.reloads_applied} applied of {self.reloads_sent} sent",
               f"jobs per host           {self.jobs_per_host}"]
        for name, (start, end) in self.resources.items():
            out.append(f"{name}: RSS {start.rss_mb:.0f} -> {end.rss_mb:.0f} MB, fds {start.fds} -> {end.fds}, "
                       f"threads {start.threads} -> {end.threads}")
        out.append("dispatch -> entrypoint by minute (ms):  minute  jobs  p50  p95")
        for minute, values in sorted(self.latency_by_minute.items()):
            values = sorted(values)
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            out.append(f"    {minute:>5}  {len(values):>4}  {statistics.median(values):>5.0f}  {p95:>5.0f}")
        out.append(f"processes left behind   {len(self.leftovers)} {self.leftovers or ''}")
        return out


def write_agent(folder: Path, version: int) -> None:
    """The soak agent at `version`. Its hosts run with `--load-threshold 0` (one machine runs everything, so its
    CPU is no measure of a host's room), and `max_jobs` makes the load each reports its running jobs: the
    server then offers a job to the host with fewer, instead of to whichever answers first."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "soak.py").write_text(SOAK_AGENT.format(version=f"v{version}"))
    (folder / "soak.yaml").write_text(f"name: soak\nentrypoint: soak.py:entrypoint\nprocesses: {{idle: 2}}\n"
                                      f"limits: {{max_jobs: 100}}\nshutdown: {{timeout: 5s}}\n"
                                      f"log_fields: {{rev: {version}}}\n")


async def soak(nodes: list[LiveKitServer], hosts: list[HostProcess], folders: list[Path], *, seconds: float,
               concurrent: int, hold: tuple[float, float], reload_every: float) -> SoakReport:
    """Run the soak against hosts already started (one per node, each serving its folder)."""
    report = SoakReport()
    started_at = time.monotonic()
    deadline = started_at + seconds
    seen: set[int] = set()
    rooms: list[str] = []
    for h in hosts:
        assert h.proc is not None
        report.resources[h.log_path.stem] = (Resources.of(h.proc.pid), Resources.of(h.proc.pid))

    async def one_job(i: int) -> None:
        node, via = nodes[i % 2], random.choice(nodes)
        client = Client(node, new_room())
        client.listen("status")
        await client.connect()
        sent = time.monotonic()
        await dispatch(via, "soak", client.room_name)
        report.dispatches += 1
        rooms.append(client.room_name)
        try:
            await client.wait_text("status", 1, timeout=30)
        except AssertionError:
            report.unanswered.append(client.room_name)  # whether its job ran is read from the hosts' logs
        else:
            minute = int((sent - started_at) // 60)
            report.latency_by_minute.setdefault(minute, []).append((time.monotonic() - sent) * 1000)
            await asyncio.sleep(random.uniform(*hold))
        await client.disconnect()

    async def worker(i: int) -> None:
        while time.monotonic() < deadline:
            await one_job(i)

    async def reloader() -> None:
        version = 0
        while time.monotonic() + reload_every < deadline:
            await asyncio.sleep(reload_every)
            version += 1
            for folder, h in zip(folders, hosts, strict=True):
                write_agent(folder, version)
                h.signal(signal.SIGHUP)
            report.reloads_sent += len(hosts)

    async def watch() -> None:
        while time.monotonic() < deadline:
            for h in hosts:
                if h.proc is not None:
                    seen.update(descendants(h.proc.pid))
            await asyncio.sleep(1.0)

    await asyncio.gather(*(worker(i) for i in range(concurrent)), reloader(), watch())
    await asyncio.sleep(8)  # the last jobs end (participants left), the hosts settle
    for h in hosts:
        assert h.proc is not None
        report.resources[h.log_path.stem] = (report.resources[h.log_path.stem][0], Resources.of(h.proc.pid))
    starts = Counter(m.group(1) for h in hosts for m in re.finditer(r"job started .*?room=(\S+)", h.log()))
    report.ran = sum(1 for r in rooms if starts[r])
    report.lost = [r for r in rooms if not starts[r]]
    report.doubled = [r for r in rooms if starts[r] > 1]
    report.unanswered = [r for r in report.unanswered if starts[r]]
    for h in hosts:
        log = h.log()
        report.jobs_per_host[h.log_path.stem] = log.count("job running")
        for reason in re.findall(r"job failed: ([^;\n]+?) agent=", log):
            report.failed[reason[:60]] += 1
        report.reloads_applied += len(re.findall(r"reload \(SIGHUP\): changed soak", log))
        h.stop()
    deadline = time.monotonic() + 10  # every host has exited; its processes follow within moments
    while (left := [p for p in seen if _alive(p)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    report.leftovers = sorted(left)
    return report


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
