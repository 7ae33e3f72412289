"""What /metrics exports: every series of a served agent from the start, and the host's state at each scrape."""

from __future__ import annotations

from host.ops.metrics import DECLINE_REASONS, FAILURE_REASONS, Gauges, JobLag, JobMemory, Metrics


class State:
    def gauges(self) -> Gauges:
        return Gauges(running={"a": 2}, idle={"a": 1}, registered={"a": True},
                      memory=[JobMemory("a", "AJ_1", 50 * 2**20)], cpu_load=0.25,
                      job_lag=[JobLag("a", "AJ_1", 0.2)])


def test_a_served_agents_series_exist_at_zero_before_anything_happens():
    metrics = Metrics()
    metrics.prepare("a")
    text = metrics.render().decode()
    for reason in FAILURE_REASONS:
        assert f'agenthost_jobs_failed_total{{agent="a",reason="{reason}"}} 0.0' in text
    for reason in DECLINE_REASONS:
        assert f'agenthost_jobs_declined_total{{agent="a",reason="{reason}"}} 0.0' in text
    assert 'agenthost_jobs_started_total{agent="a"} 0.0' in text


def test_the_hosts_state_is_read_at_each_scrape():
    metrics = Metrics()
    metrics.observe(State())
    metrics.jobs_recovered.labels("a", "crash", "dispatched").inc()
    metrics.recovery_latency.labels("a", "crash").observe(1.4)
    text = metrics.render().decode()
    assert 'agenthost_jobs_running{agent="a"} 2.0' in text
    assert 'agenthost_job_loop_lag_seconds{agent="a",job_id="AJ_1",version=""} 0.2' in text
    assert 'agenthost_jobs_recovered_total{agent="a",outcome="dispatched",reason="crash"} 1.0' in text
    assert 'agenthost_recovery_seconds_bucket{agent="a",le="2.0",reason="crash"} 1.0' in text
