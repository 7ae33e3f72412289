"""The agent set applies reload plans: each part replaced only when the plan says so."""

from __future__ import annotations

import asyncio

from host.config.credentials import Credentials
from host.ops.resources import CpuLoad
from host.process.pool import ProcessSettings
from host.reload.plan import plan
from host.runtime.agents import AgentSet
from host.runtime.jobs import JobTable
from host.runtime.load import LoadPolicy

UNREACHABLE = Credentials("ws://127.0.0.1:9", "k", "s" * 32)


class NoJobs:
    """A job handler that is never asked anything: no server reaches these workers."""


async def test_apply_replaces_only_what_changed(make_agent):
    agents = AgentSet(UNREACHABLE, NoJobs(), ProcessSettings())  # type: ignore[arg-type]
    kept = make_agent("processes: {idle: 0}\n", name="kept")
    limits = make_agent("processes: {idle: 0}\n", name="limits")
    renamed = make_agent("processes: {idle: 0}\n", name="auto")
    gone = make_agent("processes: {idle: 0}\n", name="gone")
    for d in (kept, limits, renamed, gone):
        agents.add(d)
    before = {a.name: a for a in agents}
    try:
        new_limits = make_agent("processes: {idle: 0}\nlimits: {max_jobs: 3}\n", name="limits")
        new_auto = make_agent("processes: {idle: 0}\ndispatch: automatic\n", name="auto")
        added = make_agent("processes: {idle: 0}\n", name="added")
        change = plan(agents.definitions(), [kept, new_limits, new_auto, added], code_changed={"kept"})
        agents.apply(change, {})
        after = {a.name: a for a in agents}
        assert sorted(after) == ["added", "auto", "kept", "limits"]
        # a new limit: the same worker and pool serve the new definition
        assert after["limits"].worker is before["limits"].worker
        assert after["limits"].pool is before["limits"].pool
        assert after["limits"].worker.definition == new_limits == after["limits"].pool.definition
        # a new registered name: a new worker; the old one is closed
        assert after["auto"].worker is not before["auto"].worker
        assert after["auto"].pool is before["auto"].pool
        # changed code: new processes, same registration
        assert after["kept"].pool is not before["kept"].pool
        assert after["kept"].worker is before["kept"].worker
        await closed(before["auto"].worker, before["gone"].worker)
        assert not after["auto"].worker.closed
    finally:
        await agents.close()
    assert len(agents) == 0 and all(a.worker.closed for a in after.values())



async def closed(*workers, timeout: float = 10.0) -> None:
    """Until each worker is closed (closing replaced agents runs in the background)."""
    for _ in range(int(timeout / 0.02)):
        if all(w.closed for w in workers):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("a replaced worker was never closed")


def test_a_job_table_reads_no_agents_until_attached():
    table = JobTable(UNREACHABLE, None, CpuLoad(sampler=lambda: 0.0), LoadPolicy())  # type: ignore[arg-type]
    assert table._agents.names() == [] and table._agents.get("a") is None


async def test_versions_share_one_registration_and_change_one_by_one(make_agent):
    agents = AgentSet(UNREACHABLE, NoJobs(), ProcessSettings())  # type: ignore[arg-type]
    v1 = make_agent("processes: {idle: 0}\nversion: v1\nweight: 9\n", name="bot")
    v2 = make_agent("processes: {idle: 0}\nversion: v2\nweight: 1\n", name="bot")
    agents.add(v1)
    agents.add(v2)
    try:
        [before] = list(agents)
        assert [v.key for v in before.versions] == ["bot@v1", "bot@v2"] and len(agents) == 1
        assert sorted(agents.definitions()) == ["bot@v1", "bot@v2"]
        # v2's weight changes, v1 goes, v3 comes: one plan, by key
        new_v2 = make_agent("processes: {idle: 0}\nversion: v2\nweight: 5\n", name="bot")
        v3 = make_agent("processes: {idle: 0}\nversion: v3\nweight: 5\n", name="bot")
        change = plan(agents.definitions(), [new_v2, v3])
        assert change.summary() == "added bot@v3; changed bot@v2 (weight); removed bot@v1"
        agents.apply(change, {})
        [after] = list(agents)
        assert [v.key for v in after.versions] == ["bot@v2", "bot@v3"]
        assert after.worker is before.worker  # still one registration, never re-registered
        assert after.version(new_v2).pool is before.versions[1].pool  # a weight is no reason for new processes
        assert after.version(new_v2).definition.weight == 5
        # every version gone: the agent and its registration go too
        agents.apply(plan(agents.definitions(), []), {})
        assert len(agents) == 0
        await closed(before.worker)
    finally:
        await agents.close()


async def test_an_agent_given_its_first_versions_keeps_its_registration(make_agent):
    """`bot` becomes `bot@v1` and `bot@v2` (and back): every version replaced in one reload, the name keeps its
    one registration, so its running jobs keep the worker that reports their end."""
    agents = AgentSet(UNREACHABLE, NoJobs(), ProcessSettings())  # type: ignore[arg-type]
    agents.add(make_agent("processes: {idle: 0}\n", name="bot"))
    try:
        [before] = list(agents)
        v1 = make_agent("processes: {idle: 0}\nversion: v1\nweight: 9\n", name="bot")
        v2 = make_agent("processes: {idle: 0}\nversion: v2\nweight: 1\n", name="bot")
        change = plan(agents.definitions(), [v1, v2])
        assert change.summary() == "added bot@v1, bot@v2; removed bot"
        agents.apply(change, {})
        [versioned] = list(agents)
        assert [v.key for v in versioned.versions] == ["bot@v1", "bot@v2"]
        assert versioned.worker is before.worker and not before.worker.closed
        agents.apply(plan(agents.definitions(), [make_agent("processes: {idle: 0}\n", name="bot")]), {})
        [after] = list(agents)
        assert after.worker is before.worker and not before.worker.closed and after.definition.version is None
        # registered otherwise (now dispatched automatically): a new registration, the old one closed
        agents.apply(plan(agents.definitions(), [make_agent("processes: {idle: 0}\nversion: v3\n"
                                                            "dispatch: automatic\n", name="bot")]), {})
        [automatic] = list(agents)
        assert automatic.worker is not before.worker
        await closed(before.worker)
    finally:
        await agents.close()
