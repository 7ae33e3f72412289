"""The job table: offers, assignments and each job's supervision, with real job processes and a fake
worker connection that records what would be sent to the server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.metadata import MetadataChecker
from host.ops.metrics import Metrics
from host.ops.resources import CpuLoad
from host.process.pool import ProcessPool
from host.runtime.admission import Accept, Decline, Refuse
from host.runtime.agents import Agent, Version
from host.runtime.jobs import JobTable
from host.runtime.load import LoadPolicy

CREDENTIALS = Credentials("ws://127.0.0.1:9", "key", "s" * 32)


class FakeWorker:
    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.worker_id = "AW_test"
        self.registered = True
        self.closed = False
        self.job_updates: list[tuple[str, int, str]] = []
        self.worker_updates: list[tuple[bool, float, int]] = []
        self.updated = asyncio.Event()

    async def update_job(self, job_id: str, status: int, error: str = "") -> None:
        self.job_updates.append((job_id, status, error))
        self.updated.set()

    async def update_worker(self, *, full: bool, load: float, job_count: int) -> None:
        self.worker_updates.append((full, load, job_count))


class Agents:
    def __init__(self, *agents: Agent) -> None:
        self.agents = {a.name: a for a in agents}

    def get(self, name):
        return self.agents.get(name)

    def serves(self, worker):
        agent = self.agents.get(worker.agent)
        return agent if agent is not None and agent.worker is worker else None

    def names(self):
        return list(self.agents)

    def replace(self, agent: Agent) -> None:
        """What `AgentSet.apply` does to a changed agent: a new `Agent`, the old parts closed by the caller."""
        self.agents[agent.name] = agent


def table_with(definition):
    worker = FakeWorker(definition.name)
    pool = ProcessPool(definition, "text", 20)
    agent = Agent((Version(definition, MetadataChecker(definition.metadata), pool),), worker)  # type: ignore[arg-type]
    metrics = Metrics()
    table = JobTable(CREDENTIALS, metrics, CpuLoad(sampler=lambda: 0.0), LoadPolicy())
    table.attach(agents := Agents(agent))
    table.agents_for_test = agents  # type: ignore[attr-defined]  # what a reload replaces (AgentSet.apply)
    return table, worker, pool, metrics


def offer(job_id: str, metadata: str = "") -> agent_pb.AvailabilityRequest:
    return agent_pb.AvailabilityRequest(job=agent_pb.Job(id=job_id, dispatch_id=f"AD_{job_id}", metadata=metadata,
                                                         room={"name": f"room-{job_id}"}))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def wait_for(event: asyncio.Event, timeout: float = 20.0) -> None:
    await asyncio.wait_for(event.wait(), timeout)
    event.clear()


async def test_accepted_job_runs_in_a_process_and_its_success_is_reported(make_agent, caplog):
    caplog.set_level(logging.INFO)
    table, worker, pool, metrics = table_with(make_agent("limits: {max_jobs: 1}\nprocesses: {idle: 0}\n"))
    try:
        answer = await table.on_offer(worker, offer("AJ_1", "free text"))  # type: ignore[arg-type]
        assert isinstance(answer, Accept)
        assert [j.id for j in table] == ["AJ_1"] and table.get("AJ_1").state == "accepted"
        second = await table.on_offer(worker, offer("AJ_2"))  # type: ignore[arg-type]
        assert second == Decline("max_jobs", "at max_jobs (1)")
        assert sample(metrics, "agenthost_jobs_declined_total", agent="a", reason="max_jobs") == 1

        await table.on_assignment(worker, agent_pb.JobAssignment(job=offer("AJ_1").job, token="t"))  # type: ignore[arg-type]
        assert worker.job_updates[0] == ("AJ_1", agent_pb.JobStatus.JS_RUNNING, "")
        assert worker.worker_updates[-1] == (True, 1.0, 1)  # its one slot is taken: full, and it says why
        assert "agent a takes no new jobs: at max_jobs (1)" in caplog.text
        assert table.get("AJ_1").pid is not None
        # the entrypoint returns without connecting: the job ends on its own, and cleanly
        for _ in range(400):
            if len(worker.job_updates) == 2:
                break
            await asyncio.sleep(0.05)
        assert worker.job_updates[1] == ("AJ_1", agent_pb.JobStatus.JS_SUCCESS, "")
        assert len(table) == 0
        assert sample(metrics, "agenthost_jobs_finished_total", agent="a") == 1
        assert worker.worker_updates[-1] == (False, 0.0, 0)  # its slot is free again
        assert "agent a takes jobs again" in caplog.text
    finally:
        await pool.close()


async def test_invalid_metadata_is_refused_and_counted(make_agent):
    table, worker, _pool, metrics = table_with(make_agent("metadata: {schema: {type: object}}\n"))
    answer = await table.on_offer(worker, offer("AJ_1", "[1]"))  # type: ignore[arg-type]
    assert isinstance(answer, Refuse) and "is not of type 'object'" in answer.message
    assert len(table) == 0
    assert sample(metrics, "agenthost_jobs_refused_total", agent="a", reason="invalid_metadata") == 1


async def test_a_job_that_fails_to_get_a_process_is_reported_failed(make_agent):
    table, worker, _pool, metrics = table_with(make_agent(
        "processes: {idle: 0}\n", module="raise RuntimeError('broken module')\n"))
    await table.on_offer(worker, offer("AJ_1"))  # type: ignore[arg-type]
    await table.on_assignment(worker, agent_pb.JobAssignment(job=offer("AJ_1").job))  # type: ignore[arg-type]
    [(job_id, status, error)] = worker.job_updates
    assert (job_id, status) == ("AJ_1", agent_pb.JobStatus.JS_FAILED)
    assert "job process failed to start" in error and "broken module" in error
    assert len(table) == 0
    assert sample(metrics, "agenthost_jobs_failed_total", agent="a", reason="no_process") == 1


async def test_a_host_decided_failure_shuts_the_job_down_and_is_reported(make_agent):
    module = "import asyncio\n\nasync def entrypoint(ctx):\n    await asyncio.sleep(60)\n"
    table, worker, pool, metrics = table_with(make_agent("processes: {idle: 0}\nshutdown: {timeout: 2s}\n",
                                                         module=module))
    try:
        await table.on_offer(worker, offer("AJ_1"))  # type: ignore[arg-type]
        await table.on_assignment(worker, agent_pb.JobAssignment(job=offer("AJ_1").job))  # type: ignore[arg-type]
        [sampled] = table.sampled()
        assert sampled.job_id == "AJ_1" and sampled.log_fields["room"] == "room-AJ_1"
        table.fail("AJ_1", "memory_limit", "memory limit exceeded")
        table.fail("AJ_1", "other", "a second reason is ignored")
        for _ in range(400):
            if len(worker.job_updates) == 2:
                break
            await asyncio.sleep(0.05)
        assert worker.job_updates[1] == ("AJ_1", agent_pb.JobStatus.JS_FAILED, "memory limit exceeded")
        assert sample(metrics, "agenthost_jobs_failed_total", agent="a", reason="memory_limit") == 1
    finally:
        await pool.close()


async def test_assignment_for_an_unknown_job_is_answered_failed(make_agent):
    table, worker, _pool, _ = table_with(make_agent())
    await table.on_assignment(worker, agent_pb.JobAssignment(job=offer("AJ_9").job))  # type: ignore[arg-type]
    assert worker.job_updates == [("AJ_9", agent_pb.JobStatus.JS_FAILED, "job was not accepted by this host")]


async def test_draining_declines_and_reports_full_on_registration(make_agent):
    table, worker, _pool, _ = table_with(make_agent())
    table.stop_taking()
    answer = await table.on_offer(worker, offer("AJ_1"))  # type: ignore[arg-type]
    assert isinstance(answer, Decline) and answer.reason == "draining"
    table.on_registered(worker)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert worker.worker_updates == [(True, 1.0, 0)]


async def test_a_job_runs_the_version_it_was_accepted_under_across_a_reload(make_agent, tmp_path):
    """Accepted under code v1, assigned after the code changed on disk: it still runs v1 (its process is
    taken at the offer)."""
    module = ("import asyncio\nVERSION = 'v1'\n\nasync def entrypoint(ctx):\n"
              "    open(ctx.job.metadata, 'w').write(VERSION)\n")
    d = make_agent("processes: {idle: 1}\n", module=module)
    table, worker, pool, _ = table_with(d)
    pool.start()
    try:
        for _ in range(200):
            if pool.idle_count:
                break
            await asyncio.sleep(0.05)
        out = tmp_path / "ran"
        await table.on_offer(worker, offer("AJ_1", str(out)))  # type: ignore[arg-type]
        # a reload before the assignment: new code on disk, the agent's pool replaced, the old one closed
        Path(d.entrypoint.file).write_text(module.replace("v1", "v2"))
        new_pool = ProcessPool(d, "text", 20)
        new_pool.start()
        table.agents_for_test.replace(Agent((Version(d, MetadataChecker(d.metadata), new_pool),),  # type: ignore[attr-defined]
                                            worker))  # type: ignore[arg-type]
        await pool.close()
        pool = new_pool
        for _ in range(200):  # the new pool has its process (from the new code) ready
            if new_pool.idle_count:
                break
            await asyncio.sleep(0.05)
        assert new_pool.idle_count
        await table.on_assignment(worker, agent_pb.JobAssignment(job=offer("AJ_1", str(out)).job))  # type: ignore[arg-type]
        for _ in range(200):
            if out.exists() and out.read_text():
                break
            await asyncio.sleep(0.05)
        assert out.read_text() == "v1"
    finally:
        await pool.close()


async def test_concurrent_offers_checked_off_the_loop_never_exceed_max_jobs(make_agent):
    table, worker, pool, _ = table_with(make_agent(
        "limits: {max_jobs: 1}\nprocesses: {idle: 0}\nmetadata: {schema: {type: object}}\n"))
    try:
        answers = await asyncio.gather(*(table.on_offer(worker, offer(f"AJ_{i}", "{}"))  # type: ignore[arg-type]
                                         for i in range(5)))
        assert sum(isinstance(a, Accept) for a in answers) == 1 and len(table) == 1
    finally:
        table.kill_all("test over")
        await pool.close()
