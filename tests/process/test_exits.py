"""A job process's end: what it used, from its cgroup or from its own word."""

from __future__ import annotations

from host.process.exits import GroupEnd, used
from host.process.reports import JobReports
from host.wire.messages import JobDone, Ready

READY = 0.5  # CPU seconds its prewarm took, as the host read them when it was ready: not its job's


def reports(result: JobDone | None) -> JobReports:
    said = JobReports(result=result)
    said.ready(Ready(1, {}, 99.0))  # what it says of its prewarm is not what its CPU time is counted from
    return said


def test_a_cgroup_counts_what_the_job_used_and_its_own_word_is_only_for_no_cgroup():
    group = GroupEnd(cpu_seconds=3.0, peak_memory_bytes=80_000_000, memory_killed=None)
    assert used(group, reports(JobDone(None, 9.0, 1_000)), READY) == (2.5, 80_000_000, None)
    assert used(None, reports(JobDone(None, 2.0, 50_000_000)), READY) == (1.5, None, 50_000_000)


def test_a_job_that_said_nothing_has_no_figures_and_none_is_negative():
    assert used(None, reports(None), READY) == (None, None, None)
    assert used(None, reports(JobDone(None, 0.1, 0)), READY) == (0.0, None, None)  # less than at Ready: 0
