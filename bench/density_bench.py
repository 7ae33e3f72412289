"""Density: one host ramped to STEPS concurrent connected jobs (each an idle participant in a room of its
own, the probe entrypoint holding the job), agenthost and livekit-agents' agent server in the same run
against the same livekit-server. Root needed (a private network namespace).

At each step: the PSS of the host's whole process tree, its CPU use while every job idles (over 5 s), and
dispatch -> first text for one more job, NEXT_JOBS times in turn (each one's room closed before the next; the
median, so that one dispatch the server held up does not make the figure). Usage: python
bench/density_bench.py [STEP,STEP,...]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import psutil
from job_bench import PEER, ROOT, SETTLE, Side, leave, peer_python, served, tree_pss
from record import save  # bench/record.py, beside this script

from host.testing.harness import Client, LiveKitServer, private_server

NEXT_JOBS = 5


def tree_cpu(pid: int, seconds: float) -> float:
    """CPU seconds per second used by the process tree over `seconds`."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]

    def used() -> float:
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total

    before = used()
    time.sleep(seconds)
    return (used() - before) / seconds


async def ramp(side: Side, server: LiveKitServer, steps: list[int]) -> dict[int, tuple[float, float, float]]:
    await side.start(server.env())
    assert side.proc is not None
    await asyncio.sleep(SETTLE)
    clients: list[Client] = []
    figures = {}
    for step in steps:
        while len(clients) < step:
            batch = min(10, step - len(clients))
            done = await asyncio.gather(*(served(server, side.agent, "stay") for _ in range(batch)))
            clients += [c for _ms, c in done]
        await asyncio.sleep(SETTLE)
        pss = tree_pss(side.proc.pid) / 2**20
        cpu = await asyncio.to_thread(tree_cpu, side.proc.pid, 5.0)
        next_jobs = []
        for _ in range(NEXT_JOBS):
            ms, extra = await served(server, side.agent, "stay")
            next_jobs.append(ms)
            await leave(server, [extra])  # its job ends: the step's count stays
            await asyncio.sleep(1.0)
        ms = statistics.median(next_jobs)
        figures[step] = (pss, cpu, ms)
        print(f"{side.name}: {step} jobs: {pss:.0f} MB, idle CPU {cpu:.2f} cores, next job {ms:.0f} ms (median of "
              f"{', '.join(f'{v:.0f}' for v in next_jobs)})", flush=True)
    for c in clients:
        await c.disconnect()
    side.stop()
    return figures


async def run(steps: list[int], peer: str) -> int:
    server = private_server("density-bench")
    work = server.workdir
    ours = Side("agenthost", "probe", [sys.executable, "-m", "host", "run", "--http", "127.0.0.1:0",
                                       "--load-threshold", "0", str(PEER / "probe.yaml")],
                r"registered agent probe", ROOT, work / "agenthost.log")
    theirs = Side("livekit-agents", "probe-peer", [peer, str(PEER / "peer_worker.py"), "start"],
                  r"registered worker", PEER, work / "peer.log")
    try:
        results = {side.name: await ramp(side, server, steps) for side in (ours, theirs)}
    finally:
        ours.stop()
        theirs.stop()
        server.stop()
    print(f"{'jobs':>5} | {'PSS MB':>17} | {'idle CPU (cores)':>17} | {'next job (ms), median':>17}")
    print(f"{'':>5} | {'ours':>8} {'peer':>8} | {'ours':>8} {'peer':>8} | {'ours':>8} {'peer':>8}")
    for step in steps:
        a, b = results["agenthost"][step], results["livekit-agents"][step]
        print(f"{step:>5} | {a[0]:>8.0f} {b[0]:>8.0f} | {a[1]:>8.2f} {b[1]:>8.2f} | {a[2]:>8.0f} {b[2]:>8.0f}")
    save("density_bench", {"steps": {name: [{"jobs": step, "pss_mb": r[step][0], "idle_cpu_cores": r[step][1],
                                              "next_job_ms": r[step][2]} for step in steps]
                                     for name, r in results.items()}})
    return 0


if __name__ == "__main__":
    chosen = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [10, 50, 100]
    python = peer_python()
    sys.exit(asyncio.run(run(chosen, python)))
