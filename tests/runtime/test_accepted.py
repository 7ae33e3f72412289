"""A job as the job table keeps it, and when an agent cannot take a job."""

from __future__ import annotations

import asyncio

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.loader import load
from host.runtime.accepted import Job, JobFacts, journal_entry, kill_reserved, pool_error, process_error, start_message
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


class Worker:
    worker_id = "AW_1"


def test_a_job_is_started_with_what_its_offer_decided_and_journalled_with_what_a_recovery_needs(tmp_path):
    facts = JobFacts("AJ_1", "a", "room-1", "AD_1", definition(tmp_path), Worker(),  # type: ignore[arg-type]
                     {"lang": "en"}, Participant("agent-AJ_1", "", "", ()), dispatched_metadata='{"lang":"en"}',
                     recovery_of="AJ_0", attempt=2)
    credentials = Credentials("ws://127.0.0.1:7880", "key", "secret")
    assignment = agent_pb.JobAssignment(job=agent_pb.Job(id="AJ_1"), token="tok")
    message = start_message(Job(facts), assignment, Worker(), credentials, (("OTEL_X", "1"),))  # type: ignore[arg-type]
    assert (message.url, message.token, message.worker_id) == ("ws://127.0.0.1:7880", "tok", "AW_1")
    assert (message.metadata, message.recovery_of, message.otel_env) == ({"lang": "en"}, "AJ_0", (("OTEL_X", "1"),))
    assert agent_pb.Job.FromString(message.job).id == "AJ_1"
    assignment.url = "ws://127.0.0.1:7881"  # the server's own address for the job, when it gives one
    assert start_message(Job(facts), assignment, Worker(), credentials, ()).url == "ws://127.0.0.1:7881"  # type: ignore[arg-type]
    entry = journal_entry(facts, credentials.url, 4242, 99)
    assert (entry.job_id, entry.room, entry.metadata, entry.identity) == ("AJ_1", "room-1", '{"lang":"en"}',
                                                                         "agent-AJ_1")
    assert (entry.host_pid, entry.host_start, entry.attempt, entry.recovery_of) == (4242, 99, 2, "AJ_0")
