"""Prometheus metrics of one host, in a registry of its own.

Counters and histograms are updated where things happen (the job table and the
reloader update them); gauges of current state (running jobs, idle processes, job
memory, registration) are read from the host when scraped, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# every value of the `reason` labels (runtime.outcome and runtime.admission produce them)
FAILURE_REASONS = ("job_error", "process_exited", "shutdown_timeout", "host_stopped", "memory_limit", "no_process")
REFUSAL_REASONS = ("invalid_metadata", "metadata_error")  # refused for good: no host should run the job
DECLINE_REASONS = ("max_jobs", "no_process", "draining", "removed", "error")  # not here: another host may
RELOAD_RESULTS = ("applied", "unchanged", "refused", "failed")


@dataclass(frozen=True)
class JobMemory:
    agent: str
    job_id: str
    bytes: int
    version: str = ""  # its agent's version, when the agent has versions


@dataclass(frozen=True)
class JobCpu:
    agent: str
    job_id: str
    cpus: float
    version: str = ""  # its agent's version, when the agent has versions


@dataclass(frozen=True)
class VersionGauge:
    agent: str
    version: str
    weight: int
    taken_out: bool


@dataclass(frozen=True)
class JobLag:
    agent: str
    job_id: str
    seconds: float
    version: str = ""  # its agent's version, when the agent has versions


@dataclass(frozen=True)
class Gauges:
    """The host's current state, read at scrape time."""

    running: Mapping[str, int]  # jobs by agent: every served agent (0 when idle), and removed ones still running
    idle: Mapping[str, int]  # prewarmed processes by agent
    registered: Mapping[str, bool]  # by agent
    memory: Sequence[JobMemory]
    cpu_load: float  # the host's own process tree, as a share of its CPUs
    machine_cpu_load: float = 0.0
    ready: bool = True  # what /readyz says
    journal_ok: bool | None = None  # the journal of running jobs is in use (None: the host keeps none)
    memory_limit: Mapping[str, int] = field(default_factory=dict)  # bytes by agent; 0 when it has none
    job_cpu: Sequence[JobCpu] = ()  # CPUs each running job used over the last interval
    job_lag: Sequence[JobLag] = ()  # each running job's event-loop lag, seconds (the worst of its last second)
    versions: Sequence[VersionGauge] = ()  # each version of the agents served as versions
    cpu_seconds: Mapping[str, float] = field(default_factory=dict)  # by agent, since the host started


class HostState(Protocol):
    """What the scrape-time collector reads from the host."""

    def gauges(self) -> Gauges: ...


