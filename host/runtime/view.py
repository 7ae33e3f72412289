"""What operators see of a running host, read from its parts: the /status document, /readyz's reasons
and the gauges of /metrics. Read-only: nothing here changes host state."""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass

from host import __version__
from host.ops.metrics import Gauges, JobCpu, JobLag, JobMemory, Metrics, VersionGauge
from host.ops.monitor import ResourceMonitor
from host.ops.resources import MB
from host.ops.status import SLOW_LAG_MS, AgentInfo, JobInfo, StatusDocument
from host.process.states import ProcessState
from host.runtime.accepted import Job, pool_error, process_error
from host.runtime.agents import Agent, AgentSet, Version
from host.runtime.jobs import JobTable
from host.runtime.journal import JobJournal


@dataclass
class HostView:
    agents: AgentSet
    jobs: JobTable
    monitor: ResourceMonitor
    metrics: Metrics
    url: str
    started_at: float
    job_limits: str = "rlimit"  # how job limits are enforced (host.process.cgroups)
    journal: JobJournal | None = None

    def warnings(self) -> list[str]:
        """What the host does without, while it serves: said by /readyz, which stays 200 for them."""
        if self.journal is None:
            return ["no journal of running jobs (no --state-dir): calls are not recovered if this host dies"]
        if self.journal.error is not None:
            return [f"the journal of running jobs is unusable, calls are not recovered if this host dies: "
                    f"{self.journal.error}"]
        return []

    def not_ready(self) -> list[str]:
        """Why the host cannot take jobs now; empty when it can."""
        if self.jobs.draining:
            return ["the host is draining"]
        if not len(self.agents):
            return ["no enabled agents"]
        reasons = []
        for agent in self.agents:
            if not agent.worker.registered:
                reasons.append(f"agent {agent.name} is not registered with {self.url}: "
                               f"{agent.worker.last_error or 'connecting'}")
            error = process_error(agent)
            if error is not None:
                # a rollout should not count on a host whose agent cannot start a job process (on any version)
                reasons.append(f"agent {agent.name} cannot start job processes: {error}")
        return reasons

    def status(self) -> StatusDocument:
        counts = self.jobs.counts()
        return {
            "host": {"version": __version__, "pid": os.getpid(), "started_at": _iso(self.started_at),
                     "draining": self.jobs.draining, "cpu_load": round(self.monitor.cpu.value, 3),
                     "machine_cpu_load": round(self.monitor.cpu.machine, 3),
                     "url": self.url, "job_limits": self.job_limits},
            "agents": [self._agent(a, counts[a.name]) for a in sorted(self.agents, key=lambda a: a.name)],
            "jobs": [self._job(j) for j in self.jobs],
        }

    def _agent(self, agent: Agent, running: int) -> AgentInfo:
        d, w = agent.definition, agent.worker
        return {
            "name": agent.name, "file": d.file, "dispatch": d.dispatch, "worker_id": w.worker_id,
            "registered": w.registered, "last_error": w.last_error, "full": w.reported_full,
            "load": round(w.reported_load, 3), "idle_processes": agent.idle_count,
            "template_pid": agent.pool.template_pid,
            "process_error": agent.pool.last_error, "running_jobs": running,
            "limits": {"max_jobs": d.limits.max_jobs, "memory_warn_mb": d.limits.memory_warn_mb,
                       "memory_limit_mb": d.limits.memory_limit_mb, "pids_limit": d.limits.pids_limit,
                       "cpu_limit": d.limits.cpu_limit},
            "versions": [{"version": v.definition.version, "weight": v.definition.weight,
                          "taken_out": self._taken_out(v), "process_error": pool_error(v.pool),
                          "running_jobs": sum(1 for j in self.jobs if j.facts.definition.key == v.key),
                          "failures": self.jobs.health.failures(v.definition), "idle_processes": v.pool.idle_count,
                          "file": v.definition.file}
                         for v in agent.versions if v.definition.version is not None],
        }

    def _taken_out(self, version: Version) -> bool:
        """Whether new jobs pass `version` over: it failed too often, or its processes cannot start (its setup
        failing, say: `version_for` gives the call to another version)."""
        return self.jobs.health.is_out(version.definition) or pool_error(version.pool) is not None

    def _job(self, job: Job) -> JobInfo:
        memory = self.monitor.memory.get(job.id)
        cpu = self.monitor.cpu.jobs.by_job.get(job.id)
        cpu_seconds = self.monitor.cpu.jobs.seconds_by_job.get(job.id)
        vitals = job.process.reports.vitals if job.process is not None else None
        lag = _lag(job)
        return {"id": job.id, "agent": job.agent, "room": job.facts.room, "state": job.state, "pid": job.pid,
                "started_at": _iso(job.started_at), "memory_mb": round(memory / MB, 1) if memory else None,
                "cpu": round(cpu, 3) if cpu is not None else None,
                "cpu_seconds": round(cpu_seconds, 2) if cpu_seconds is not None else None, "version": job.facts.version,
                "loop_lag_ms": lag,
                "slow": lag is not None and lag > SLOW_LAG_MS,
                "participants": vitals.participants if vitals is not None else None}

    def gauges(self) -> Gauges:
        running = {name: 0 for name in self.agents.names()} | dict(self.jobs.counts())
        agents = list(self.agents)
        memory = [JobMemory(j.agent, j.id, self.monitor.memory[j.id], j.facts.version or "") for j in self.jobs
                  if j.id in self.monitor.memory]
        return Gauges(running=running, idle={a.name: a.idle_count for a in agents},
                      registered={a.name: a.worker.registered for a in agents}, memory=memory,
                      cpu_load=self.monitor.cpu.value, machine_cpu_load=self.monitor.cpu.machine,
                      ready=not self.not_ready(),
                      journal_ok=None if self.journal is None else self.journal.error is None,
                      memory_limit={a.name: a.definition.limits.memory_limit_mb * MB for a in agents},
                      job_cpu=[JobCpu(j.agent, j.id, cpus, j.facts.version or "") for j in self.jobs
                               if (cpus := self.monitor.cpu.jobs.by_job.get(j.id)) is not None],
                      versions=[VersionGauge(a.name, v.definition.version, v.definition.weight,
                                             self._taken_out(v))
                                for a in agents for v in a.versions if v.definition.version is not None],
                      job_lag=[JobLag(j.agent, j.id, lag / 1000, j.facts.version or "") for j in self.jobs
                               if (lag := _lag(j)) is not None],
                      cpu_seconds={name: 0.0 for name in self.agents.names()}
                      | dict(self.monitor.cpu.jobs.seconds_by_agent))

    def metrics_text(self) -> bytes:
        return self.metrics.render()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(
        timespec="seconds")


def _lag(job: Job) -> float | None:
    """A job's loop lag: overdue reports count while it runs (a job shutting down reports no more)."""
    if job.process is None:
        return None
    running = job.process.state is ProcessState.RUNNING
    return job.process.reports.loop_lag_ms(time.monotonic() if running else None)
