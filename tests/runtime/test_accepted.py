"""A job as the job table keeps it, and when an agent cannot take a job."""

from __future__ import annotations

import asyncio

from host.config.loader import load
from host.runtime.accepted import JobFacts, kill_reserved, pool_error, process_error
from host.runtime.agents import Agent, Version
from host.wire.messages import Participant


def definition(tmp_path, version: str | None = None):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\n" + (f"version: {version}\n" if version else ""))
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


class Pool:
    def __init__(self, last_error: str | None, idle: int) -> None:
        self.last_error, self.idle_count = last_error, idle


def test_a_pool_that_failed_is_an_error_only_while_it_has_nothing_ready(tmp_path):
    assert pool_error(Pool("ImportError: no module", 0)) == "ImportError: no module"
    assert pool_error(Pool("ImportError: no module", 1)) is None  # a process is ready anyway
    assert pool_error(Pool(None, 0)) is None  # only starting
    d = definition(tmp_path)
    broken, fine = Version(d, None, Pool("boom", 0)), Version(d, None, Pool(None, 0))  # type: ignore[arg-type]
    assert process_error(Agent((broken,), None)) == "boom"  # type: ignore[arg-type]
    assert process_error(Agent((broken, fine), None)) is None  # type: ignore[arg-type]  # another version can


def test_a_jobs_log_fields_carry_its_trace_and_version(tmp_path):
    facts = JobFacts("AJ_1", "a", "room-1", "AD_1", definition(tmp_path, "v2"), None,  # type: ignore[arg-type]
                     None, Participant("agent-AJ_1", "", "", ()), trace_id="0af7")
    assert facts.version == "v2"
    assert facts.log_fields == {"agent": "a", "job_id": "AJ_1", "dispatch_id": "AD_1", "room": "room-1",
                                "trace_id": "0af7", "version": "v2"}


class Process:
    killed = False

    def kill(self) -> None:
        self.killed = True


async def test_a_process_reserved_for_a_job_that_never_came_is_killed_not_given_back():
    process = Process()
    done = asyncio.get_running_loop().create_future()
    done.set_result(process)
    kill_reserved(done)  # type: ignore[arg-type]
    assert process.killed
    cancelled = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    kill_reserved(cancelled)  # type: ignore[arg-type]  # nothing to kill
