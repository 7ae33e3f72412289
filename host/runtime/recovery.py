"""Giving each call of a host that died an agent again, exactly once, and never to a call that ended.

At start, once an agent is registered, the host takes from the journal (host.runtime.journal) the jobs of
hosts that are gone, for the agents it serves, and for each decides from who is in the room now (asked of the
server: `verdict`, a pure function): a room that is gone, has no caller left (no participant that is not an
agent) or already has this agent again gets nothing (other agents in the room are theirs: a room served by
two agents has each given back on its own); otherwise the old agent, if its orphaned process is still in
the room, is removed, and the agent is dispatched to the room again with the same metadata. The job table is
told which dispatch is a recovery of which job, so the new job knows (`ctx.recovery_of`, and its participant
attribute `agenthost.recovery_of`).

A job process that dies while its host lives (a signal, the memory limit) is the same loss, smaller: with
`recovery.on_crash: redispatch` the host gives its call the agent again by the same steps, after a backoff
that doubles with each attempt of the call. `recovery.max_attempts` bounds both together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from livekit import api
from livekit.protocol import models

from host.config.credentials import Credentials
from host.config.definitions import AgentDefinition
from host.ops.metrics import Metrics
from host.runtime.accepted import AgentLookup
from host.runtime.journal import Entry

logger = logging.getLogger("agenthost.host")

REGISTRATION_WAIT = 30.0  # a recovery waits this long at most for its agent to be registered
CONFIRM_WAIT = 8.0  # seconds for the recovering agent to be in the room before the dispatch is made again
DISPATCH_ATTEMPTS = 3
RECOVERY_ATTRIBUTE = "agenthost.recovery_of"
AGENT_NAME_ATTRIBUTE = "lk.agent_name"  # livekit-server names the agent on each dispatched agent's token
MAX_CRASH_BACKOFF = 30.0

HOST_LOSS = "host_loss"  # its host died: another host, or the next one, takes the call over
CRASH = "crash"  # its job process died while its host lived
CRASHES = frozenset({"process_exited", "memory_limit"})  # the outcomes (host.runtime.outcome) that are crashes


@dataclass(frozen=True)
class InRoom:
    identity: str
    agent: bool
    caller: bool  # a person (a client, a phone call), not an agent, a recorder or an ingress
    agent_name: str = ""  # the agent it was dispatched as ("": not said, so it may be any)

    def serves(self, agent_name: str) -> bool:
        """Whether it is (or may be) an agent dispatched as `agent_name`."""
        return self.agent and self.agent_name in ("", agent_name)


@dataclass(frozen=True)
class Verdict:
    dispatch: bool
    reason: str
    remove: tuple[str, ...] = ()  # the old agent, still in the room: its host is gone


def crash_backoff(definition: AgentDefinition, attempt: int) -> float | None:
    """The wait before dispatching again the call of a job of `definition` whose process died, on `attempt`
    (0: the call's first job); None when its agent does not want crashed calls dispatched again."""
    if definition.recovery.on_crash != "redispatch":
        return None
    return min(MAX_CRASH_BACKOFF, definition.recovery.crash_backoff * 2.0 ** min(attempt, 16))


def verdict(entry: Entry, definition: AgentDefinition | None, room: list[InRoom] | None,
            cause: str = HOST_LOSS) -> Verdict:
    """Whether the call of `entry` gets its agent again, from its agent's policy, why its agent was lost (`cause`)
    and who is in its room now (None: the room is gone)."""
    if definition is None:
        return Verdict(False, "its agent is no longer served here")
    if cause == HOST_LOSS and definition.recovery.on_host_loss == "off":
        return Verdict(False, "recovery.on_host_loss is off")
    if cause == CRASH and definition.recovery.on_crash != "redispatch":
        return Verdict(False, "recovery.on_crash is off")
    if entry.attempt >= definition.recovery.max_attempts:
        return Verdict(False, f"given its agent again {entry.attempt} time(s) already (recovery.max_attempts)")
    if room is None:
        return Verdict(False, "the room is gone")
    if not any(p.caller for p in room):
        return Verdict(False, "no caller is left in the room")
    others = [p.identity for p in room if p.serves(definition.registered_name) and p.identity != entry.identity]
    if others:
        return Verdict(False, f"the agent is in the room again: {', '.join(others)}")
    return Verdict(True, "its host is gone" if cause == HOST_LOSS else "its job process died",
                   tuple(p.identity for p in room if p.identity == entry.identity))


class Recoverer:
    def __init__(self, credentials: Credentials, expect: Callable[[str, str, Entry | None], Awaitable[None]],
                 metrics: Metrics, put_back: Callable[[Entry], None] | None,
                 leaving: Callable[[], bool] = lambda: False,
                 hand_over: Callable[[Entry], None] | None = None) -> None:
        self._credentials = credentials
        # the job table: the next offer of (agent, room) is the recovery of this entry (None: no longer)
        self._expect = expect
        self._metrics = metrics
        # the journal: a call that could not be acted on is left to the next host (None: no journal to keep it)
        self._put_back = put_back
        # whether the host is draining: a call it has not dispatched yet, or whose dispatch nobody took, is then
        # handed over to the next host (`hand_over`: at once; else `put_back`: once this one is gone) rather
        # than given up
        self._leaving = leaving
        self._hand_over = hand_over or put_back
        # (agent, room) -> the recovery under way: two rows of one call (a job and the one recovering it, say)
        # are recovered one after the other, so that the second sees the first's agent in the room
        self._under_way: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}  # its lock, and its users

    async def recover(self, entry: Entry, agents: AgentLookup, cause: str = HOST_LOSS,
                      since: float | None = None, holds: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Give `entry`'s call its agent again, if it should have one (once the agent is registered); never
        raises. `since` (time.time()): when its agent was known lost, for the recovery's latency. `holds`:
        whether this host still holds the call (asked before each dispatch: another host may have taken it
        over while this one was paused). False when the call was left to the next host (put back), True when
        it is settled."""
        key = (entry.agent, entry.room)
        lock, users = self._under_way.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                return await self._recover(entry, agents, cause, since, holds)
        except asyncio.CancelledError:  # the host stops (its drain timed out, or a second signal)
            if self._put_back is not None:  # the next host looks at the room again: a dispatch made shows there
                logger.warning("call not recovered here: the host stopped before its recovery settled, the call "
                               "is left to the next host", extra={"agent": entry.agent, "job_id": entry.job_id,
                                                                  "room": entry.room, "cause": cause})
                self._put_back(entry)
            raise
        finally:
            users[0] -= 1
            if not users[0]:
                del self._under_way[key]

    async def _recover(self, entry: Entry, agents: AgentLookup, cause: str, since: float | None,
                       holds: Callable[[], Awaitable[bool]] | None) -> bool:
        fields = {"agent": entry.agent, "job_id": entry.job_id, "room": entry.room, "cause": cause}
        since = time.time() if since is None else since

        def recovered(outcome: str) -> None:
            self._metrics.jobs_recovered.labels(entry.agent, cause, outcome).inc()
        agent = agents.get(entry.agent)
        definition = agent.definition if agent is not None else None
        try:
            deadline = time.monotonic() + REGISTRATION_WAIT
            while (agent is not None and not agent.worker.registered and not self._leaving()
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.05)
            if await self._leave(entry, cause, fields):
                return False
            client = api.LiveKitAPI(self._credentials.http_url, self._credentials.api_key,
                                    self._credentials.api_secret)
            try:
                decided = verdict(entry, definition, await self._room(client, entry.room), cause)
                if not decided.dispatch:
                    logger.info("call not recovered: %s", decided.reason, extra=fields)
                    recovered("skipped")
                    return True
                assert definition is not None
                outcome = "unanswered"  # unless the new agent comes, or a worker took the dispatch
                for attempt in range(1, DISPATCH_ATTEMPTS + 1):
                    if holds is not None and not await holds():
                        logger.warning("call not recovered here: another host took it over meanwhile", extra=fields)
                        recovered("skipped")
                        return True
                    if await self._leave(entry, cause, fields):
                        return False
                    # said before the dispatch: its offer may come before the server's answer does
                    await self._expect(entry.agent, entry.room, entry)
                    request = api.CreateAgentDispatchRequest(agent_name=definition.registered_name,
                                                             room=entry.room, metadata=entry.metadata)
                    try:
                        dispatch = await client.agent_dispatch.create_dispatch(request)
                    except BaseException:
                        await self._expect(entry.agent, entry.room, None)
                        raise
                    # the server drops an offer the worker it chose does not answer (a paused host's, still
                    # connected): the room is asked again until the agent is in it
                    joined = await self._joined(client, entry, definition.registered_name)
                    if joined is not None:
                        if joined:
                            self._metrics.recovery_latency.labels(entry.agent, cause).observe(
                                max(0.0, time.time() - since))
                        # only now is the lost host's agent taken out, if it is still there (its host paused,
                        # or cut off, while the job serves on): the call is never left with none
                        for identity in decided.remove:
                            await self._remove(client, entry.room, identity)
                        outcome = "dispatched"
                        break
                    if await self._taken(client, entry.room, dispatch.id):
                        outcome = "dispatched"
                        break  # on its way, only slow: never dispatched twice; the lost agent leaves when it is in
                    logger.warning("the recovery dispatch %s was not taken within %gs (attempt %d of %d)%s",
                                   dispatch.id, CONFIRM_WAIT, attempt, DISPATCH_ATTEMPTS,
                                   ": dispatching again" if attempt < DISPATCH_ATTEMPTS else
                                   (": the lost host's agent, still in the room, is left to serve the call"
                                    if decided.remove else ""), extra=fields)
            finally:
                await client.aclose()
        except (api.TwirpError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            logger.error("call not recovered%s: the server refused or could not be reached: %s",
                         " now, left to the next host" if self._put_back is not None else "", exc, extra=fields)
            recovered("error")
            if self._put_back is not None:
                self._put_back(entry)
                return False
            return True
        if outcome == "unanswered":
            if await self._leave(entry, cause, fields):
                return False
            await self._expect(entry.agent, entry.room, None)  # no offer of it is coming here
            recovered(outcome)
            return True
        logger.warning("recovering the call of %s: dispatch %s",
                       "a host that is gone" if cause == HOST_LOSS else "a job whose process died", dispatch.id,
                       extra={**fields, "dispatch_id": dispatch.id})
        recovered(outcome)
        return True

    async def _leave(self, entry: Entry, cause: str, fields: dict[str, str]) -> bool:
        """While the host drains, with no dispatch of the call in flight: the call goes back to the journal for
        the next host. False when the host stays (or has no journal to leave it in)."""
        if not self._leaving() or self._hand_over is None:
            return False
        await self._expect(entry.agent, entry.room, None)  # an earlier dispatch's offer, not taken, is not coming
        logger.warning("call not recovered here: this host is draining, the call is left to the next host",
                       extra=fields)
        self._metrics.jobs_recovered.labels(entry.agent, cause, "left").inc()
        self._hand_over(entry)
        return True

    async def _joined(self, client: api.LiveKitAPI, entry: Entry, agent_name: str) -> bool | None:
        """Whether the agent (`agent_name`) came into `entry`'s room within CONFIRM_WAIT (any job of it but the
        lost one: with several hosts, another host may have taken the offer, and its job does not know it is a
        recovery); False when the room is gone (the call is over: nothing left to give an agent), None when
        neither happened."""
        deadline = time.monotonic() + CONFIRM_WAIT
        while time.monotonic() < deadline:
            room = await self._room(client, entry.room)
            if room is None:
                return False
            if any(p.serves(agent_name) and p.identity != entry.identity for p in room):
                return True
            await asyncio.sleep(0.25)
        return None

    async def _taken(self, client: api.LiveKitAPI, room: str, dispatch_id: str) -> bool:
        """Whether a worker took the dispatch (its job is on its way, only slow to join): then it is never made
        again, which would give the call two agents. A dispatch the server dropped has no job."""
        try:
            dispatches = await client.agent_dispatch.list_dispatch(room_name=room)
        except api.TwirpError:
            return False
        return any(d.id == dispatch_id and len(d.state.jobs) > 0 for d in dispatches)

    async def others_in_room(self, room: str, identity: str, agent_name: str) -> bool | None:
        """Whether a job of the agent `agent_name` other than `identity` is in `room` (None: the server could not
        be asked)."""
        client = api.LiveKitAPI(self._credentials.http_url, self._credentials.api_key, self._credentials.api_secret)
        try:
            listed = await self._room(client, room)
        except (api.TwirpError, aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return None
        finally:
            await client.aclose()
        return listed is not None and any(p.serves(agent_name) and p.identity != identity for p in listed)

    async def _remove(self, client: api.LiveKitAPI, room: str, identity: str) -> None:
        """The dead host's agent out of the room; gone already (its process saw its host gone and left) is as
        good."""
        try:
            await client.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=identity))
        except api.TwirpError as exc:
            if exc.code != api.TwirpErrorCode.NOT_FOUND:
                raise

    async def _room(self, client: api.LiveKitAPI, room: str) -> list[InRoom] | None:
        try:
            listed = await client.room.list_participants(api.ListParticipantsRequest(room=room))
        except api.TwirpError as exc:
            if exc.code == api.TwirpErrorCode.NOT_FOUND:
                return None
            raise
        kind = models.ParticipantInfo.Kind
        return [InRoom(p.identity, p.kind == kind.AGENT, p.kind in (kind.STANDARD, kind.SIP),
                       p.attributes.get(AGENT_NAME_ATTRIBUTE, "") if p.kind == kind.AGENT else "")
                for p in listed.participants]
