"""The journal of running jobs kept in Redis, shared by several hosts: a surviving host takes over the calls
of one that is lost.

Each host holds a lease (`PREFIX lease:HOST`, renewed every RENEW seconds, gone LEASE seconds after its last
renewal) and writes its jobs to a hash of its own (`PREFIX jobs:HOST`, one JSON entry per job, marked
`ending` when the host asked it to end). Every host looks at the others every SCAN seconds: the jobs of a
host whose lease is gone are claimed one by one (`PREFIX claim:JOB`, set unless this host or another with a
lease holds it: its row is then dropped), so each is taken by exactly one host serving its agent, which
gives its call the agent again (host.runtime.recovery). Until that is settled, the claiming host keeps the
job under its own hash: if it is lost too meanwhile, its claim lapses with its lease and the next host takes
the call over; if it drains instead, it hands the job over (under a hash of no host's lease, its claim let
go), for any other host to take at its next look. One
prefix is one LiveKit deployment: the hosts sharing it may be connected to different nodes of it. A call is
therefore back within LEASE + SCAN seconds of its host's loss, plus the time to dispatch. A host that comes
back (a pause, a partition) and finds its jobs claimed ends each whose room has the other host's agent, and
keeps the others.

The writes are queued and sent by one task, so the job table never waits on the network. Redis
unreachable is said once (and on /readyz); the host goes on serving, without recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from host.aio import cancel_requested
from host.config.credentials import without_userinfo
from host.errors import AgentHostError
from host.runtime.journal import Entry, Retry, process_start

logger = logging.getLogger("agenthost.host")

LEASE = 3.0  # seconds a host's lease outlives its last renewal
RENEW = 1.0  # seconds between two renewals
SCAN = 1.0  # seconds between two looks at the other hosts
CLAIM_TTL = 600.0  # seconds a claim is kept (the claimed host's entries are gone long before)
DEFAULT_PREFIX = "agenthost:"
# HSET KEYS[2] ARGV[1] ARGV[2] unless KEYS[1] (the job's claim) exists: a job written again never comes back
# under this host once another one claimed it
UNLESS_CLAIMED = ("if redis.call('exists', KEYS[1]) == 0 then redis.call('hset', KEYS[2], ARGV[1], ARGV[2]) end "
                  "return 0")
# One job ARGV[4] of a host whose lease KEYS[1] is gone, moved in one step: -1, left, when the host is back;
# 0, dropped from its hash (KEYS[3]), when this host (ARGV[1]) or another whose lease (ARGV[3] .. host) is still
# there holds its claim KEYS[2] (and so holds it under its own hash, or settled it); 1 when claimed (PX ARGV[2]),
# written under this host's hash KEYS[4] (ARGV[5]) and dropped from the lost one's. A claim outlives its host
# only as long as that host's lease does.
MOVE = ("if redis.call('exists', KEYS[1]) == 1 then return -1 end "
        "local by = redis.call('get', KEYS[2]) "
        "if by and (by == ARGV[1] or redis.call('exists', ARGV[3] .. by) == 1) then "
        "redis.call('hdel', KEYS[3], ARGV[4]) return 0 end "
        "redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2]) "
        "redis.call('hset', KEYS[4], ARGV[4], ARGV[5]) "
        "redis.call('hdel', KEYS[3], ARGV[4]) return 1")
# HDEL KEYS[2] ARGV[1] while the lease KEYS[1] is gone
DROP = "if redis.call('exists', KEYS[1]) == 0 then redis.call('hdel', KEYS[2], ARGV[1]) end return 0"
# SREM KEYS[3] ARGV[1] and DEL KEYS[2] while the lease KEYS[1] is gone and the hash KEYS[2] is empty
FORGET = ("if redis.call('exists', KEYS[1]) == 0 and redis.call('hlen', KEYS[2]) == 0 then "
          "redis.call('srem', KEYS[3], ARGV[1]) redis.call('del', KEYS[2]) end return 0")
# HSET KEYS[2] ARGV[2] ARGV[3] unless another host than ARGV[1] holds the job's claim KEYS[1]
HOLD = ("local by = redis.call('get', KEYS[1]) "
        "if by and by ~= ARGV[1] then return 0 end "
        "redis.call('hset', KEYS[2], ARGV[2], ARGV[3]) return 1")

# A claimed job ARGV[2] handed over to any host at once (this host ARGV[1] drains): while its claim KEYS[1] is
# this host's, its row ARGV[3] goes from this host's hash KEYS[2] to the hash KEYS[3] of a host ARGV[4] that has
# no lease, named among the hosts KEYS[4], and the claim is let go: the next look of any host takes it over.
HAND_OVER = ("if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end "
             "redis.call('hset', KEYS[3], ARGV[2], ARGV[3]) redis.call('sadd', KEYS[4], ARGV[4]) "
             "redis.call('hdel', KEYS[2], ARGV[2]) redis.call('del', KEYS[1]) return 1")


class SharedJournal:
    shared = True  # a call one host recovers may be offered to any other: each reads the recovery here

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        import redis.asyncio as aioredis

        self.url, self.prefix = url, prefix
        self.pid = os.getpid()
        self.start = process_start(self.pid) or 0
        self.host = f"{socket.gethostname()}:{self.pid}:{self.start}"
        self.path = f"redis {without_userinfo(url)} ({prefix})"
        self.error: str | None = None
        try:
            self._redis: Any = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        except ValueError as exc:
            raise AgentHostError(f"--redis {without_userinfo(url)}: {exc} (give redis://[:PASSWORD@]HOST[:PORT][/DB], "
                                 "rediss:// or unix://PATH)") from exc
        self._writes: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        self._mine: dict[str, Entry] = {}
        self._ending: set[str] = set()  # those of `_mine` marked ending
        self._steady_since: float | None = None  # monotonic time since when Redis has answered without a break
        self._renewed_at = -LEASE  # monotonic time of the last renewal of the lease
        self._removed: set[str] = set()  # rows gone from `_mine` (removed, handed over) not yet written so
        self._forgetting: set[asyncio.Task[None]] = set()

    # -- what the job table writes (never waits) ----------------------------------------------------
    def add(self, entry: Entry) -> None:
        self._mine[entry.job_id] = entry
        self._ending.discard(entry.job_id)
        self._writes.put_nowait(("hset", (self._key("jobs", self.host), entry.job_id, _dump(entry, False))))

    def remove(self, job_id: str) -> None:
        self._mine.pop(job_id, None)
        self._ending.discard(job_id)
        self._removed.add(job_id)
        self._writes.put_nowait(("hdel", (self._key("jobs", self.host), job_id)))

    def ending(self, job_id: str) -> None:
        entry = self._mine.get(job_id)
        if entry is not None:
            self._ending.add(job_id)
            self._writes.put_nowait(("hset", (self._key("jobs", self.host), job_id, _dump(entry, True))))

    def orphans(self, server: str, agents: set[str]) -> list[Entry]:
        return []  # found by `run`, as leases expire

    def close(self) -> None:
        pass

    async def note_retry(self, retry: Retry) -> None:
        """Written before the call is dispatched again (whichever host takes its offer reads it), gone with the
        retry's time."""
        ttl = max(1, int((retry.until - time.time()) * 1000))
        await self._redis.set(self._retry_key(retry.agent, retry.room), json.dumps(
            {"version": retry.version, "attempt": retry.attempt, "until": retry.until,
             "recovery_of": retry.recovery_of}), px=ttl)

    async def retry_of(self, agent: str, room: str) -> Retry | None:
        body = await self._redis.get(self._retry_key(agent, room))
        if body is None:
            return None
        try:
            found = json.loads(body)
            recovery_of = found.get("recovery_of")
            return Retry(agent, room, str(found["version"]), int(found["attempt"]), float(found["until"]),
                         str(recovery_of) if recovery_of is not None else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def forget_retry(self, agent: str, room: str) -> None:
        """At once, not behind the queued writes: a late delete could remove a later retry of the same call."""
        task = asyncio.ensure_future(self._forget(self._retry_key(agent, room)))
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def _forget(self, key: str) -> None:
        with contextlib.suppress(Exception):  # the retry's own time ends it anyway
            await asyncio.wait_for(self._redis.delete(key), 2.0)

    def _retry_key(self, agent: str, room: str) -> str:
        return self._key("retry", json.dumps([agent, room]))  # names may hold any character: one key per pair

    # -- the host's task ---------------------------------------------------------------------------------
    async def run(self, agents: Callable[[], set[str]],
                  take_over: Callable[[Entry], None], taken: Callable[[str, str], None]) -> None:
        """Until cancelled: renew the lease, send the writes, and claim the jobs of hosts that are gone
        (`take_over` each one claimed here; `taken(job_id, by)` for this host's jobs another host claimed)."""
        writer = asyncio.ensure_future(self._write_all())
        # seconds of answers from Redis before this host claims anything: a lease gone while Redis itself was
        # down (restarted, or unreachable from here) says nothing of its host, which renews it once Redis is back
        steady = LEASE + 2 * RENEW
        try:
            while not cancel_requested():
                try:
                    lost = not await self._renew()
                    now = self._renewed_at = time.monotonic()
                    if self._steady_since is None:  # Redis answers again (or for the first time)
                        self._steady_since = now
                    if lost:
                        await self._check_mine(taken)
                    if now - self._steady_since >= steady:
                        await self._scan(agents(), take_over)
                        await self._adopt(take_over)
                    self._ok()
                except Exception as exc:  # Redis down or refusing: said, and tried again
                    self._steady_since = None
                    self._fail(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(min(RENEW, SCAN))
            raise asyncio.CancelledError  # asked to stop while a Redis call swallowed the cancellation
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            with contextlib.suppress(Exception):
                await self._redis.delete(self._key("lease", self.host))
            await self.disconnect()

    async def disconnect(self) -> None:
        """Close the connections to Redis (`run` does, as it ends)."""
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def _write_all(self) -> None:
        while not cancel_requested():
            op, args = await self._writes.get()
            while not cancel_requested():
                try:
                    await getattr(self._redis, op)(*args)
                    break
                except Exception as exc:  # kept in order: tried again until Redis answers
                    self._fail(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(RENEW)
        raise asyncio.CancelledError  # asked to stop while a Redis call swallowed the cancellation

    async def _renew(self) -> bool:
        """Renew the lease; False when it had expired (this host was paused or cut off meanwhile). The host is
        named among the hosts at each renewal: one that looked at it while its lease had lapsed may have
        forgotten it."""
        key = self._key("lease", self.host)
        existed = await self._redis.set(key, "1", px=int(LEASE * 1000), xx=True)
        if not existed:
            await self._redis.set(key, "1", px=int(LEASE * 1000))
        await self._redis.sadd(self._key("hosts"), self.host)
        return bool(existed)

    async def _check_mine(self, taken: Callable[[str, str], None]) -> None:
        """After a lapse of the lease: this host's jobs another host claimed meanwhile are for `taken` to
        settle (it ends them, or `keep`s them); the others are written again (Redis may have lost them, when
        it restarted without keeping its data)."""
        mine = list(self._mine)
        claims = await self._redis.mget([self._key("claim", job_id) for job_id in mine]) if mine else []
        for job_id, by in zip(mine, claims, strict=True):
            if by is not None and by.decode() != self.host:
                taken(job_id, by.decode())
            elif job_id in self._mine:  # unless a host claims it first: then it is that host's
                self._writes.put_nowait(("eval", (UNLESS_CLAIMED, 2, self._key("claim", job_id),
                                                  self._key("jobs", self.host), job_id,
                                                  _dump(self._mine[job_id], job_id in self._ending))))

    def keep(self, job_id: str) -> None:
        """A claimed job of this host serves on: back under this host, its claim dropped."""
        entry = self._mine.get(job_id)
        if entry is not None:
            self._writes.put_nowait(("delete", (self._key("claim", job_id),)))
            self.add(entry)

    async def _scan(self, agents: set[str], take_over: Callable[[Entry], None]) -> None:
        """Take the jobs of each host whose lease is gone. Each step is one script that first checks the lease
        again: a host back from a pause between the look and the step keeps its jobs."""
        for raw in await self._redis.smembers(self._key("hosts")):
            host = raw.decode()
            lease, jobs_key = self._key("lease", host), self._key("jobs", host)
            if host in (self.host, self._handed_over) or await self._redis.exists(lease):
                continue  # (what this host handed over is for the others: a look begun before it drained)
            for job_id, body in (await self._redis.hgetall(jobs_key)).items():
                entry, ending = _load(body)
                if entry is None or ending:
                    await self._redis.eval(DROP, 2, lease, jobs_key, job_id)
                    continue
                if entry.agent not in agents:  # one prefix is one LiveKit deployment: any node's URL serves it
                    continue  # a host serving that agent takes it
                held = dataclasses.replace(entry, host_pid=self.pid, host_start=self.start)
                # held here before it leaves the lost host's hash: never in neither
                moved = await self._redis.eval(MOVE, 4, lease, self._key("claim", entry.job_id), jobs_key,
                                               self._key("jobs", self.host), self.host, int(CLAIM_TTL * 1000),
                                               self._key("lease", ""), job_id, _dump(held, False))
                if moved == -1:
                    break  # the host is back
                if moved == 1:
                    self._mine[held.job_id] = held
                    self._ending.discard(held.job_id)
                    take_over(entry)
            await self._redis.eval(FORGET, 3, lease, jobs_key, self._key("hosts"), host)

    async def _adopt(self, take_over: Callable[[Entry], None]) -> None:
        """Rows under this host's hash that it does not know of: a move whose answer was lost (the script ran,
        its reply did not come). Each claimed here is taken over as the move would have."""
        rows = await self._redis.hgetall(self._key("jobs", self.host))
        self._removed &= {job_id.decode() for job_id in rows}  # a delete not sent yet: known, not adopted
        for raw_id, body in rows.items():
            job_id = raw_id.decode()
            if job_id in self._mine or job_id in self._removed:
                continue
            entry, ending = _load(body)
            if entry is None or ending or not await self.holds(job_id) or job_id in self._mine:
                continue
            self._mine[job_id] = entry
            take_over(entry)

    async def holds(self, job_id: str) -> bool:
        """Whether this host holds the claim on a lost host's job (another host takes it once this host's lease
        lapsed; the job's own host, back, drops it): asked before each dispatch of its recovery. When Redis
        cannot say: while this host's lease is surely still there (renewed less than LEASE ago), no other
        host could have claimed it."""
        try:
            by = await asyncio.wait_for(self._redis.get(self._key("claim", job_id)), RENEW)
        except Exception:
            return time.monotonic() - self._renewed_at < LEASE
        return by is not None and by.decode() == self.host

    # -- health ----------------------------------------------------------------------------------------
    def _fail(self, why: str) -> None:
        if self.error is None:
            logger.error("the shared journal (%s) is unusable, calls will not be recovered if a host dies: %s",
                         self.path, why)
        self.error = why

    def _ok(self) -> None:
        if self.error is not None:
            logger.info("the shared journal (%s) answers again", self.path)
        self.error = None

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def put_back(self, entry: Entry) -> None:
        """A call taken that could not be acted on: back in the journal, under this host, for the next one
        (unless another host claimed it meanwhile: it is that host's)."""
        held = dataclasses.replace(entry, host_pid=self.pid, host_start=self.start)
        self._mine[held.job_id] = held
        self._ending.discard(held.job_id)
        self._writes.put_nowait(("eval", (HOLD, 2, self._key("claim", held.job_id), self._key("jobs", self.host),
                                          self.host, held.job_id, _dump(held, False))))

    @property
    def _handed_over(self) -> str:
        """A host with no lease, under which this one leaves calls to the others."""
        return f"{self.host}~left"

    def hand_over(self, entry: Entry) -> None:
        """A claimed call this host will not recover (it drains): for any other host to take over at its next
        look, rather than once this host is gone (a write lost as the host stops leaves it under this host,
        for then)."""
        self._mine.pop(entry.job_id, None)
        self._removed.add(entry.job_id)  # its row stays under this host until the write is sent: not adopted
        self._writes.put_nowait(("eval", (HAND_OVER, 4, self._key("claim", entry.job_id), self._key("jobs", self.host),
                                          self._key("jobs", self._handed_over), self._key("hosts"), self.host,
                                          entry.job_id, _dump(entry, False), self._handed_over)))


def _dump(entry: Entry, ending: bool) -> str:
    return json.dumps({**dataclasses.asdict(entry), "ending": ending})


def _load(body: bytes) -> tuple[Entry | None, bool]:
    try:
        fields = json.loads(body)
        ending = bool(fields.pop("ending", False))
        return Entry(**fields), ending
    except (ValueError, TypeError):
        return None, False
