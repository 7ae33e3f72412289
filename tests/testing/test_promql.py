"""Reading the metric names and labels a PromQL query uses, and those a /metrics scrape exports."""

from host.testing.promql import dashboard_queries, exported, metrics_and_labels


def test_matchers_and_grouping_labels_are_read_for_each_metric():
    query = ('sum by (agent, reason) (rate(agenthost_jobs_failed_total{agent=~"$agent", reason!="x"}[5m])) '
             '/ on (agent) agenthost_jobs_running')
    assert metrics_and_labels(query) == [("agenthost_jobs_failed_total", {"agent", "reason"}),
                                         ("agenthost_jobs_running", {"agent", "reason"})]
    assert metrics_and_labels("up") == []


def test_a_scrape_gives_each_metric_its_label_names():
    text = ('# HELP agenthost_jobs_running Jobs running\n# TYPE agenthost_jobs_running gauge\n'
            'agenthost_jobs_running{agent="a"} 1.0\nagenthost_jobs_running{agent="b",version="v2"} 0.0\n'
            'agenthost_up 1.0\n\n')
    assert exported(text) == {"agenthost_jobs_running": {"agent", "version"}, "agenthost_up": set()}


def test_the_shipped_dashboard_has_queries_to_check():
    queries = dashboard_queries()
    assert len(queries) >= 5 and all(isinstance(q, str) and q for q in queries)
    assert any(name.startswith("agenthost_") for q in queries for name, _ in metrics_and_labels(q))
