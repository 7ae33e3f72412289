"""Prometheus metrics of one host, in a registry of its own.

Counters and histograms are updated where things happen (the supervisor calls
`Metrics`' methods); gauges of current state (running jobs, idle processes, job
memory, registration) are read from the host when scraped, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HostState(Protocol):
    """What the scrape-time collector reads from the host."""

    def gauges(self) -> tuple[dict[str, int], dict[str, int], dict[str, bool], list[tuple[str, str, int]], float]:
        """(running jobs by agent, idle processes by agent, registered by agent,
        [(agent, job id, memory bytes)], reported load)."""
        ...


class _StateCollector(Collector):
    def __init__(self, state: HostState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        running, idle, registered, memory, load = self._state.gauges()
        g = GaugeMetricFamily("agenthost_jobs_running", "Jobs running now.", labels=["agent"])
        for agent, n in running.items():
            g.add_metric([agent], n)
        yield g
        g = GaugeMetricFamily("agenthost_idle_processes", "Prewarmed processes waiting for a job.", labels=["agent"])
        for agent, n in idle.items():
            g.add_metric([agent], n)
        yield g
        g = GaugeMetricFamily("agenthost_worker_registered", "1 when the agent is registered with the server.",
                              labels=["agent"])
        for agent, ok in registered.items():
            g.add_metric([agent], 1.0 if ok else 0.0)
        yield g
        g = GaugeMetricFamily("agenthost_job_memory_bytes", "Resident memory of each running job's process.",
                              labels=["agent", "job_id"])
        for agent, job_id, value in memory:
            g.add_metric([agent, job_id], value)
        yield g
        yield GaugeMetricFamily("agenthost_cpu_load", "The machine's smoothed CPU use (0-1).", value=load)


class Metrics:
    def __init__(self, state: HostState) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_started = Counter("agenthost_jobs_started", "Jobs whose process got the job.", ["agent"],
                                    registry=r)
        self.jobs_finished = Counter("agenthost_jobs_finished", "Jobs that ended without an error.", ["agent"],
                                     registry=r)
        self.jobs_failed = Counter("agenthost_jobs_failed", "Jobs that ended with an error, by reason.",
                                   ["agent", "reason"], registry=r)
        self.jobs_refused = Counter("agenthost_jobs_refused", "Job offers this host declined, by reason.",
                                    ["agent", "reason"], registry=r)
        self.job_duration = Histogram("agenthost_job_duration_seconds", "From job start to process exit.",
                                      ["agent"], registry=r,
                                      buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200))
        self.offer_to_entrypoint = Histogram(
            "agenthost_offer_to_entrypoint_seconds", "From accepting the offer to the entrypoint being called.",
            ["agent"], registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.reloads = Counter("agenthost_reloads", "Reloads, by result (applied, unchanged, refused, failed).",
                               ["result"], registry=r)
        r.register(_StateCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)
