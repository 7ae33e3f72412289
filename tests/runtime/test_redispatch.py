"""What an offer learns of a call this host dispatched again, and when a crashed job's call is taken up."""

from __future__ import annotations

import asyncio
import logging

from host.config.credentials import Credentials
from host.config.loader import load
from host.ops.metrics import Metrics
from host.runtime.accepted import JobFacts, NoAgents
from host.runtime.journal import Entry, Journal
from host.runtime.redispatch import Redispatch
from host.wire.messages import Participant

UNREACHABLE = Credentials("ws://127.0.0.1:9", "k", "s" * 32)
ENTRY = Entry("AJ_1", "a", "room-1", "AD_1", "", "agent-AJ_1", "ws://127.0.0.1:9", 1, 1, 1.0)


def facts(tmp_path, recovery: str = "{}") -> JobFacts:
    (tmp_path / "a.yaml").write_text(f"name: a\nentrypoint: m:f\nrecovery: {recovery}\n")
    d = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    return JobFacts("AJ_1", "a", "room-1", "AD_1", d, None, None,  # type: ignore[arg-type]
                    Participant("agent-AJ_1", "", "", ()))


async def test_a_recovery_is_known_to_the_next_offer_of_its_call_only():
    redispatch = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False)
    await redispatch.expect_recovery("a", "room-1", ENTRY)
    assert redispatch.accepted("a", "room-2", None) == (None, 0)
    assert redispatch.accepted("a", "room-1", None) == ("AJ_1", 1)  # the call's first job, its next attempt
    assert redispatch.accepted("a", "room-1", None) == (None, 0)  # once
    await redispatch.expect_recovery("a", "room-1", ENTRY)
    await redispatch.expect_recovery("a", "room-1", None)  # its dispatch failed: it will not come
    assert redispatch.accepted("a", "room-1", None) == (None, 0)


async def test_a_recovery_told_through_a_redis_journal_is_known_to_the_host_that_gets_its_offer(tmp_path):
    import shutil

    import pytest

    from host.runtime.shared_journal import SharedJournal
    from host.testing.harness import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server (scripts/setup.sh)")
    server = RedisServer(tmp_path, port=6393)
    server.start()
    try:
        url = f"redis://{server.address}/0"
        journals = [SharedJournal(url, "r1:"), SharedJournal(url, "r1:")]
        here, there = (Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False, j) for j in journals)
        taken_over = Entry("AJ_2", "a", "room-1", "AD_1", "", "agent-AJ_2", "ws://s", 1, 1, 1.0, attempt=1,
                           recovery_of="AJ_1")
        await here.expect_recovery("a", "room-1", taken_over)  # before its dispatch: any host may get the offer
        told = await there.retry_of("a", "room-1", versions=1)  # one version: looked up all the same
        assert told is not None and told.version == ""
        assert there.accepted("a", "room-1", told) == ("AJ_1", 2)  # the call's first job; its third attempt
        for _ in range(200):  # taken: forgotten for every host
            if await here.retry_of("a", "room-1", versions=1) is None:
                break
            await asyncio.sleep(0.01)
        assert await there.retry_of("a", "room-1", versions=1) is None
        await here.expect_recovery("a", "room-2", taken_over)
        await here.expect_recovery("a", "room-2", None)  # its dispatch failed: no host takes it for a recovery
        for _ in range(200):
            if await there.retry_of("a", "room-2", versions=1) is None:
                break
            await asyncio.sleep(0.01)
        assert await there.retry_of("a", "room-2", versions=1) is None
        for journal in journals:
            await journal.disconnect()
    finally:
        server.stop()


def versioned_failure(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    """A job of version v1 that failed before it joined, on its call's second attempt."""
    from dataclasses import replace

    versioned = tmp_path / "versioned"
    versioned.mkdir()
    (versioned / "v1.yaml").write_text("name: a\nversion: v1\nentrypoint: m:f\n")
    d = load([str(versioned)], check_imports=False).require_ok().agents[0]
    return replace(facts(tmp_path), definition=d, attempt=1)


async def no_server(*_args):
    return "AD_2"


async def test_a_retry_on_another_version_counts_as_an_attempt_of_the_call(tmp_path, monkeypatch):
    import host.runtime.redispatch as module

    monkeypatch.setattr(module, "create_dispatch", no_server)
    redispatch = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False)
    redispatch.retry(versioned_failure(tmp_path))
    retry = await redispatch.retry_of("a", "room-1", versions=2)
    assert retry is not None and (retry.version, retry.attempt) == ("v1", 2)
    assert redispatch.accepted("a", "room-1", retry) == (None, 2)  # so a call that keeps failing meets max_attempts
    assert await redispatch.retry_of("a", "room-1", versions=2) is None  # taken
    from dataclasses import replace
    redispatch.retry(replace(versioned_failure(tmp_path / "again"), recovery_of="AJ_0"))  # a recovery's job
    retry = await redispatch.retry_of("a", "room-1", versions=2)
    assert retry is not None and redispatch.accepted("a", "room-1", retry) == ("AJ_0", 2)  # still that call's


