"""A job's end as the host records it: its version's health, and its status told to the server only while
its worker is there."""

from __future__ import annotations

import logging

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.loader import load
from host.ops.metrics import Metrics
from host.process.reports import JobReports
from host.runtime.accepted import JobFacts, NoAgents
from host.runtime.ending import JobEnding, signal_name
from host.runtime.outcome import SUCCESS, Outcome
from host.runtime.redispatch import Redispatch
from host.runtime.versions import Health
from host.wire.messages import JobVitals, Participant


class Worker:
    def __init__(self, closed: bool) -> None:
        self.closed = closed
        self.updates: list[tuple[str, int, str]] = []

    async def update_job(self, job_id: str, status: int, error: str = "") -> None:
        self.updates.append((job_id, status, error))


def facts(tmp_path, worker: Worker) -> JobFacts:
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nversion: v1\ntake_out: {failures: 2, of_last: 3}\n")
    d = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    return JobFacts("AJ_1", "a", "r", "AD_1", d, worker, None, Participant("agent-AJ_1", "", "", ()))  # type: ignore[arg-type]


def ending(metrics: Metrics, health: Health) -> JobEnding:
    redispatch = Redispatch(Credentials("ws://127.0.0.1:9", "k", "s" * 32), metrics, NoAgents, lambda: False)
    return JobEnding(metrics, health, redispatch, NoAgents, lambda: False)


async def test_the_status_is_reported_while_the_worker_is_there(tmp_path):
    metrics, health = Metrics(), Health()
    there, gone = Worker(False), Worker(True)
    end = ending(metrics, health)
    await end.report(facts(tmp_path, there), Outcome("job_error", "entrypoint raised ValueError: x"), {})
    await end.report(facts(tmp_path, gone), SUCCESS, {})
    assert there.updates == [("AJ_1", agent_pb.JobStatus.JS_FAILED, "entrypoint raised ValueError: x")]
    assert gone.updates == []  # a reload unregistered it: no one to tell


def test_a_version_failing_too_often_is_taken_out_and_said_once(tmp_path, caplog):
    metrics, health = Metrics(), Health()
    end = ending(metrics, health)
    f = facts(tmp_path, Worker(False))
    with caplog.at_level(logging.WARNING, "agenthost.host"):
        end.note_version(f, failed=True)
        end.note_version(f, failed=True)
        end.note_version(f, failed=True)
    assert health.is_out(f.definition)
    assert caplog.text.count("version v1 of agent a taken out of rotation") == 1
    assert 'agenthost_version_jobs_total{agent="a",outcome="failed",version="v1"} 3.0' in metrics.render().decode()
    assert signal_name(9) == "SIGKILL" and signal_name(999) == "999"


def two_versions(facts: JobFacts, other: object = None):  # an AgentLookup of two versions, faked
    from types import SimpleNamespace

    agent = SimpleNamespace(versions=(SimpleNamespace(definition=facts.definition), SimpleNamespace(definition=other)))
    return lambda: SimpleNamespace(get=lambda name: agent)


def test_a_call_whose_job_failed_before_joining_is_retried_once_within_max_attempts(tmp_path):
    from dataclasses import replace
    from types import SimpleNamespace

    from host.runtime.accepted import Job

    retried: list[str] = []
    redispatch = Redispatch(Credentials("ws://127.0.0.1:9", "k", "s" * 32), Metrics(), NoAgents, lambda: False)
    redispatch.retry = lambda f: retried.append(f.id)  # type: ignore[method-assign]
    first = facts(tmp_path, Worker(False))
    end = JobEnding(Metrics(), Health(), redispatch, two_versions(first), lambda: False)  # type: ignore[arg-type]
    failed = Outcome("job_error", "entrypoint raised RuntimeError: the canary's bug")
    alone = SimpleNamespace(reports=JobReports())  # it never said anyone was in its room
    joined = SimpleNamespace(reports=JobReports())
    joined.reports.take(JobVitals(1.0, 1))
    joined.reports.take(JobVitals(1.0, 0))  # its caller met it, then left, then the job failed
    assert end._judge_version(Job(first), alone, failed) is True  # type: ignore[arg-type]
    assert retried == ["AJ_1"]
    assert end._judge_version(Job(first), joined, failed) is False  # type: ignore[arg-type]  # its caller met it
    assert end._judge_version(Job(first), alone, SUCCESS) is False  # type: ignore[arg-type]
    # a retry that fails again is not retried again, on any host (it avoided a version already)
    assert end._judge_version(Job(replace(first, avoided="v0")), alone, failed) is False  # type: ignore[arg-type]
    # nor a call given its agent recovery.max_attempts (3) times already
    assert end._judge_version(Job(replace(first, attempt=3)), alone, failed) is False  # type: ignore[arg-type]
    assert retried == ["AJ_1"]


async def test_a_call_whose_process_never_started_on_its_version_is_given_another(tmp_path):
    """A version whose process does not start (its setup failing, say) fails the call before it joined: the
    server hears the job failed, the version counts it, and the call is dispatched again."""
    from host.runtime.accepted import Job

    retried: list[str] = []
    redispatch = Redispatch(Credentials("ws://127.0.0.1:9", "k", "s" * 32), Metrics(), NoAgents, lambda: False)
    redispatch.retry = lambda f: retried.append(f.id)  # type: ignore[method-assign]
    worker = Worker(False)
    first = facts(tmp_path, worker)
    metrics, health = Metrics(), Health()
    end = JobEnding(metrics, health, redispatch, two_versions(first), lambda: False)  # type: ignore[arg-type]
    await end.no_process(Job(first), RuntimeError("setup raised ImportError: no module named 'missing'"))
    assert worker.updates == [("AJ_1", agent_pb.JobStatus.JS_FAILED, "job process failed to start: setup raised "
                               "ImportError: no module named 'missing'")]
    assert retried == ["AJ_1"] and health.failures(first.definition) == 1


def test_jobs_of_a_definition_a_reload_replaced_leave_the_versions_record_alone(tmp_path):
    """After a reload changed a version's definition, its older jobs ending (well) neither count for the new
    definition nor start its record afresh: a failing new definition is still taken out."""
    from dataclasses import replace

    old = facts(tmp_path, Worker(False))
    new = replace(old, definition=replace(old.definition, weight=old.definition.weight + 1))
    health = Health()
    end = JobEnding(Metrics(), health, Redispatch(Credentials("ws://127.0.0.1:9", "k", "s" * 32), Metrics(),
                                                 NoAgents, lambda: False),
                    two_versions(new), lambda: False)  # type: ignore[arg-type]
    end.note_version(new, failed=True)
    end.note_version(old, failed=False)  # a job started before the reload ends well
    end.note_version(new, failed=True)
    assert health.failures(new.definition) == 2 and health.is_out(new.definition)
