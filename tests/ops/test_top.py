from rich.console import Console

from host.ops.status import StatusDocument
from host.ops.top import TopState, render

NOW = 1_764_900_000.0  # 2025-12-05T02:00:00Z


def doc() -> StatusDocument:
    def job(jid: str, agent: str, cpu: float | None, memory: float, started: str) -> dict:
        return {"id": jid, "agent": agent, "room": f"room-{jid}", "state": "running", "pid": 100,
                "started_at": started, "memory_mb": memory, "cpu": cpu, "cpu_seconds": 75.25 if cpu else None}

    return {
        "host": {"version": "0.1.0", "pid": 42, "started_at": None, "draining": False, "cpu_load": 0.5,
                 "machine_cpu_load": 0.6, "url": "ws://127.0.0.1:7880", "job_limits": "cgroup v1"},
        "agents": [{"name": n, "file": f"{n}.yaml", "dispatch": "explicit", "registered": True, "worker_id": "AW",
                    "full": n == "hog", "load": 1.0 if n == "hog" else 0.2, "running_jobs": 1, "idle_processes": 1,
                    "template_pid": 7, "process_error": None, "last_error": None,
                    "limits": {"max_jobs": 4, "memory_warn_mb": 1000, "memory_limit_mb": 0, "pids_limit": 1024,
                               "cpu_limit": 0.0}} for n in ("calm", "hog")],
        "jobs": [job("AJ_calm", "calm", 0.02, 80.0, "2025-12-05T01:00:00+00:00"),
                 job("AJ_hog", "hog", 0.97, 20.0, "2025-12-05T01:59:00+00:00"),
                 job("AJ_new", "calm", None, 5.0, "2025-12-05T01:59:59+00:00")],
    }  # type: ignore[return-value]


def shown(state: TopState, error: str | None = None, width: int = 120) -> list[str]:
    console = Console(record=True, width=width, color_system=None)
    console.print(render(doc(), state, "http://h/status", error, now=NOW, width=width))
    return [line.strip() for line in console.export_text().splitlines()]


def rows(lines: list[str]) -> list[str]:
    return [line.split()[0] for line in lines if line.startswith("AJ_")]


def test_jobs_sorted_by_cpu_memory_or_age_and_filtered_by_agent():
    lines = shown(TopState())
    assert lines[0].startswith("agenthost 0.1.0 pid 42 on ws://127.0.0.1:7880  cpu 50%  machine 60%  jobs 3")
    assert "limits: cgroup v1" in lines[0]
    assert rows(lines) == ["AJ_hog", "AJ_calm", "AJ_new"]
    hog = next(line for line in lines if line.startswith("AJ_hog"))
    assert "1:00" in hog and "97%" in hog and "20.0 MB" in hog
    assert rows(shown(TopState(sort="memory"))) == ["AJ_calm", "AJ_hog", "AJ_new"]
    assert rows(shown(TopState(sort="age"))) == ["AJ_calm", "AJ_hog", "AJ_new"]
    assert rows(shown(TopState(agent="calm"))) == ["AJ_calm", "AJ_new"]
    assert any(line.startswith("hog") and "1.00 full" in line for line in lines)


def test_keys():
    agents = ["hog", "calm"]
    state = TopState()
    assert state.key("m", agents).sort == "memory" and state.key("a", agents).sort == "age"
    assert state.key("f", agents).agent == "calm"
    assert state.key("f", agents).key("f", agents).agent == "hog"
    assert state.key("f", agents).key("f", agents).key("f", agents).agent is None
    assert state.key("q", agents).quit and state.key("\x03", agents).quit
    assert state.key("x", agents) == state


def test_an_error_is_shown_over_the_last_figures():
    lines = shown(TopState(), error="no whole answer within 3 s")
    assert "! no whole answer within 3 s" in lines[1] and rows(lines) == ["AJ_hog", "AJ_calm", "AJ_new"]


def test_cpu_time_is_shown_where_the_terminal_has_room_and_left_out_where_it_has_not():
    wide = shown(TopState())
    [header] = [line for line in wide if line.startswith("JOB")]
    assert "TIME+" in header and any(line.startswith("AJ_hog") and " 1:15.25 " in line for line in wide), wide
    narrow = shown(TopState(), width=60)  # the job ids and rooms keep room enough to be read
    [header] = [line for line in narrow if line.startswith("JOB")]
    assert "TIME+" not in header and any(line.startswith("AJ_hog ") and "room-AJ_" in line for line in narrow)


def busy_host(jobs: int) -> StatusDocument:
    """A host with long names and large figures: `jobs` jobs of agent customer-support@v2."""
    d = doc()
    d["jobs"] = [{"id": f"AJ_{i:012d}", "agent": "customer-support", "version": "v2",
                  "room": f"support-call-{i:08d}", "state": "running", "pid": 1_234_500 + i,
                  "started_at": "2025-12-05T01:00:00+00:00", "memory_mb": 1234.5, "cpu": 1.53, "cpu_seconds": 5000.0,
                  "loop_lag_ms": 250.0, "slow": True, "participants": 2} for i in range(jobs)]  # type: ignore[typeddict-item]
    return d


def test_a_narrow_terminal_keeps_every_figure_whole_and_leaves_the_least_needed_columns_out():
    console = Console(record=True, width=80, color_system=None)
    console.print(render(busy_host(3), TopState(), "http://h/status", now=NOW, width=80))
    lines = console.export_text().splitlines()
    [header] = [line for line in lines if line.startswith("JOB")]
    assert header.split() == ["JOB", "AGENT", "ROOM", "STATE", "AGE", "CPU", "MEMORY", "LAG", "PEOPLE"]
    row = next(line for line in lines if line.startswith("AJ_"))
    assert all(figure in row for figure in ("153%", "1234.5 MB", "250 ms SLOW", "1:00:00", "running"))
    job, agent, room = row.split()[:3]  # each cut, if at all, where it can still be told apart
    assert job.startswith("AJ_0000") and agent.startswith("customer-su") and room.startswith("support")
    assert max(len(line) for line in lines) <= 80


def test_jobs_a_short_terminal_has_no_room_for_are_counted_and_the_agents_stay_in_view():
    console = Console(record=True, width=100, height=20, color_system=None)
    console.print(render(busy_host(30), TopState(), "http://h/status", now=NOW, width=100, height=20))
    lines = console.export_text().splitlines()
    assert len(lines) <= 20, lines
    shown_jobs = [line for line in lines if line.startswith("AJ_")]
    assert any(line.startswith(f"... {30 - len(shown_jobs)} more jobs below") for line in lines), lines
    assert any(line.strip().startswith("hog") for line in lines)  # the agents' table, below the jobs