async def test_a_retry_is_known_to_another_host_sharing_the_journal_until_its_offer_is_taken(tmp_path, monkeypatch):
    import asyncio

    import host.runtime.redispatch as module

    monkeypatch.setattr(module, "create_dispatch", no_server)
    state = tmp_path / "state"
    here = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False, Journal(state))
    there = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False, Journal(state))  # another host's
    here.retry(versioned_failure(tmp_path))
    retry = None
    for _ in range(200):  # written by the retry's task, before its dispatch
        retry = await there.retry_of("a", "room-1", versions=2)
        if retry is not None:
            break
        await asyncio.sleep(0.01)
    assert retry is not None and (retry.version, retry.attempt) == ("v1", 2)
    assert await there.retry_of("a", "room-1", versions=1) is None  # one version: nothing to avoid, not looked up
    assert await there.retry_of("a", "room-2", versions=2) is None  # another call
    assert there.accepted("a", "room-1", retry) == (None, 2)
    for _ in range(200):  # its offer was taken: forgotten by every host, this one's own memory too
        if await here.retry_of("a", "room-1", versions=2) is None:
            break
        await asyncio.sleep(0.01)
    assert await here.retry_of("a", "room-1", versions=2) is None
    assert await there.retry_of("a", "room-1", versions=2) is None


async def test_a_crashed_call_is_taken_up_only_when_the_agent_says_so_and_the_host_is_not_draining(tmp_path, caplog):
    draining = False
    redispatch = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: draining)
    with caplog.at_level(logging.INFO, "agenthost.host"):
        redispatch.crashed(facts(tmp_path))
        assert "dispatched again" not in caplog.text  # on_crash is off by default
        draining = True
        redispatch.crashed(facts(tmp_path, "{on_crash: redispatch}"))
        assert "dispatched again" not in caplog.text
        draining = False
        redispatch.crashed(facts(tmp_path, "{on_crash: redispatch, crash_backoff: 2s}"))
    assert "job process died: its call is dispatched again in 2s (recovery.on_crash)" in caplog.text


class Ledger:
    """A journal that says what happened, in order; `broken` fails every retry read and write."""

    def __init__(self, broken: bool = False, unwritable: bool = False) -> None:
        self.broken, self.unwritable, self.said, self.error = broken, unwritable, [], None

    async def note_retry(self, retry) -> None:
        if self.broken or self.unwritable:
            raise OSError("disk full")
        self.said.append(("noted", retry.version))

    async def retry_of(self, agent, room):
        if self.broken:
            raise OSError("disk full")
        return None

    def forget_retry(self, agent, room) -> None:
        self.said.append(("forgot", room))


async def test_a_retry_is_in_the_journal_before_its_dispatch_and_a_broken_journal_leaves_this_hosts_memory(
        tmp_path, monkeypatch, caplog):
    import asyncio

    import host.runtime.redispatch as module

    ledger = Ledger()

    async def dispatch(*_args):
        ledger.said.append(("dispatched", None))
        return "AD_2"

    monkeypatch.setattr(module, "create_dispatch", dispatch)
    redispatch = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False, ledger)  # type: ignore[arg-type]
    redispatch.retry(versioned_failure(tmp_path))
    for _ in range(200):
        if ("dispatched", None) in ledger.said:
            break
        await asyncio.sleep(0.01)
    assert ledger.said == [("noted", "v1"), ("dispatched", None)]  # any host may take its offer at once
    assert await redispatch.retry_of("a", "room-1", versions=2) is None  # the journal's word: taken elsewhere

    broken = Ledger(broken=True)
    redispatch = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False, broken)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "agenthost.host"):
        redispatch.retry(versioned_failure(tmp_path / "again"))
        for _ in range(200):
            if ("dispatched", None) in ledger.said[2:]:
                break
            await asyncio.sleep(0.01)
    assert ledger.said[2:] == [("dispatched", None)]  # dispatched all the same
    assert "the journal could not be told of the retry (disk full)" in caplog.text
    retry = await redispatch.retry_of("a", "room-1", versions=2)  # what this host knows, then
    assert retry is not None and retry.version == "v1"

    # a journal that could not be written but can be read knows nothing of this host's retry: its own memory wins
    unwritable = Ledger(unwritable=True)
    redispatch = Redispatch(UNREACHABLE, Metrics(), NoAgents, lambda: False, unwritable)  # type: ignore[arg-type]
    redispatch.retry(versioned_failure(tmp_path / "third"))
    for _ in range(200):
        if len(ledger.said) >= 4:
            break
        await asyncio.sleep(0.01)
    retry = await redispatch.retry_of("a", "room-1", versions=2)
    assert retry is not None and retry.version == "v1"
