from host.ops.status import StatusDocument, render_status

DOC: StatusDocument = {
    "host": {"version": "0.1.0", "pid": 42, "started_at": "2026-11-29T07:00:00+00:00", "draining": False,
             "cpu_load": 0.25, "url": "ws://127.0.0.1:7880", "job_limits": "cgroup v1"},
    "agents": [{"name": "greeter", "file": "agents.d/greeter.yaml", "dispatch": "explicit", "registered": True,
                "worker_id": "AW_1", "full": False, "load": 0.25, "running_jobs": 1, "idle_processes": 2,
                "template_pid": 7,
                "limits": {"max_jobs": 4, "memory_warn_mb": 1000, "memory_limit_mb": 500}, "last_error": None,
                "process_error": None},
               {"name": "echo", "file": "agents.d/echo.yaml", "dispatch": "explicit", "registered": False,
                "worker_id": None, "full": False, "load": 0.0, "running_jobs": 0, "idle_processes": 0,
                "template_pid": None,
                "limits": {"max_jobs": 0, "memory_warn_mb": 1000, "memory_limit_mb": 0}, "last_error": "refused",
                "process_error": None},
               {"name": "broken", "file": "agents.d/broken.yaml", "dispatch": "explicit", "registered": True,
                "worker_id": "AW_2", "full": False, "load": 0.0, "running_jobs": 0, "idle_processes": 0,
                "template_pid": None,
                "limits": {"max_jobs": 0, "memory_warn_mb": 1000, "memory_limit_mb": 0}, "last_error": None,
                "process_error": "InitFailed: boom"}],
    "jobs": [{"id": "AJ_1", "agent": "greeter", "room": "r1", "state": "running", "pid": 99,
              "started_at": "2026-11-29T07:01:00+00:00", "memory_mb": 123.4, "cpu": 0.352,
              "cpu_seconds": 75.5,
              "loop_lag_ms": 140.2, "slow": True, "participants": 1}],
}


def test_tables():
    assert render_status(DOC) == (
        "agenthost 0.1.0 pid 42 since 2026-11-29T07:00:00+00:00 on ws://127.0.0.1:7880  job limits: cgroup v1"
        "  cpu 25%\n"
        "\n"
        "AGENT    REGISTERED  WORKER  JOBS  IDLE  MAX_JOBS  MEMORY LIMIT  LAST ERROR\n"
        "greeter  yes         AW_1    1     2     4         500 MB        -\n"
        "echo     no          -       0     0     -         -             refused\n"
        "broken   yes         AW_2    0     0     -         -             InitFailed: boom\n"
        "\n"
        "JOB   AGENT    ROOM  STATE    PID  STARTED                    MEMORY    CPU  CPU TIME  LOOP LAG     PEOPLE\n"
        "AJ_1  greeter  r1    running  99   2026-11-29T07:01:00+00:00  123.4 MB  35%  1:15.50   140 ms SLOW  1\n"
    )


def test_no_jobs_and_draining():
    text = render_status({**DOC, "jobs": [], "host": {**DOC["host"], "draining": True}})
    assert "DRAINING" in text.splitlines()[0]
    assert text.endswith("no running jobs\n")
