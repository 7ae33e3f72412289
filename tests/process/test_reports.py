"""What a job process says of itself, as its handle keeps it."""

from __future__ import annotations

from host.process.reports import JobReports
from host.wire.messages import JobDone, JobStarted, JobVitals, Ready, ShuttingDown


def test_reports_are_kept_and_passed_on_and_a_change_of_state_is_not_a_report():
    reports, started, more = JobReports(), [], []
    reports.on_started, reports.on_spans_dropped = started.append, more.append
    reports.ready(Ready(7, {"/p/mod.py": (1, 2)}, 0.25))
    assert reports.sources == {"/p/mod.py": (1, 2)} and reports.prewarm_cpu == 0.25
    assert reports.take(JobStarted(12.5)) and started == [12.5]
    assert reports.take(JobVitals(3.0, 2, 0)) and reports.vitals == JobVitals(3.0, 2, 0)
    assert not reports.take(ShuttingDown("participants_left")) and not reports.take(Ready(7, {}, 0.0))
    assert reports.take(JobDone(None, 1.5, 2048, 4)) and reports.result == JobDone(None, 1.5, 2048, 4)
    assert more == [4]


def test_a_jobs_dropped_spans_are_passed_on_as_they_grow():
    reports, more = JobReports(), []
    reports.on_spans_dropped = more.append
    for count in (0, 3, 3, 2, 10):  # a count that shrinks (a job's bug, or a lie) adds nothing
        reports.take(JobVitals(1.0, 1, count))
    reports.take(JobDone("boom", spans_dropped=9))
    assert more == [3, 7] and reports.spans_dropped == 10


def test_a_job_whose_report_is_overdue_has_a_lag_at_least_that_long():
    """A loop blocked by synchronous work sends nothing until it is free: meanwhile its lag is how overdue its
    report is, not the last low figure it sent."""
    from host.process.reports import JobReports
    from host.wire.messages import JobVitals

    reports = JobReports()
    assert reports.loop_lag_ms(100.0) is None
    reports.take(JobVitals(3.0, 1))
    sent = reports.vitals_at
    assert reports.loop_lag_ms(sent + 1.5) == 3.0  # its next report is not due yet
    assert reports.loop_lag_ms(sent + 5.0) == 4000.0  # four seconds overdue
    assert reports.loop_lag_ms(None) == 3.0  # a job shutting down sends no more: its last word
    reports.take(JobVitals(4200.0, 1))  # free again, it says how late it was
    assert reports.loop_lag_ms(reports.vitals_at) == 4200.0
