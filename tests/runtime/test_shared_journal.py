"""The journal shared in Redis (a real redis-server): a host's jobs are claimed once its lease is gone,
each by exactly one host, never when they were ending; Redis unreachable is said and nothing breaks."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

import pytest

from host.runtime import shared_journal
from host.runtime.journal import Entry
from host.runtime.shared_journal import SharedJournal
from host.testing.harness import RedisServer

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server (scripts/setup.sh)")


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path, port=6391)
    server.start()
    yield f"redis://{server.address}/0"
    server.stop()


def fast(monkeypatch) -> None:
    """Leases of a second, renewed three times in it (a lease must not lapse between two renewals)."""
    monkeypatch.setattr(shared_journal, "LEASE", 1.0)
    monkeypatch.setattr(shared_journal, "RENEW", 0.3)
    monkeypatch.setattr(shared_journal, "SCAN", 0.3)


def entry(job_id: str, agent: str = "a") -> Entry:
    return Entry(job_id, agent, f"room-{job_id}", "AD_1", "{}", f"agent-{job_id}", "ws://s", 1, 1, 1.0)


async def until(condition, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def test_a_lost_hosts_jobs_are_claimed_once_by_the_survivors(redis, monkeypatch):
    import redis.asyncio as aioredis

    fast(monkeypatch)
    lost, b, c = SharedJournal(redis, "t1:"), SharedJournal(redis, "t1:"), SharedJournal(redis, "t1:")
    lost.host, b.host, c.host = "lost", "b", "c"
    claimed: dict[str, list[str]] = {"b": [], "c": []}
    scans = {"b": 0, "c": 0}  # each survivor's looks at the other hosts (it asks for its agents before each)

    def agents_of(name: str):
        def agents() -> set[str]:
            scans[name] += 1
            return {"a"}
        return agents

    async def scanned_twice_more() -> None:
        at = dict(scans)
        await until(lambda: all(scans[n] >= at[n] + 2 for n in at))  # one whole look after this point, each

    runs = [asyncio.ensure_future(lost.run(lambda: {"a"}, lambda e: None, lambda j, h: None))]
    lost.add(entry("AJ_1"))
    lost.add(entry("AJ_2"))
    lost.add(entry("AJ_3"))
    lost.ending("AJ_3")  # asked to end: never taken over
    lost.add(entry("AJ_4", agent="other"))  # an agent b and c do not serve
    client = aioredis.from_url(redis)
    try:
        async def written() -> bool:
            return await client.hlen("t1:jobs:lost") == 4 and bool(await client.exists("t1:lease:lost"))
        for _ in range(300):  # written, and the lease held
            if await written():
                break
            await asyncio.sleep(0.05)
        assert await written()
    finally:
        await client.aclose()
    for journal, name in ((b, "b"), (c, "c")):
        runs.append(asyncio.ensure_future(journal.run(
            agents_of(name), lambda e, name=name: claimed[name].append(e.job_id), lambda j, h: None)))
    await scanned_twice_more()
    assert claimed == {"b": [], "c": []}  # the lost host's lease is alive: nothing is taken
    runs[0].cancel()  # the host is lost (its lease removed at once here; expiry otherwise)
    await until(lambda: len(claimed["b"]) + len(claimed["c"]) == 2)
    await scanned_twice_more()
    assert sorted(claimed["b"] + claimed["c"]) == ["AJ_1", "AJ_2"]  # each once, by one of them
    for run in runs[1:]:
        run.cancel()
    await asyncio.gather(*runs, return_exceptions=True)


async def test_a_call_claimed_by_a_host_lost_before_it_settled_it_is_taken_over_by_the_next(redis, monkeypatch):
    import redis.asyncio as aioredis

    fast(monkeypatch)
    lost, b, c = SharedJournal(redis, "t5:"), SharedJournal(redis, "t5:"), SharedJournal(redis, "t5:")
    lost.host, b.host, c.host = "lost", "b", "c"
    claimed: dict[str, list[str]] = {"b": [], "c": []}
    scans = {"c": 0}

    def c_agents() -> set[str]:
        scans["c"] += 1
        return {"a"}

    client = aioredis.from_url(redis)
    runs = [asyncio.ensure_future(lost.run(lambda: {"a"}, lambda e: None, lambda j, h: None))]
    try:
        lost.add(entry("AJ_1"))
        lost.add(entry("AJ_2"))
        for _ in range(300):
            if await client.hlen("t5:jobs:lost") == 2:
                break
            await asyncio.sleep(0.05)
        runs.append(asyncio.ensure_future(b.run(lambda: {"a"}, lambda e: claimed["b"].append(e.job_id),
                                                lambda j, h: None)))
        runs[0].cancel()  # lost: b claims both, and holds them under its own hash until each is settled
        await until(lambda: len(claimed["b"]) == 2)
        assert sorted(k.decode() for k in await client.hkeys("t5:jobs:b")) == ["AJ_1", "AJ_2"]
        assert not await client.exists("t5:jobs:lost")
        b.remove("AJ_2")  # settled
        for _ in range(300):
            if await client.hlen("t5:jobs:b") == 1:
                break
            await asyncio.sleep(0.05)
        runs.append(asyncio.ensure_future(c.run(c_agents, lambda e: claimed["c"].append(e.job_id),
                                                lambda j, h: None)))
        await until(lambda: scans["c"] >= 8)  # b is alive: its claims are its own
        assert claimed["c"] == []
        runs[1].cancel()  # b lost too, before AJ_1 was settled: its claim lapses with its lease
        await until(lambda: claimed["c"] == ["AJ_1"])
        at = scans["c"]
        await until(lambda: scans["c"] >= at + 3)
        assert claimed["c"] == ["AJ_1"]  # once; the settled one never comes back
        assert (await client.get("t5:claim:AJ_1")) == b"c"
    finally:
        await client.aclose()
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


async def test_a_claimed_call_is_recovered_by_its_claimer_alone(redis, monkeypatch):
    import redis.asyncio as aioredis

    fast(monkeypatch)
    c = SharedJournal(redis, "t6:")
    c.host = "c"
    taken: list[str] = []
    client = aioredis.from_url(redis)
    run = None
    try:
        # rows a lost host "x" left of calls already claimed: by "b", whose lease is there (it holds them), and
        # by "c" itself (it holds, or settled, them): dropped, never taken over a second time
        await client.set("t6:lease:b", "1", px=60_000)
        await client.set("t6:claim:AJ_1", "b")
        await client.set("t6:claim:AJ_2", "c")
        await client.sadd("t6:hosts", "x")
        for job_id in ("AJ_1", "AJ_2", "AJ_3"):
            await client.hset("t6:jobs:x", job_id, shared_journal._dump(entry(job_id), False))
        run = asyncio.ensure_future(c.run(lambda: {"a"}, lambda e: taken.append(e.job_id), lambda j, h: None))
        await until(lambda: taken == ["AJ_3"])
        for _ in range(300):  # the lost host forgotten once its rows are gone
            if not await client.sismember("t6:hosts", "x"):
                break
            await asyncio.sleep(0.05)
        assert not await client.exists("t6:jobs:x") and not await client.sismember("t6:hosts", "x")
        assert taken == ["AJ_3"] and await client.get("t6:claim:AJ_3") == b"c"
        assert await client.hexists("t6:jobs:c", "AJ_3")  # held here until its recovery is settled
        assert await c.holds("AJ_3") and not await c.holds("AJ_1") and not await c.holds("AJ_9")  # no claim
        # a host back from a pause just as its job is moved keeps it: the move checks its lease again
        await client.set("t6:lease:y", "1", px=60_000)
        await client.hset("t6:jobs:y", "AJ_5", shared_journal._dump(entry("AJ_5"), False))
        assert await client.eval(shared_journal.MOVE, 4, "t6:lease:y", "t6:claim:AJ_5", "t6:jobs:y", "t6:jobs:c",
                                 "c", 60_000, "t6:lease:", "AJ_5", "{}") == -1
        assert await client.hexists("t6:jobs:y", "AJ_5") and not await client.exists("t6:claim:AJ_5")
        await client.sadd("t6:hosts", "y")
        assert await client.eval(shared_journal.FORGET, 3, "t6:lease:y", "t6:jobs:y", "t6:hosts", "y") == 0
        assert await client.sismember("t6:hosts", "y")
        # a move whose answer was lost: its row is under this host, claimed here, unknown to it: taken over
        await client.set("t6:claim:AJ_6", "c")
        await client.hset("t6:jobs:c", "AJ_6", shared_journal._dump(entry("AJ_6"), False))
        await until(lambda: taken == ["AJ_3", "AJ_6"])
        # a call put back after another host claimed it is that host's: not written back here
        c.put_back(entry("AJ_1"))
        c.put_back(entry("AJ_4"))
        for _ in range(300):
            if await client.hexists("t6:jobs:c", "AJ_4"):
                break
            await asyncio.sleep(0.05)
        assert not await client.hexists("t6:jobs:c", "AJ_1")
        # a host forgotten while its lease had lapsed is named again at its next renewal
        await client.srem("t6:hosts", "c")
        for _ in range(300):
            if await client.sismember("t6:hosts", "c"):
                break
            await asyncio.sleep(0.05)
        assert await client.sismember("t6:hosts", "c")
    finally:
        await client.aclose()
        if run is not None:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)


async def test_redis_unreachable_is_said_and_nothing_breaks():
    journal = SharedJournal("redis://127.0.0.1:9/0", "t2:")
    journal.add(entry("AJ_1"))  # queued: the job table never waits
    run = asyncio.ensure_future(journal.run(lambda: {"a"}, lambda e: None, lambda j, h: None))
    await until(lambda: journal.error is not None)
    assert "Error" in journal.error
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def test_the_journal_stops_when_cancelled_even_if_a_redis_call_swallowed_the_cancellation(monkeypatch):
    journal = SharedJournal("redis://127.0.0.1:9/0", "t9:")
    renewing = asyncio.Event()

    async def swallowing(self) -> bool:  # as redis-py's client sometimes does, on Python 3.11
        renewing.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        return True

    monkeypatch.setattr(SharedJournal, "_renew", swallowing)
    run = asyncio.ensure_future(journal.run(lambda: {"a"}, lambda e: None, lambda j, h: None))
    await asyncio.wait_for(renewing.wait(), 10)
    run.cancel()
    await asyncio.wait_for(asyncio.gather(run, return_exceptions=True), 10)  # ended, not looping on
    assert run.cancelled()


async def test_a_retry_written_by_one_host_is_read_by_another_until_it_is_forgotten(redis):
    import time

    from host.runtime.journal import Retry

    here, there = SharedJournal(redis, "t3:"), SharedJournal(redis, "t3:")
    writes = asyncio.ensure_future(there.run(lambda: set(), lambda e: None, lambda j, h: None))  # sends its writes
    try:
        retry = Retry("a", "room: 1", "v1", 2, time.time() + 15)
        await here.note_retry(retry)
        assert await there.retry_of("a", "room: 1") == retry
        assert await there.retry_of("a", "room") is None and await there.retry_of("b", "room: 1") is None
        there.forget_retry("a", "room: 1")
        await until_async(lambda: there.retry_of("a", "room: 1"), None)
        short = Retry("a", "r2", "v1", 1, time.time() + 1.0)
        await here.note_retry(short)
        assert await there.retry_of("a", "r2") == short
        await until_async(lambda: there.retry_of("a", "r2"), None)  # its time runs out in Redis too
    finally:
        writes.cancel()
        await asyncio.gather(writes, return_exceptions=True)


async def until_async(read, expected, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await read() == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {expected!r}")


@pytest.mark.parametrize("persisted", [True, False], ids=["redis-keeps-its-data", "redis-loses-its-data"])
async def test_a_redis_restart_takes_no_call_from_a_live_host_and_loses_none(tmp_path, monkeypatch, persisted):
    """Redis is down longer than a lease: every lease is gone when it is back, which says nothing of the hosts.
    A host back first claims nothing from one that renews a moment later; where Redis lost its data, that
    host writes its jobs again, and they are taken over when it is really lost."""
    import redis.asyncio as aioredis

    fast(monkeypatch)
    server = RedisServer(tmp_path, port=6392)
    server.start()
    url = f"redis://{server.address}/0"
    a, b = SharedJournal(url, "t5:"), SharedJournal(url, "t5:")
    a.host, b.host = "a", "b"
    claimed: list[str] = []
    scans = [0]

    def agents() -> set[str]:
        scans[0] += 1
        return {"a"}

    run_a = asyncio.ensure_future(a.run(agents, lambda e: claimed.append(e.job_id), lambda j, h: None))
    run_b = asyncio.ensure_future(b.run(lambda: {"a"}, lambda e: None, lambda j, h: None))
    client = aioredis.from_url(url)
    try:
        b.add(entry("AJ_1"))
        await until_async(lambda: client.hlen("t5:jobs:b"), 1)
        kept = (await client.hgetall("t5:jobs:b"), await client.smembers("t5:hosts"))
        server.stop()
        await until(lambda: a.error is not None)
        run_b.cancel()  # b reconnects later than a
        await asyncio.gather(run_b, return_exceptions=True)
        server.start()
        if persisted:  # as Redis reloads its data: the hosts and their jobs, without the leases that expired
            await client.hset("t5:jobs:b", mapping=kept[0])
            await client.sadd("t5:hosts", *kept[1])
        await until(lambda: a.error is None)
        await asyncio.sleep(1.0)
        run_b = asyncio.ensure_future(b.run(lambda: {"a"}, lambda e: None, lambda j, h: None))
        await until_async(lambda: client.exists("t5:lease:b"), 1)
        await until_async(lambda: client.hlen("t5:jobs:b"), 1)  # written again where Redis lost it
        at = scans[0]
        await until(lambda: scans[0] >= at + 2, timeout=30)  # a looked at the hosts since b is back
        assert claimed == []
        run_b.cancel()  # b is lost now (its lease removed at once here)
        await until(lambda: claimed == ["AJ_1"])
    finally:
        for run in (run_a, run_b):
            run.cancel()
        await asyncio.gather(run_a, run_b, return_exceptions=True)
        await client.aclose()
        server.stop()


def test_a_redis_url_that_is_not_one_is_refused_with_what_to_give():
    from host.errors import AgentHostError

    with pytest.raises(AgentHostError, match=r"--redis localhost:6379: .*give redis://"):
        SharedJournal("localhost:6379")
    with pytest.raises(AgentHostError, match=r"--redis redis://\*\*\*@h:notaport/0: Port could not be cast"):
        SharedJournal("redis://user:pw@h:notaport/0")  # its password not shown


async def test_a_draining_host_takes_over_no_call(redis, monkeypatch, tmp_path):
    import redis.asyncio as aioredis
    from livekit.protocol import agent as agent_pb

    from host.config.credentials import Credentials
    from host.config.loader import load
    from host.runtime.host import Host, HostOptions

    fast(monkeypatch)
    looked_for: list[set[str]] = []  # the agents the host claims calls of, at each look at the lost hosts
    scan = SharedJournal._scan

    async def counted(self, agents, take_over):
        looked_for.append(set(agents))
        await scan(self, agents, take_over)
    monkeypatch.setattr(SharedJournal, "_scan", counted)
    (tmp_path / "mod.py").write_text("async def entrypoint(ctx):\n    pass\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: mod.py:entrypoint\nprocesses: {idle: 0}\n")
    catalog = load([str(tmp_path)], check_imports=False).require_ok()
    host = Host(catalog, Credentials("ws://127.0.0.1:9", "k", "s" * 32),
                HostOptions(drain_timeout=60, redis_url=redis, redis_prefix="t7:"))
    client = aioredis.from_url(redis)
    run = asyncio.create_task(host.run())
    try:
        await until(lambda: host.agents.get("a") is not None)
        request = agent_pb.AvailabilityRequest(job=agent_pb.Job(id="AJ_9", room={"name": "r"}))
        await host.jobs.on_offer(host.agents.get("a").worker, request)  # accepted, never assigned: a long drain
        host.request_stop()
        await until(lambda: host.jobs.draining)
        await client.sadd("t7:hosts", "x")  # a host lost while this one drains
        await client.hset("t7:jobs:x", "AJ_1", shared_journal._dump(entry("AJ_1"), False))
        seen = len(looked_for)
        await until(lambda: len(looked_for) >= seen + 2)  # a whole look since the lost host's row was written
        assert not run.done() and all(agents == set() for agents in looked_for[seen:])
        assert await client.hexists("t7:jobs:x", "AJ_1") and not await client.exists("t7:claim:AJ_1")  # left
    finally:
        host.request_stop()  # a second signal: stop at once
        await asyncio.wait_for(run, 10)
        await client.aclose()


async def test_a_call_a_draining_host_claimed_is_handed_over_to_another_host_at_once(redis, monkeypatch):
    import redis.asyncio as aioredis

    fast(monkeypatch)
    d, e = SharedJournal(redis, "t8:"), SharedJournal(redis, "t8:")
    d.host, e.host = "d", "e"
    taken: dict[str, list[str]] = {"d": [], "e": []}
    client = aioredis.from_url(redis)
    await client.sadd("t8:hosts", "x")
    await client.hset("t8:jobs:x", "AJ_1", shared_journal._dump(entry("AJ_1"), False))
    # d still looks for calls of its agent (a look begun before it drained does): it never takes back what it
    # handed over
    runs = [asyncio.ensure_future(d.run(lambda: {"a"}, lambda en: taken["d"].append(en.job_id), lambda j, h: None))]
    try:
        await until(lambda: taken["d"] == ["AJ_1"])
        runs.append(asyncio.ensure_future(e.run(lambda: {"a"}, lambda en: taken["e"].append(en.job_id),
                                                lambda j, h: None)))
        d.hand_over(entry("AJ_1"))  # d drains: the call goes to any host now, d's lease still there
        await until(lambda: taken["e"] == ["AJ_1"])
        assert await client.exists("t8:lease:d") and await client.get("t8:claim:AJ_1") == b"e"
        assert await client.hexists("t8:jobs:e", "AJ_1") and not await client.hexists("t8:jobs:d", "AJ_1")
        assert not await d.holds("AJ_1") and taken["d"] == ["AJ_1"]
        for _ in range(300):  # the hand-over's own hash forgotten once taken
            if not await client.sismember("t8:hosts", "d~left"):
                break
            await asyncio.sleep(0.05)
        assert not await client.exists("t8:jobs:d~left") and not await client.sismember("t8:hosts", "d~left")
    finally:
        await client.aclose()
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


async def test_a_call_handed_over_is_not_adopted_back_before_the_hand_over_is_written(redis):
    import redis.asyncio as aioredis

    d = SharedJournal(redis, "t9:")
    d.host = "d"
    client = aioredis.from_url(redis)
    taken: list[str] = []
    try:
        # d claimed AJ_1 and holds it under its own hash; it drains: the hand-over is queued, not sent yet
        await client.set("t9:claim:AJ_1", "d")
        await client.hset("t9:jobs:d", "AJ_1", shared_journal._dump(entry("AJ_1"), False))
        d.hand_over(entry("AJ_1"))
        await d._adopt(lambda en: taken.append(en.job_id))
        assert taken == [] and d._writes.qsize() == 1  # the row is still there, the write still queued
        op, args = d._writes.get_nowait()
        await getattr(d._redis, op)(*args)  # the hand-over reaches Redis
        await d._adopt(lambda en: taken.append(en.job_id))
        assert taken == [] and await client.hexists("t9:jobs:d~left", "AJ_1")
        assert not await client.exists("t9:claim:AJ_1")
    finally:
        await client.aclose()
        await d.disconnect()
