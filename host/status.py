"""`agenthost status`: a running host's /status document as tables for a person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def render_status(doc: dict[str, Any]) -> str:
    h = doc.get("host", {})
    lines = [f"agenthost {h.get('version')} pid {h.get('pid')} since {h.get('started_at')} on {h.get('url')}"
             f"  cpu {float(h.get('cpu_load') or 0) * 100:.0f}%" + ("  DRAINING" if h.get("draining") else ""), ""]
    agents = doc.get("agents", [])
    lines += table(
        ["agent", "registered", "worker", "jobs", "idle", "max_jobs", "memory limit", "last error"],
        [[a["name"], "yes" if a.get("registered") else "no", a.get("worker_id"), a.get("running_jobs"),
          a.get("idle_processes"), a["limits"]["max_jobs"] or "-",
          f"{a['limits']['memory_limit_mb']} MB" if a["limits"]["memory_limit_mb"] else "-",
          a.get("last_error") or a.get("process_error")]
         for a in agents])
    jobs = doc.get("jobs", [])
    lines.append("")
    if jobs:
        lines += table(["job", "agent", "room", "state", "pid", "started", "memory"],
                       [[j["id"], j["agent"], j["room"], j["state"], j.get("pid"), j.get("started_at"),
                         f"{j['memory_mb']} MB" if j.get("memory_mb") is not None else None] for j in jobs])
    else:
        lines.append("no running jobs")
    return "\n".join(lines) + "\n"
