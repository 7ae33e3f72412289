"""How fast job processes get ready: forked from the agent's template, or started by the fork server.

For the probe agent (bench/peer/probe.yaml) and for the AgentSession example when livekit-agents is
installed (agents.d/voice-function.yaml, whose prewarm loads the VAD), N processes asked for at once,
after one warm-up process each way: the wall time until all are ready, and the CPU they used to get
ready (their own report, which a forked process counts from zero); and what each fork cost the template
itself: its CPU, and the page faults it took (mostly pages it wrote to after the fork, which the kernel
copies, as they are shared with the new process). This is agenthost against itself,
the template against the fork server it replaces; job_bench.py compares whole jobs with livekit-agents.
Usage: python bench/start_bench.py [N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from host.config.definitions import AgentDefinition
from host.config.loader import load
from host.process.handle import JobProcess
from host.process.mp import preload
from host.process.template import AgentTemplate

ROOT = Path(__file__).resolve().parent.parent


async def ready_all(definition: AgentDefinition, template: AgentTemplate | None, n: int) -> tuple[float, float]:
    """(ms until all n are ready, median CPU ms each used to get ready)."""
    procs = [JobProcess(definition, "text", 30, template) for _ in range(n)]
    start = time.perf_counter()

    async def one(proc: JobProcess) -> None:
        await proc.start()
        await proc.wait_ready(60)

    await asyncio.gather(*(one(p) for p in procs))
    took = (time.perf_counter() - start) * 1000
    cpu = statistics.median(p.reports.prewarm_cpu for p in procs) * 1000
    for p in procs:
        p.kill()
    await asyncio.gather(*(p.wait_exit(5) for p in procs))
    return took, cpu


def own_cost(pid: int) -> tuple[float, int]:
    """(CPU ms, minor page faults) of the process so far."""
    with open(f"/proc/{pid}/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    with open(f"/proc/{pid}/stat") as f:
        faults = int(f.read().rsplit(")", 1)[1].split()[7])
    return cpu_ns / 1e6, faults


async def measure(file: Path, n: int) -> None:
    definition = load([str(file)], check_imports=False).require_ok().agents[0]
    template = AgentTemplate(definition, "text", 30)
    await template.start(60)
    try:
        figures = {}
        for name, source in (("template", template), ("fork server", None)):
            await ready_all(definition, source, 1)  # warm-up: the fork server's own start is not measured
            assert template.pid is not None
            before = own_cost(template.pid)
            figures[name] = await ready_all(definition, source, n)
            if source is template:
                after = own_cost(template.pid)
                per_fork = ((after[0] - before[0]) / n, (after[1] - before[1]) / n)
                with open(f"/proc/{template.pid}/statm") as f:
                    resident_mb = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    finally:
        template.retire()
        await template.wait_exit(10)
    (t_ms, t_cpu), (f_ms, f_cpu) = figures["template"], figures["fork server"]
    print(f"{definition.name}: {n} processes at once, all ready in {t_ms:.0f} ms from the template, {f_ms:.0f} ms "
          f"from the fork server ({f_ms / t_ms:.1f}x); CPU to get ready, median {t_cpu:.1f} / {f_cpu:.1f} ms; "
          f"each process cost the template ({resident_mb:.0f} MB resident) {per_fork[0]:.2f} ms of CPU and "
          f"{per_fork[1]:.0f} page faults (its fork and its reaping)")


async def run(n: int) -> None:
    await measure(ROOT / "bench" / "peer" / "probe.yaml", n)
    try:
        import livekit.agents  # noqa: F401
    except ImportError:
        print("livekit-agents is not installed: the AgentSession example is skipped")
        return
    await measure(ROOT / "agents.d" / "voice-function.yaml", n)


if __name__ == "__main__":
    preload(livekit_agents=True)  # as the host does when an agent has api: livekit-agents
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
