"""The performance page's charts, from the benchmarks' results (bench/results/*.json, see bench/record.py).

Each chart says the command that produced its figures and the machine they came from. Results that are
not there yet are skipped. Usage: python scripts/charts.py  (writes docs/images/*.png)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
IMAGES = ROOT / "docs" / "images"
SIDES = ("agenthost", "livekit-agents")


def _caption(fig: Any, data: dict[str, Any]) -> None:
    fig.text(0.01, 0.01, f"{data.get('command', '')}  |  {data.get('machine', '')}  |  {data.get('date', '')}",
             fontsize=7, color="#555")


def voice(data: dict[str, Any]) -> Any:
    fig, (latency, cores) = plt.subplots(1, 2, figsize=(10, 4))
    # agenthost, livekit-agents, and OpenRTC where it was installed: one colour per side in both panels; each
    # point the median of the ramps that ran that step, as the docs quote them
    ramps = data["steps"]
    for i, side in enumerate(ramps[0]):
        reached = sorted({s["calls"] for ramp in ramps for s in ramp[side]})
        steps = [{key: statistics.median(s[key] for ramp in ramps for s in ramp[side] if s["calls"] == n)
                  for key in ("p50_ms", "p95_ms", "cores")} | {"calls": n} for n in reached]
        calls, colour = [s["calls"] for s in steps], f"C{i}"
        latency.plot(calls, [s["p95_ms"] for s in steps], marker="o", color=colour, label=f"{side} p95")
        latency.plot(calls, [s["p50_ms"] for s in steps], marker=".", linestyle="--", color=colour,
                     label=f"{side} p50")
        cores.plot(calls, [s["cores"] for s in steps], marker="o", color=colour, label=side)
    latency.axhline(1500, color="red", linewidth=0.8, label="1.5 s bound")
    latency.set(title=f"end of speech to first agent audio (medians of {data['ramps']} ramps)",
                xlabel="concurrent calls", ylabel="ms")
    cores.set(title="CPU of the serving tree", xlabel="concurrent calls", ylabel="cores")
    latency.legend(fontsize=7)
    cores.legend(fontsize=7)
    return fig


def density(data: dict[str, Any]) -> Any:
    fig, (pss, nxt) = plt.subplots(1, 2, figsize=(10, 4))
    for side in SIDES:
        steps = data["steps"].get(side, [])
        jobs = [s["jobs"] for s in steps]
        pss.plot(jobs, [s["pss_mb"] for s in steps], marker="o", label=side)
        nxt.plot(jobs, [s["next_job_ms"] for s in steps], marker="o", label=side)
    pss.set(title="memory (PSS) of the serving tree", xlabel="running jobs", ylabel="MB")
    nxt.set(title="dispatch to the next job's first text", xlabel="running jobs", ylabel="ms (median)")
    pss.legend(fontsize=7)
    nxt.legend(fontsize=7)
    return fig


def bars(data: dict[str, Any]) -> Any:
    figures = data["figures"]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(figures) + 1.5))
    names = list(figures)
    ratios = [figures[n]["livekit-agents"] / figures[n]["agenthost"] if figures[n]["agenthost"] else 0
              for n in names]
    ax.barh(names, ratios, color=["#2a7" if r >= 1 else "#c44" for r in ratios])
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set(title="livekit-agents / agenthost (above 1: agenthost is ahead)", xlabel="ratio")
    ax.tick_params(axis="y", labelsize=7)
    return fig


def tracing(data: dict[str, Any]) -> Any:
    job = data.get("job_setup_ms")
    fig, axes = plt.subplots(1, 2 if job else 1, figsize=(10 if job else 6, 3.4), squeeze=False)
    per_job = data["per_job_us"]
    host = axes[0][0]
    host.bar(list(per_job), list(per_job.values()), color=["#47a", "#aaa"])
    host.set(title=f"host work per job for tracing: +{data['added_ms']:.3f} ms", ylabel="µs per job (median)")
    if job:  # the job process's part, from its job's arrival to its entrypoint
        side = axes[0][1]
        side.barh(list(job), list(job.values()), color=["#47a", "#aaa", "#ccc"][:len(job)])
        side.set_xscale("log")
        side.set(title="a job's tracing before its entrypoint", xlabel="ms (median, log scale)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


CHARTS = {"voice_bench": voice, "density_bench": density, "job_bench": bars, "tracing_bench": tracing}


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, draw in CHARTS.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            print(f"skipped {name}: no {path.relative_to(ROOT)} (run the bench first)")
            continue
        data = json.loads(path.read_text())
        fig = draw(data)
        _caption(fig, data)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        out = IMAGES / f"{name}.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