class _StateCollector(Collector):
    def __init__(self, state: HostState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        gauges = self._state.gauges()
        g = GaugeMetricFamily("agenthost_jobs_running", "Jobs running now.", labels=["agent"])
        for agent, n in gauges.running.items():
            g.add_metric([agent], n)
        yield g
        g = GaugeMetricFamily("agenthost_idle_processes", "Prewarmed processes waiting for a job.", labels=["agent"])
        for agent, n in gauges.idle.items():
            g.add_metric([agent], n)
        yield g
        g = GaugeMetricFamily("agenthost_worker_registered", "1 when the agent is registered with the server.",
                              labels=["agent"])
        for agent, ok in gauges.registered.items():
            g.add_metric([agent], 1.0 if ok else 0.0)
        yield g
        g = GaugeMetricFamily("agenthost_job_memory_bytes", "Memory of each running job: what its cgroup is "
                              "charged, or its processes' own pages (USS) without one; the figure "
                              "limits.memory_warn_mb and the sampled memory limit are held to.",
                              labels=["agent", "job_id", "version"])
        for m in gauges.memory:
            g.add_metric([m.agent, m.job_id, m.version], m.bytes)
        yield g
        g = GaugeMetricFamily("agenthost_job_cpu", "CPUs each running job's processes used over the last few "
                              "seconds (0.5: half of one).", labels=["agent", "job_id", "version"])
        for c in gauges.job_cpu:
            g.add_metric([c.agent, c.job_id, c.version], c.cpus)
        yield g
        g = GaugeMetricFamily("agenthost_job_loop_lag_seconds", "Each running job's event-loop lag: how late its "
                              "timers fire, the worst of its last second, as the job measures it (a call hears "
                              "it above about 0.1).", labels=["agent", "job_id", "version"])
        for lag in gauges.job_lag:
            g.add_metric([lag.agent, lag.job_id, lag.version], lag.seconds)
        yield g
        weight = GaugeMetricFamily("agenthost_version_weight", "Each version's weight (its share of new jobs), "
                                   "as its file says.", labels=["agent", "version"])
        out = GaugeMetricFamily("agenthost_version_taken_out", "1 when a version gets no new job: it failed too "
                                "often (until the next reload), or its processes cannot start.",
                                labels=["agent", "version"])
        for v in gauges.versions:
            weight.add_metric([v.agent, v.version], v.weight)
            out.add_metric([v.agent, v.version], 1.0 if v.taken_out else 0.0)
        yield weight
        yield out
        c_total = CounterMetricFamily("agenthost_job_cpu_seconds", "CPU time used by each agent's jobs, as sampled "
                                      "every few seconds on their cgroups or process trees.", labels=["agent"])
        for agent, seconds in gauges.cpu_seconds.items():
            c_total.add_metric([agent], seconds)
        yield c_total
        yield GaugeMetricFamily("agenthost_cpu_load", "The smoothed CPU use of the host and its job processes, as a "
                                "share of the CPUs it may run on (0-1); at --load-threshold it takes no new jobs.",
                                value=gauges.cpu_load)
        yield GaugeMetricFamily("agenthost_machine_cpu_load", "The machine's smoothed CPU use (0-1), other work "
                                "included.", value=gauges.machine_cpu_load)
        yield GaugeMetricFamily("agenthost_ready", "1 when /readyz answers 200 (every agent registered and able "
                                "to start job processes, not draining).", value=1.0 if gauges.ready else 0.0)
        if gauges.journal_ok is not None:
            yield GaugeMetricFamily("agenthost_journal_ok", "1 while the journal of running jobs (SQLite, or Redis "
                                    "with --redis) can be used; 0 when calls would not be recovered if this host "
                                    "died (/readyz says why).", value=1.0 if gauges.journal_ok else 0.0)
        g = GaugeMetricFamily("agenthost_agent_memory_limit_bytes", "Each agent's limits.memory_limit_mb in bytes "
                              "(0: no limit).", labels=["agent"])
        for agent, limit in gauges.memory_limit.items():
            g.add_metric([agent], limit)
        yield g


class _DroppedSpans:
    def __init__(self, read: Callable[[], Mapping[str, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        c = CounterMetricFamily("agenthost_trace_spans_dropped", "Spans of job traces not delivered to the "
                                "OpenTelemetry endpoint (its queue full, or the export failed), by the process that "
                                "made them: the host (agenthost.job spans) or a job process (as it reports).",
                                labels=["process"])
        for process, count in self.read().items():
            c.add_metric([process], count)
        yield c


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_started = Counter("agenthost_jobs_started", "Jobs whose process got the job.", ["agent"],
                                    registry=r)
        self.jobs_finished = Counter("agenthost_jobs_finished", "Jobs that ended without an error.", ["agent"],
                                     registry=r)
        self.jobs_failed = Counter("agenthost_jobs_failed", "Jobs that ended with an error, by reason.",
                                   ["agent", "reason"], registry=r)
        self.jobs_refused = Counter("agenthost_jobs_refused", "Job offers refused for good (no host should run "
                                    "them: invalid metadata), by reason.", ["agent", "reason"], registry=r)
        self.jobs_declined = Counter("agenthost_jobs_declined", "Job offers this host declined, leaving them to "
                                     "another host (at max_jobs, draining, no process), by reason.",
                                     ["agent", "reason"], registry=r)
        self.jobs_recovered = Counter("agenthost_jobs_recovered", "Calls whose agent was lost, by why (reason: "
                                      "host_loss, crash) and what was done: dispatched again, skipped (ended, no "
                                      "caller, the agent in the room again, policy, attempts, taken over by "
                                      "another host), unanswered (no worker took the dispatch), left (to the "
                                      "next host: this one was draining) or error.",
                                      ["agent", "reason", "outcome"], registry=r)
        self.recovery_latency = Histogram(
            "agenthost_recovery_seconds", "From a call's agent known lost (the next host started, another host's "
            "lease gone, its job process died: crash_backoff included) to the new agent in the room, by reason.",
            ["agent", "reason"], registry=r, buckets=(0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60))
        self.job_duration = Histogram("agenthost_job_duration_seconds", "From job start to process exit.",
                                      ["agent"], registry=r,
                                      buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200))
        self.offer_to_entrypoint = Histogram(
            "agenthost_offer_to_entrypoint_seconds", "From accepting the offer to the entrypoint being called.",
            ["agent"], registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.version_jobs = Counter("agenthost_version_jobs", "Jobs of each version of an agent served as "
                                    "versions, by outcome (ok, failed).", ["agent", "version", "outcome"],
                                    registry=r)
        self.reloads = Counter("agenthost_reloads", "Reloads, by result (applied, unchanged, refused, failed).",
                               ["result"], registry=r)
        for result in RELOAD_RESULTS:
            self.reloads.labels(result)

    def prepare(self, agent: str) -> None:
        """Export every series of a served agent from the start, at 0: rates and alerts need the series
        before the first event (a failure, a refusal) happens."""
        self.jobs_started.labels(agent)
        self.jobs_finished.labels(agent)
        for reason in FAILURE_REASONS:
            self.jobs_failed.labels(agent, reason)
        for reason in REFUSAL_REASONS:
            self.jobs_refused.labels(agent, reason)
        for reason in DECLINE_REASONS:
            self.jobs_declined.labels(agent, reason)

    def observe_dropped_spans(self, read: Callable[[], Mapping[str, int]]) -> None:
        """Export the spans tracing could not deliver (a full queue, an unreachable endpoint), read at each
        scrape: the batch thread counts them."""
        self.registry.register(_DroppedSpans(read))

    def observe(self, state: HostState) -> None:
        """Read the gauges from `state` at each scrape."""
        self.registry.register(_StateCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)
