"""`agenthost top`: a running host's jobs and agents, live, as htop shows processes.

It reads the host's /status every `interval` seconds (host.ops.status.fetch_status: bounded in time and size)
and draws it with rich: a header (host, server, CPU, jobs, job limits), one row per job (agent, room, state,
age, CPU, memory, pid) and one per agent (registration, jobs against max_jobs, idle processes, last error).
Keys: c, m, a sort jobs by CPU, memory or age; f shows one agent's jobs at a time, in turn, then all again;
q (or Ctrl-C) quits. `TopState.key` and `render` are pure: the tests drive them without a terminal, and a real
terminal (tmux) drives the whole.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from host.ops.status import JobInfo, StatusDocument, cpu_time, lag_text, printable
from host.ops.status_fetch import StatusError

SORTS = {"c": "cpu", "m": "memory", "a": "age"}


@dataclass(frozen=True)
class TopState:
    sort: str = "cpu"  # cpu, memory or age: the jobs' order, largest first
    agent: str | None = None  # only this agent's jobs; None: all
    quit: bool = False

    def key(self, key: str, agents: list[str]) -> TopState:
        """The state after `key` is pressed, with `agents` the names the host serves now."""
        if key in ("q", "Q", "\x03"):
            return replace(self, quit=True)
        if key in SORTS:
            return replace(self, sort=SORTS[key])
        if key == "f":
            names = sorted(agents)
            if self.agent not in names:
                return replace(self, agent=names[0] if names else None)
            following = names.index(self.agent) + 1
            return replace(self, agent=names[following] if following < len(names) else None)
        return self


def _age(started_at: str | None, now: float) -> float:
    if not started_at:
        return 0.0
    with contextlib.suppress(ValueError):
        return max(0.0, now - datetime.datetime.fromisoformat(started_at).timestamp())
    return 0.0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def sorted_jobs(jobs: list[JobInfo], state: TopState, now: float) -> list[JobInfo]:
    shown = [j for j in jobs if state.agent is None or j["agent"] == state.agent]
    if state.sort == "memory":
        return sorted(shown, key=lambda j: j.get("memory_mb") or 0.0, reverse=True)
    if state.sort == "age":
        return sorted(shown, key=lambda j: _age(j.get("started_at"), now), reverse=True)
    return sorted(shown, key=lambda j: j.get("cpu") or 0.0, reverse=True)


COLUMNS = ("JOB", "AGENT", "ROOM", "STATE", "AGE", "CPU", "TIME+", "MEMORY", "LAG", "PEOPLE", "PID")
WIDE = 100  # columns of a terminal with room for every column
DROPPED_FIRST = ("TIME+", "PID", "PEOPLE", "AGE", "LAG", "ROOM")  # what a narrower terminal leaves out, in turn
SHARED = ("JOB", "ROOM", "AGENT")  # columns cut with an ellipsis where the rest leave them too little room ...
SHARED_MIN = {"JOB": 8, "ROOM": 8, "AGENT": 12}  # ... down to this
AGENT_MAX = 32


def fit_columns(cells: dict[str, list[str]], width: int) -> dict[str, int]:
    """The columns a terminal `width` wide shows, and the width of each: every figure whole (its header's and
    its longest cell's width); job ids, rooms and agents at least SHARED_MIN, then as wide as what is left lets
    them be (agents up to AGENT_MAX), cut with an ellipsis beyond; the least needed columns left out until the
    rest fit (one space between columns)."""
    want = {c: max([len(c), *(len(v) for v in cells.get(c, []))]) for c in COLUMNS}
    want["AGENT"] = min(want["AGENT"], AGENT_MAX)
    least = {c: min(want[c], max(len(c), SHARED_MIN[c])) if c in SHARED else want[c] for c in COLUMNS}
    shown = list(COLUMNS)
    for column in DROPPED_FIRST:
        if sum(least[c] for c in shown) + len(shown) - 1 <= width:
            break
        shown.remove(column)
    widths = {c: least[c] for c in shown}
    spare = width - (sum(widths.values()) + len(shown) - 1)
    growing = [c for c in SHARED if c in widths]
    while spare > 0 and any(widths[c] < want[c] for c in growing):  # shared out a character at a time
        for column in growing:
            if spare > 0 and widths[column] < want[column]:
                widths[column] += 1
                spare -= 1
    return widths


def render(doc: StatusDocument | None, state: TopState, address: str, error: str | None = None,
           now: float | None = None, width: int = WIDE, height: int | None = None) -> RenderableType:
    """What the screen shows for `doc` (the last /status read; None before the first) and `state`, on a terminal
    `width` columns wide and `height` rows high (None: every job shown)."""
    now = time.time() if now is None else now
    if doc is None:
        return Text(f"agenthost top: {address}: {error or 'reading /status...'}")
    h = doc["host"]
    jobs = doc["jobs"]
    head = Text.assemble(
        ("agenthost ", "bold"), printable(f"{h['version']} pid {h['pid']} on {h['url']}  "),
        f"cpu {float(h['cpu_load'] or 0) * 100:.0f}%  machine {float(h.get('machine_cpu_load') or 0) * 100:.0f}%  ",
        f"jobs {len(jobs)}  ", printable(f"limits: {h.get('job_limits', '-')}"),
        ("  DRAINING" if h["draining"] else "", "bold red"))
    keys = Text(f"sort: {state.sort} (c cpu, m memory, a age)  agent: {state.agent or 'all'} (f)  q quit"
                + (f"  ! {error}" if error else ""), style="dim" if not error else "red")
    listed = sorted_jobs(jobs, state, now)
    # the rows left for jobs with the header, the agents' table and a line saying how many more there are
    room = len(listed) if height is None else max(1, height - 8 - len(doc["agents"]))
    shown = listed if len(listed) <= room + 1 else listed[:room]
    hidden = len(listed) - len(shown)
    rows = [_cells(j, now) for j in shown]
    widths = fit_columns({c: [str(row[c]) for row in rows] for c in COLUMNS}, width)
    table = Table(box=None, header_style="bold reverse", padding=(0, 1), pad_edge=False, collapse_padding=True)
    for column, chars in widths.items():
        table.add_column(column, justify="left" if column in ("JOB", "AGENT", "ROOM", "STATE") else "right",
                         no_wrap=True, overflow="ellipsis", width=chars)
    for row in rows:
        table.add_row(*(Text(row[c], style="bold red") if c == "LAG" and row[c].endswith("SLOW") else row[c]
                        for c in widths))
    more = Text(f"... {hidden} more job{'s' if hidden > 1 else ''} below (c/m/a sort, f shows one agent's)",
                style="dim") if hidden else Text("")
    agents = Table(box=None, header_style="bold reverse", expand=True)
    for column in ("AGENT", "REGISTERED", "JOBS", "IDLE", "LOAD", "LAST ERROR"):
        agents.add_column(column, no_wrap=True, overflow="ellipsis")
    for a in doc["agents"]:
        limit = a["limits"]["max_jobs"]
        agents.add_row(printable(a["name"]), "yes" if a["registered"] else "no",
                       f"{a['running_jobs']}/{limit}" if limit else str(a["running_jobs"]), str(a["idle_processes"]),
                       f"{float(a['load']):.2f}" + (" full" if a["full"] else ""),
                       printable(a["last_error"] or a["process_error"] or "-"))
    return Group(head, keys, Text(""), table, more, agents)


def _cells(j: JobInfo, now: float) -> dict[str, str]:
    """One job's row, as shown."""
    cpu, memory, people = j.get("cpu"), j.get("memory_mb"), j.get("participants")
    agent = j["agent"] + (f"@{j['version']}" if j.get("version") else "")
    return {"JOB": printable(j["id"]), "AGENT": printable(agent),
            "ROOM": printable(j["room"]), "STATE": printable(j["state"]),
            "AGE": _duration(_age(j.get("started_at"), now)) if j.get("started_at") else "-",
            "CPU": f"{float(cpu) * 100:.0f}%" if cpu is not None else "-",
            "TIME+": cpu_time(j.get("cpu_seconds")) or "-",
            "MEMORY": f"{float(memory):.1f} MB" if memory is not None else "-",
            "LAG": lag_text(j) or "-",
            "PEOPLE": str(people) if isinstance(people, int) else "-",
            "PID": str(j["pid"]) if j["pid"] is not None else "-"}


@contextlib.contextmanager
def keys_as_pressed() -> Iterator[Callable[[float], str | None]]:
    """The terminal in cbreak mode (each key as it is pressed, no echo); yields a reader of one key, waiting
    up to a number of seconds. Without a terminal, the reader only waits."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None

    def read(timeout: float) -> str | None:
        if fd is None:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode("utf-8", "replace") if ready else None

    try:
        if fd is not None:
            tty.setcbreak(fd)
        yield read
    finally:
        if fd is not None and saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_top(address: str, fetch: Callable[[], StatusDocument], interval: float = 1.0,
            console: Console | None = None) -> None:
    """Show the host at `address` until q; StatusError when its first /status cannot be read."""
    doc = fetch()  # a host that does not answer, or refuses the token, is said at once, not drawn
    state, error = TopState(), None
    console = console or Console()
    with keys_as_pressed() as read_key, Live(render(doc, state, address, width=console.width, height=console.height),
                                             console=console,
                                             screen=True, auto_refresh=False, transient=True) as live:
        next_fetch = time.monotonic() + interval
        while not state.quit:
            key = read_key(max(0.0, next_fetch - time.monotonic()))
            if key is not None:
                state = state.key(key, [a["name"] for a in doc["agents"]])
            if time.monotonic() >= next_fetch:
                next_fetch = time.monotonic() + interval
                try:
                    doc, error = fetch(), None
                except StatusError as exc:  # shown; the last figures stay on screen until it answers again
                    error = str(exc)
            live.update(render(doc, state, address, error, width=live.console.width, height=live.console.height),
                        refresh=True)
