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
    job_limits: str  # how job limits are enforced: 'cgroup v2', 'cgroup v1' or 'rlimit'


class LimitsInfo(TypedDict):
    max_jobs: int
    memory_warn_mb: int
    memory_limit_mb: int
    pids_limit: int
    cpu_limit: float


class VersionInfo(TypedDict):
    version: str
    weight: int  # as its file says
    taken_out: bool  # failed too often (no new job until the next reload), or its processes cannot start
    process_error: str | None  # why its processes cannot start now (its setup failing, say), or None
    running_jobs: int
    failures: int  # among its last take_out.of_last jobs
    idle_processes: int
    file: str


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
    versions: list[VersionInfo]  # empty unless its files give it versions


SLOW_LAG_MS = 100.0  # a job whose event loop is this late (worst of a second) is shown slow: a voice call hears it


class JobInfo(TypedDict):
    id: str
    agent: str
    room: str
    state: str
    pid: int | None
    started_at: str | None
    memory_mb: float | None
    cpu: float | None  # CPUs its processes used over the last few seconds (0.5: half of one)
    cpu_seconds: float | None  # CPU time its processes used since its process was ready (its prewarm not counted)
    version: str | None  # the version of its agent it runs (None: the agent has no versions)
    loop_lag_ms: float | None  # its event loop's worst lag over the last second, as the job measured it
    slow: bool  # that lag is above SLOW_LAG_MS: the job cannot keep up (its answers and audio come late)
    participants: int | None  # the others in its room


class StatusDocument(TypedDict):
    host: HostInfo
    agents: list[AgentInfo]
    jobs: list[JobInfo]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[("-" if v is None else printable(str(v))) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def _machine(h: HostInfo) -> str:
    machine = h.get("machine_cpu_load")  # an older host does not send it
    return f" (machine {float(machine) * 100:.0f}%)" if machine is not None else ""


MAX_CELL = 120


def printable(text: str) -> str:
    """`text` safe for a terminal: what is not printable (escape sequences, newlines) shown escaped, and cut
    at MAX_CELL characters. What a host reports (room names, errors) was chosen by others."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:MAX_CELL])
    return shown + ("..." if len(text) > MAX_CELL else "")


def render_status(doc: StatusDocument) -> str:
    """`doc` as tables; KeyError, TypeError or ValueError for a document of another shape."""
    h = doc["host"]
    mode = h.get("job_limits")  # a host of an earlier version does not say
    head = printable(f"agenthost {h['version']} pid {h['pid']} since {h['started_at']} on {h['url']}"
                     + (f"  job limits: {mode}" if mode else ""))
    lines = [head + f"  cpu {float(h['cpu_load'] or 0) * 100:.0f}%" + _machine(h)
             + ("  DRAINING" if h["draining"] else ""), ""]
    agents = doc["agents"]
    lines += table(
        ["agent", "registered", "worker", "jobs", "idle", "max_jobs", "memory limit", "last error"],
        [[a["name"], "yes" if a["registered"] else "no", a["worker_id"], a["running_jobs"],
          a["idle_processes"], a["limits"]["max_jobs"] or "-",
          f"{a['limits']['memory_limit_mb']} MB" if a["limits"]["memory_limit_mb"] else "-",
          a["last_error"] or a["process_error"]]
         for a in agents])
    versions = [[a["name"], v["version"], v["weight"], "yes" if v["taken_out"] else "no", v["running_jobs"],
                 v["failures"], v["idle_processes"]] for a in agents for v in a.get("versions", [])]
    if versions:
        lines.append("")
        lines += table(["agent", "version", "weight", "taken out", "jobs", "failures", "idle"], versions)
    jobs = doc["jobs"]
    lines.append("")
    if jobs:
        lines += table(["job", "agent", "room", "state", "pid", "started", "memory", "cpu", "cpu time", "loop lag",
                        "people"],
                       [[j["id"], j["agent"] + (f"@{j['version']}" if j.get("version") else ""), j["room"],
                         j["state"], j["pid"], j["started_at"],
                         f"{j['memory_mb']} MB" if j["memory_mb"] is not None else None,
                         _percent(j.get("cpu")), cpu_time(j.get("cpu_seconds")), lag_text(j),
                         j.get("participants")] for j in jobs])
    else:
        lines.append("no running jobs")
    return "\n".join(lines) + "\n"


def cpu_time(seconds: float | None) -> str | None:
    """CPU time as top's TIME+ shows it (minutes:seconds.hundredths); None (shown '-') when not measured yet."""
    if not isinstance(seconds, int | float):
        return None
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:05.2f}"


def _percent(cpus: float | None) -> str | None:
    """CPUs used as a percentage of one CPU, as top shows it; None (shown '-') when not measured yet."""
    return f"{float(cpus) * 100:.0f}%" if cpus is not None else None


def lag_text(job: JobInfo) -> str | None:
    """A job's loop lag as shown: `12 ms`, and `SLOW` beside it above SLOW_LAG_MS."""
    lag = job.get("loop_lag_ms")
    if lag is None:
        return None
    return f"{float(lag):.0f} ms" + (" SLOW" if job.get("slow") else "")
