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
    narrow = shown(TopState(), width=80)  # the job ids and rooms keep room enough to be read
    [header] = [line for line in narrow if line.startswith("JOB")]
    assert "TIME+" not in header and any(line.startswith("AJ_hog ") and "room-AJ_" in line for line in narrow)
