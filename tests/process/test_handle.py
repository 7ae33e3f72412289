"""A job process handle: its state machine, and the facts of its exit."""

from __future__ import annotations

import pytest

from host.config.loader import load
from host.process.cgroups import Confinement
from host.process.errors import ProcessStartError
from host.process.handle import JobProcess
from host.process.states import ProcessState


async def test_an_idle_process_killed_by_the_host_reports_how_it_ended(tmp_path):
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: mod.py:entrypoint\n")
    definition = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    proc = JobProcess(definition, "text", 20)
    await proc.start()
    await proc.wait_ready(10)
    assert proc.state is ProcessState.IDLE
    proc.kill("test kill")
    end = await proc.wait_exit(5)
    assert end.code < 0 and end.killed_by_host and end.kill_reason == "test kill" and end.result is None
    assert proc.state is ProcessState.EXITED
    with pytest.raises(ProcessStartError, match="not idle"):
        proc.start_job(None, "AJ_1")  # type: ignore[arg-type]


def test_the_agenthost_script_is_preloaded_so_job_processes_do_not_import_it_again(monkeypatch):
    import sys
    import types

    from host.process.mp import _main_script_imports

    script = types.ModuleType("__main__")
    script.__file__ = "/venv/bin/agenthost"  # the console script: multiprocessing runs it in each process
    script.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert _main_script_imports() == ["host.cli"]
    module = types.ModuleType("__main__")
    module.__file__ = "/src/host/__main__.py"  # python -m host: not run again
    module.__spec__ = types.SimpleNamespace(name="host.__main__")  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "__main__", module)
    assert _main_script_imports() == []


class RunningJobs(Confinement):
    """rlimit mode that records what it is told of the jobs running."""

    def __init__(self) -> None:
        self.told: list[bool] = []

    def job_running(self, group, running: bool) -> None:
        self.told.append(running)


async def test_a_job_handed_to_a_starting_process_runs_once_it_is_ready(tmp_path):
    from livekit.protocol import agent as agent_pb

    from host.config.credentials import Credentials
    from host.wire.messages import Participant, StartJob

    (tmp_path / "mod.py").write_text(
        f"async def entrypoint(ctx):\n    open({str(tmp_path / 'ran')!r}, 'w').write(ctx.job.id)\n"
        "    ctx.shutdown('done')\n\ndef prewarm(proc):\n    import time; time.sleep(0.5)\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: mod.py:entrypoint\nsetup: mod.py:prewarm\n")
    definition = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    confinement = RunningJobs()
    proc = JobProcess(definition, "text", 20, confinement=confinement)
    await proc.start()
    assert proc.state is ProcessState.STARTING, "its setup takes half a second"
    job = agent_pb.Job(id="AJ_queued")
    job.room.name = "r"
    start = StartJob(job=job.SerializeToString(), definition=definition, url="ws://127.0.0.1:9", token="t",
                     credentials=Credentials("ws://127.0.0.1:9", "k", "s"), worker_id="AW_1", accepted_at=0.0,
                     metadata=None, participant=Participant("agent-a", "", "", ()))
    proc.start_job(start, "AJ_queued")  # queued in its pipe
    with pytest.raises(ProcessStartError):
        proc.start_job(start, "AJ_other")  # one job per process
    await proc.wait_ready(10)
    assert proc.state in (ProcessState.RUNNING, ProcessState.SHUTTING_DOWN, ProcessState.EXITED)
    end = await proc.wait_exit(10)
    assert (tmp_path / "ran").read_text() == "AJ_queued", "the queued job ran"
    assert confinement.told == [True, False], "its job counted while it ran (the host group's CPU weight)"
    assert end.code == 0 and end.result is not None and end.result.error is None
    # no cgroup: its CPU time and peak are its own word, its prewarm's CPU not counted as the job's
    assert end.cpu_seconds is not None and 0 <= end.cpu_seconds <= end.result.cpu_seconds
    assert end.peak_memory_bytes is None and end.peak_rss_bytes is not None and end.peak_rss_bytes > 1024 * 1024

