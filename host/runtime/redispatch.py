"""Calls this host dispatches again, and the offers that come of it.

- A versioned agent's job that failed before it joined its call: the call is dispatched again, and its next
  offer avoids the version that failed (`retry`, `retry_of`), on this host or on any other that shares its
  journal (the state directory's, or Redis): the journal holds the retry until its offer is taken.
- A job whose process died (a signal, the memory limit) with `recovery.on_crash: redispatch`: after a backoff
  the call gets its agent again by the recovery's checks (`crashed`, host.runtime.recovery).
- A call of a host that died, recovered here: its next offer is known to be that call's (`expect_recovery`),
  so its job can tell; with a Redis journal, on whichever host takes the offer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from host.aio import TaskSet
from host.config.credentials import Credentials
from host.ops.metrics import Metrics
from host.runtime.accepted import AgentLookup, JobFacts
from host.runtime.dispatching import create_dispatch
from host.runtime.journal import Entry, JobJournal, Retry
from host.runtime.recovery import CRASH, Recoverer, crash_backoff

logger = logging.getLogger("agenthost.host")

RETRY_WAIT = 15.0  # a retried call's offer comes within this, or another host took it
JOURNAL_BOUND = 0.5  # an offer, or a retry's dispatch, waits at most this for the journal's word on a retry


class Redispatch:
    def __init__(self, credentials: Credentials, metrics: Metrics, agents: Callable[[], AgentLookup],
                 draining: Callable[[], bool], journal: JobJournal | None = None) -> None:
        self._credentials = credentials
        self._journal = journal
        self._agents = agents
        self._draining = draining
        self._tasks = TaskSet("redispatch")
        # (agent, room) -> the retry this host dispatched: the version its last job failed on, and the attempt
        # its next job is of the call
        self._retries: dict[tuple[str, str], Retry] = {}
        self._unshared: set[tuple[str, str]] = set()  # retries the journal could not be told of
        # (agent, room) -> the job whose call is taken over (with a mark of this expectation, for its expiry)
        self._recoveries: dict[tuple[str, str], tuple[Entry, object]] = {}
        self._recoverer = Recoverer(credentials, self.expect_recovery, metrics, None)

    # -- what an offer learns ----------------------------------------------------------------------
    async def retry_of(self, agent: str, room: str, versions: int) -> Retry | None:
        """The retry an offer of this call is, while it is on its way: one this host dispatched, or, for an agent
        with several versions (or any agent, with a journal shared in Redis: a call taken over by another
        host), one another host sharing the journal did (bounded by JOURNAL_BOUND: a journal that does not
        answer leaves the offer as it is)."""
        if versions < 2 and (self._journal is None or not self._journal.shared):
            return None  # one version: nothing to avoid, and a recovery's offer comes to its own host
        local = self._retries.get((agent, room))
        if self._journal is None or self._journal.error is not None or (agent, room) in self._unshared:
            return local  # the journal does not know of this host's retry
        try:  # the journal's word wins: another host may have taken this host's retry already
            return await asyncio.wait_for(self._journal.retry_of(agent, room), JOURNAL_BOUND)
        except Exception as exc:
            logger.debug("the journal did not say whether this call is a retry: %s", exc,
                         extra={"agent": agent, "room": room})
            return local

    def accepted(self, agent: str, room: str, retry: Retry | None) -> tuple[str | None, int]:
        """An offer of this call (the retry `retry`, if it is one) was accepted: the first job of the call it
        recovers, if it is a recovery (one this host dispatched, or another host sharing a Redis journal), and
        how many times the call was given its agent again before (retries on another version and recoveries
        together: one bound, recovery.max_attempts, holds for both)."""
        self._retries.pop((agent, room), None)
        self._unshared.discard((agent, room))
        if retry is not None and self._journal is not None:
            self._journal.forget_retry(agent, room)
        expected = self._recoveries.pop((agent, room), None)
        if expected is not None:
            return expected[0].recovery_of or expected[0].job_id, expected[0].attempt + 1
        if retry is not None:
            return retry.recovery_of, retry.attempt
        return None, 0

    async def expect_recovery(self, agent: str, room: str, entry: Entry | None) -> None:
        """The next offer of `agent` in `room` takes over the call of `entry` (None: it will not come: its
        dispatch failed). Forgotten after RETRY_WAIT: another host may have taken the offer, and a later call
        in that room is not this one. With a Redis journal, told to every host before the dispatch (any may
        get its offer; bounded by JOURNAL_BOUND)."""
        key = (agent, room)
        shared = self._journal is not None and self._journal.shared
        if entry is None:
            self._recoveries.pop(key, None)
            if shared and self._journal is not None:
                self._journal.forget_retry(agent, room)
            return
        mark = object()
        self._recoveries[key] = (entry, mark)

        def forget() -> None:
            if self._recoveries.get(key, (None, None))[1] is mark:
                del self._recoveries[key]

        asyncio.get_running_loop().call_later(RETRY_WAIT, forget)
        if shared and self._journal is not None and self._journal.error is None:
            told = Retry(agent, room, "", entry.attempt + 1, time.time() + RETRY_WAIT,
                         entry.recovery_of or entry.job_id)
            try:
                await asyncio.wait_for(self._journal.note_retry(told), JOURNAL_BOUND)
            except Exception as exc:  # the offer may then come to another host as a new call: said, not fatal
                logger.warning("the shared journal was not told of this recovery (a host other than this one "
                               "taking its offer will not know it): %s", exc, extra={"agent": agent, "room": room})

    # -- after a job ended -----------------------------------------------------------------------------
    def retry(self, facts: JobFacts) -> None:
        """Dispatch the call of `facts`, whose job failed on its version before it joined, again: its next
        offer avoids that version."""
        assert facts.version is not None
        key = (facts.agent, facts.room)
        retry = Retry(facts.agent, facts.room, facts.version, facts.attempt + 1, time.time() + RETRY_WAIT,
                      facts.recovery_of)  # a recovery retried on another version is still that call's
        self._retries[key] = retry

        def forget() -> None:  # this retry, not a later one of the same call
            if self._retries.get(key) is retry:
                del self._retries[key]
                self._unshared.discard(key)

        asyncio.get_running_loop().call_later(RETRY_WAIT, forget)
        logger.warning("job failed before it joined its call on version %s: dispatching the call again, on another "
                       "version", facts.version, extra=facts.log_fields)
        self._tasks.spawn(self._dispatch_again(facts, retry), name=f"retry-{facts.id}")

    def crashed(self, facts: JobFacts) -> None:
        """A job whose process died while this host lives: its call gets the agent again, after a backoff, if its
        agent says so (recovery.on_crash) and the call still has a caller and not this agent again."""
        backoff = crash_backoff(facts.definition, facts.attempt)
        if backoff is None or self._draining():
            return
        lost_at = time.time()
        entry = Entry(facts.id, facts.agent, facts.room, facts.dispatch_id, facts.dispatched_metadata,
                      facts.participant.identity, self._credentials.url, 0, 0, facts.accepted_at, facts.attempt,
                      facts.recovery_of)
        logger.info("job process died: its call is dispatched again in %gs (recovery.on_crash), if it still has a "
                    "caller", backoff, extra=facts.log_fields)

        async def later() -> None:
            await asyncio.sleep(backoff)
            if not self._draining():
                await self._recoverer.recover(entry, self._agents(), CRASH, since=lost_at)

        self._tasks.spawn(later(), name=f"crash-{facts.id}")

    async def _dispatch_again(self, facts: JobFacts, retry: Retry) -> None:
        if self._journal is not None:  # before the dispatch: any host may take its offer
            try:
                await asyncio.wait_for(self._journal.note_retry(retry), JOURNAL_BOUND)
            except Exception as exc:
                self._unshared.add((facts.agent, facts.room))
                logger.warning("the journal could not be told of the retry (%s): a host that shares it may start "
                               "the call on version %s again", str(exc) or type(exc).__name__, facts.version,
                               extra=facts.log_fields)
        try:
            await create_dispatch(self._credentials, facts.definition.registered_name, facts.room,
                                  facts.dispatched_metadata)
        except Exception as exc:
            self._retries.pop((facts.agent, facts.room), None)
            if self._journal is not None:
                self._journal.forget_retry(facts.agent, facts.room)
            logger.error("could not dispatch the call again: %s", exc, extra=facts.log_fields)
