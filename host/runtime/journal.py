"""The journal of running jobs: what a host that starts after another one died needs to give each of its calls
an agent again (host.runtime.recovery).

A small SQLite database in the state directory (`--state-dir`), one row per job from the moment its process
is handed the job until the job has ended and been reported, whatever the way it ended: a row left behind is a
job whose host died under it, unless the host had asked the job to end (a drain, the server, a failure): such a
row is marked ending, and never taken over. Each row names its host by pid and that process's start time (a
pid alone is reused: in a container, the host is the same pid at every start), so hosts sharing a machine and
a state directory only ever take the rows of hosts that are gone, and a row is taken by deleting it: of two
hosts that try, one wins.

A journal that cannot be opened or written (a read-only state directory, a full disk, a corrupt file) is
logged once and the host serves on without it: `error` says why (and /readyz with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger("agenthost.host")

SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, agent TEXT NOT NULL, room TEXT NOT NULL, dispatch_id TEXT NOT NULL,
    metadata TEXT NOT NULL, identity TEXT NOT NULL, server TEXT NOT NULL, host_pid INTEGER NOT NULL,
    host_start INTEGER NOT NULL, started_at REAL NOT NULL, attempt INTEGER NOT NULL, recovery_of TEXT,
    ending INTEGER NOT NULL DEFAULT 0
)"""
# columns added after the first release of the journal: a file an older host wrote gains them (with these
# defaults) when it is opened, instead of making the journal unusable
ADDED_COLUMNS = (("attempt", "INTEGER NOT NULL DEFAULT 0"), ("recovery_of", "TEXT"),
                 ("ending", "INTEGER NOT NULL DEFAULT 0"))
RETRIES = """CREATE TABLE IF NOT EXISTS retries (
    agent TEXT NOT NULL, room TEXT NOT NULL, version TEXT NOT NULL, attempt INTEGER NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (agent, room)
)"""
RETRY_LOCK_WAIT = 0.4  # seconds a retry's read or write waits for another host's lock on the file
FIELDS = ("job_id", "agent", "room", "dispatch_id", "metadata", "identity", "server", "host_pid", "host_start",
          "started_at", "attempt", "recovery_of")


@dataclass(frozen=True)
class Entry:
    job_id: str
    agent: str
    room: str
    dispatch_id: str
    metadata: str  # as dispatched: given again to the job that takes the call over
    identity: str  # who its agent joined the room as
    server: str  # the LiveKit server it ran against (a host serves only its own server's calls)
    host_pid: int
    host_start: int  # the host process's start time (clock ticks since boot), with its pid its identity
    started_at: float
    attempt: int = 0  # how many times this call was taken over already
    recovery_of: str | None = None  # the first job of the call


@dataclass(frozen=True)
class Retry:
    """A call dispatched again because its job failed on `version` before it joined: the call's next job, on
    whichever host takes its offer, avoids that version, and is the call's `attempt`th retake. Or a call
    taken over (`recovery_of`, its first job; `version` ""), told to the other hosts sharing a Redis journal."""

    agent: str
    room: str
    version: str
    attempt: int
    until: float  # time.time() after which it is forgotten: a later call in that room is another call
    recovery_of: str | None = None


def process_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def default_state_dir() -> str:
    """$STATE_DIRECTORY (systemd's StateDirectory=), else /var/lib/agenthost for root, else
    $XDG_STATE_HOME/agenthost (~/.local/state/agenthost)."""
    if os.environ.get("STATE_DIRECTORY"):
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    if os.geteuid() == 0:
        return "/var/lib/agenthost"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "agenthost")


class JobJournal(Protocol):
    """What the job table writes, whichever journal keeps it (this file's SQLite one, or the shared one in
    Redis: host.runtime.shared_journal)."""

    @property
    def pid(self) -> int: ...

    @property
    def start(self) -> int: ...

    @property
    def path(self) -> object: ...

    @property
    def error(self) -> str | None: ...

    def add(self, entry: Entry) -> None: ...

    def remove(self, job_id: str) -> None: ...

    def ending(self, job_id: str) -> None: ...

    def orphans(self, server: str, agents: set[str]) -> list[Entry]: ...

    @property
    def shared(self) -> bool: ...  # whether hosts on other machines read it (recoveries are told through it)

    async def note_retry(self, retry: Retry) -> None: ...

    async def retry_of(self, agent: str, room: str) -> Retry | None: ...

    def forget_retry(self, agent: str, room: str) -> None: ...

    def close(self) -> None: ...


