"""A job's outcome from the facts of its process's exit, as a pure function."""

from __future__ import annotations

from host.process.exits import ProcessExit
from host.runtime.outcome import SUCCESS, Failure, Outcome, outcome
from host.wire.messages import JobDone

CLEAN = JobDone(None)


def end(code=0, killed=False, kill_reason=None, result=CLEAN, reason="participants_left"):
    return ProcessExit(code, killed, kill_reason, result, reason)


def test_a_clean_end_is_a_success():
    assert outcome(end(), None, 10) == SUCCESS
    assert SUCCESS.ok


def test_the_jobs_own_error_is_reported():
    assert outcome(end(result=JobDone("entrypoint raised ValueError: x")), None, 10) == Outcome(
        "job_error", "entrypoint raised ValueError: x")


def test_a_process_that_exits_without_reporting():
    assert outcome(end(code=3, result=None), None, 10) == Outcome(
        "process_exited", "job process exited with code 3 before the job ended")


def test_killed_at_the_shutdown_timeout():
    assert outcome(end(code=-9, killed=True, result=None), None, 2.5) == Outcome(
        "shutdown_timeout", "shutdown did not finish within 2.5s; process killed")


def test_killed_on_purpose_says_why():
    got = outcome(end(code=-9, killed=True, kill_reason="host stopped at once", result=None), None, 10)
    assert got == Outcome("host_stopped", "host stopped at once")


def test_a_host_decided_failure_wins_and_notes_a_timeout_kill():
    failure = Failure("memory_limit", "memory limit exceeded: 500 MB > limits.memory_limit_mb 400 MB")
    assert outcome(end(), failure, 1) == Outcome("memory_limit", failure.message)
    assert outcome(end(code=-9, killed=True, result=None), failure, 1) == Outcome(
        "memory_limit", failure.message + "; shutdown did not finish within 1s; process killed")


def test_killed_at_the_timeout_after_its_job_was_over_is_judged_by_what_it_said():
    """Its job said it was over (JobDone) and the process was sending its last spans to a collector that did not
    answer when the shutdown timeout killed it: not a failure of the job."""
    assert outcome(end(code=-9, killed=True), None, 2.5) == SUCCESS
    assert outcome(end(code=-9, killed=True, result=JobDone("entrypoint raised ValueError: x")), None, 2.5) == \
        Outcome("job_error", "entrypoint raised ValueError: x")
    failure = Failure("memory_limit", "memory limit exceeded")
    assert outcome(end(code=-9, killed=True), failure, 1) == Outcome("memory_limit", "memory limit exceeded")
