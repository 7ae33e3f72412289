"""The /status document, typed once for the host that produces it and the command that renders it;
`agenthost status` shows it as tables for a person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict


class HostInfo(TypedDict):
    version: str
    pid: int
    started_at: str | None
    draining: bool
    cpu_load: float  # the host's own process tree, as a share of its CPUs
    machine_cpu_load: float
    url: str


class LimitsInfo(TypedDict):
    max_jobs: int
    memory_warn_mb: int
    memory_limit_mb: int


class AgentInfo(TypedDict):
    name: str
    file: str
    dispatch: str
    worker_id: str | None
    registered: bool
    last_error: str | None
    full: bool
    load: float
    idle_processes: int
    template_pid: int | None  # the process its job processes are forked from; None: from the fork server
    process_error: str | None
    running_jobs: int
    limits: LimitsInfo


class JobInfo(TypedDict):
    id: str
    agent: str
    room: str
    state: str
    pid: int | None
    started_at: str | None
    memory_mb: float | None


class StatusDocument(TypedDict):
    host: HostInfo
    agents: list[AgentInfo]
    jobs: list[JobInfo]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def _machine(h: HostInfo) -> str:
    machine = h.get("machine_cpu_load")  # an older host does not send it
    return f" (machine {float(machine) * 100:.0f}%)" if machine is not None else ""


def render_status(doc: StatusDocument) -> str:
    h = doc["host"]
    lines = [f"agenthost {h['version']} pid {h['pid']} since {h['started_at']} on {h['url']}"
             f"  cpu {float(h['cpu_load'] or 0) * 100:.0f}%" + _machine(h) + ("  DRAINING" if h["draining"] else ""),
             ""]
    agents = doc["agents"]
    lines += table(
        ["agent", "registered", "worker", "jobs", "idle", "max_jobs", "memory limit", "last error"],
        [[a["name"], "yes" if a["registered"] else "no", a["worker_id"], a["running_jobs"],
          a["idle_processes"], a["limits"]["max_jobs"] or "-",
          f"{a['limits']['memory_limit_mb']} MB" if a["limits"]["memory_limit_mb"] else "-",
          a["last_error"] or a["process_error"]]
         for a in agents])
    jobs = doc["jobs"]
    lines.append("")
    if jobs:
        lines += table(["job", "agent", "room", "state", "pid", "started", "memory"],
                       [[j["id"], j["agent"], j["room"], j["state"], j["pid"], j["started_at"],
                         f"{j['memory_mb']} MB" if j["memory_mb"] is not None else None] for j in jobs])
    else:
        lines.append("no running jobs")
    return "\n".join(lines) + "\n"