class Journal:
    shared = False  # one machine's hosts: a recovery's offer comes to the host that dispatched it

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "jobs.sqlite3"
        self.pid = os.getpid()
        self.start = process_start(self.pid) or 0
        self.error: str | None = None
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=2.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a row survives the host's death; a power cut may lose it
            db.execute(SCHEMA)
            db.execute(RETRIES)
            present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, declaration in ADDED_COLUMNS:
                if column not in present:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {declaration}")
            db.execute("SELECT count(*) FROM jobs").fetchone()
            self._db = db
        except (OSError, sqlite3.Error) as exc:
            self._fail(f"cannot open {self.path}: {exc}")

    def _fail(self, why: str) -> None:
        if self.error is None:
            logger.error("the journal of running jobs is unusable, calls will not be recovered if this host "
                         "dies: %s", why)
        self.error = why
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _write(self, sql: str, params: Sequence[object]) -> None:
        if self._db is None:
            return
        try:
            self._db.execute(sql, params)
        except sqlite3.Error as exc:
            self._fail(f"cannot write {self.path}: {exc}")

    def add(self, entry: Entry) -> None:
        """A row for a running job (or, for a row taken that could not be acted on, the same row back: the next
        host tries it)."""
        self._write(f"INSERT OR REPLACE INTO jobs ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})",
                    [getattr(entry, f) for f in FIELDS])

    def remove(self, job_id: str) -> None:
        self._write("DELETE FROM jobs WHERE job_id = ? AND host_pid = ? AND host_start = ?",
                    (job_id, self.pid, self.start))

    def ending(self, job_id: str) -> None:
        """The host asked the job to end: if the host dies before it has, its call is not taken over."""
        self._write("UPDATE jobs SET ending = 1 WHERE job_id = ? AND host_pid = ? AND host_start = ?",
                    (job_id, self.pid, self.start))

    def orphans(self, server: str, agents: set[str]) -> list[Entry]:
        """The rows of hosts that are gone, for `server` and the `agents` this host serves, taken (deleted):
        each is returned to one host only."""
        if self._db is None:
            return []
        taken = []
        try:
            rows = self._db.execute(f"SELECT {', '.join(FIELDS)}, ending FROM jobs WHERE server = ?",
                                    (server,)).fetchall()
            for row in rows:
                entry, ending = Entry(**dict(zip(FIELDS, row[:-1], strict=True))), bool(row[-1])
                if entry.agent not in agents or (entry.host_pid, entry.host_start) == (self.pid, self.start):
                    continue
                if process_start(entry.host_pid) == entry.host_start:
                    continue  # its host is alive
                deleted = self._db.execute("DELETE FROM jobs WHERE job_id = ? AND host_pid = ? AND host_start = ?",
                                           (entry.job_id, entry.host_pid, entry.host_start)).rowcount
                if deleted == 1 and not ending:
                    taken.append(entry)
        except (sqlite3.Error, TypeError) as exc:
            self._fail(f"cannot read {self.path}: {exc}")
        return sorted(taken, key=lambda e: e.started_at)

    # A retry is read on an offer and written before a dispatch, by any host of the state directory: off the
    # loop, each on a connection of its own that waits for another host's lock at most RETRY_LOCK_WAIT (an
    # error is the caller's to judge: the journal's own rows go on).
    async def note_retry(self, retry: Retry) -> None:
        """Told to every host sharing this state directory, before the call is dispatched again."""
        await asyncio.to_thread(self._on_retries, "INSERT OR REPLACE INTO retries (agent, room, version, attempt, "
                                "until) VALUES (?, ?, ?, ?, ?)",
                                (retry.agent, retry.room, retry.version, retry.attempt, retry.until))

    async def retry_of(self, agent: str, room: str) -> Retry | None:
        """The retry of this call, while it is on its way (by any host sharing this state directory)."""
        row = await asyncio.to_thread(self._on_retries, "SELECT version, attempt, until FROM retries WHERE agent = ? "
                                      "AND room = ? AND until > ?", (agent, room, time.time()))
        return Retry(agent, room, row[0], int(row[1]), float(row[2])) if row is not None else None

    def forget_retry(self, agent: str, room: str) -> None:
        """The retry's offer was taken; stale ones go with it (in the background: nothing waits for it)."""
        def forget() -> None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._on_retries("DELETE FROM retries WHERE (agent = ? AND room = ?) OR until <= ?",
                                 (agent, room, time.time()))
        asyncio.get_running_loop().run_in_executor(None, forget)

    def _on_retries(self, sql: str, params: Sequence[object]) -> Any:
        if self._db is None:
            raise sqlite3.OperationalError(f"the journal {self.path} is unusable: {self.error}")
        db = sqlite3.connect(self.path, timeout=RETRY_LOCK_WAIT, isolation_level=None)
        try:
            return db.execute(sql, params).fetchone()
        finally:
            db.close()

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
