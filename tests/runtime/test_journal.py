import os
import subprocess
import sys

from host.runtime.journal import Entry, Journal, process_start


def entry(job_id: str, pid: int, start: int, agent: str = "a", server: str = "ws://s") -> Entry:
    return Entry(job_id, agent, f"room-{job_id}", "AD_1", '{"user": 1}', f"agent-{job_id}", server, pid, start,
                 1.0 + len(job_id))


def test_only_the_rows_of_hosts_that_are_gone_are_taken_once_each(tmp_path):
    mine = Journal(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(gone.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive_start = process_start(alive.pid)
        assert alive_start is not None
        mine.add(entry("AJ_dead", dead_pid, 12345))
        mine.add(entry("AJ_dead_other_agent", dead_pid, 12345, agent="b"))
        mine.add(entry("AJ_dead_other_server", dead_pid, 12345, server="ws://t"))
        mine.add(entry("AJ_alive", alive.pid, alive_start))
        mine.add(entry("AJ_reused_pid", alive.pid, alive_start - 1))  # the pid is alive, but not that process
        mine.add(entry("AJ_mine", os.getpid(), mine.start))
        mine.add(entry("AJ_same_pid_earlier", os.getpid(), mine.start - 1))  # a container's host, restarted
        mine.add(entry("AJ_ended_on_purpose", dead_pid, 12345))
        mine.ending("AJ_ended_on_purpose")  # not this host's row: unchanged
        other = Journal(tmp_path)
        assert sorted(e.job_id for e in other.orphans("ws://s", {"a"})) == [
            "AJ_dead", "AJ_ended_on_purpose", "AJ_reused_pid", "AJ_same_pid_earlier"]
        assert other.orphans("ws://s", {"a"}) == []  # taken: never given twice
        assert [e.job_id for e in Journal(tmp_path).orphans("ws://s", {"a", "b"})] == ["AJ_dead_other_agent"]
        mine.ending("AJ_mine")  # the host asked it to end, then died: its call is not taken over
        mine._db.execute("UPDATE jobs SET host_start = 1 WHERE job_id = 'AJ_mine'")  # as if its host were gone
        assert Journal(tmp_path).orphans("ws://s", {"a"}) == []
        mine.add(entry("AJ_done", os.getpid(), mine.start))
        mine.remove("AJ_done")
        mine._db.execute("UPDATE jobs SET host_start = 1 WHERE host_pid = ?", (os.getpid(),))
        assert Journal(tmp_path).orphans("ws://s", {"a"}) == []  # removed when it ended
    finally:
        alive.kill()
        alive.wait()


def test_an_unusable_journal_says_why_and_does_nothing(tmp_path):
    (tmp_path / "jobs.sqlite3").write_bytes(b"not a database" * 100)
    journal = Journal(tmp_path)
    assert journal.error is not None and "jobs.sqlite3" in journal.error
    journal.add(entry("AJ_1", 1, 1))
    assert journal.orphans("ws://s", {"a"}) == []
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert Journal(blocked).error is not None  # its state directory is a file


def test_a_journal_an_older_host_wrote_gains_the_new_columns(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, agent TEXT NOT NULL, room TEXT NOT NULL, "
                "dispatch_id TEXT NOT NULL, metadata TEXT NOT NULL, identity TEXT NOT NULL, server TEXT NOT NULL, "
                "host_pid INTEGER NOT NULL, host_start INTEGER NOT NULL, started_at REAL NOT NULL)")
    old.execute("INSERT INTO jobs VALUES ('AJ_old', 'a', 'r', 'AD_1', '', 'agent-1', 'ws://s', 999999, 1, 1.0)")
    old.commit()
    old.close()
    journal = Journal(tmp_path)
    assert journal.error is None
    [entry] = journal.orphans("ws://s", {"a"})  # the dead host's row, read with the defaults
    assert (entry.job_id, entry.attempt, entry.recovery_of) == ("AJ_old", 0, None)


async def test_a_retry_is_read_until_its_time_and_forgetting_one_drops_the_stale_ones_too(tmp_path):
    import asyncio
    import time

    from host.runtime.journal import Retry

    journal = Journal(tmp_path)
    live, stale = Retry("a", "r1", "v1", 1, time.time() + 60), Retry("a", "r2", "v2", 1, time.time() - 1)
    await journal.note_retry(live)
    await journal.note_retry(stale)
    assert await journal.retry_of("a", "r1") == live
    assert await journal.retry_of("a", "r2") is None  # past its time: another call in that room
    journal.forget_retry("a", "r1")  # in the background
    for _ in range(200):
        if journal._db is not None and journal._db.execute("SELECT count(*) FROM retries").fetchone() == (0,):
            break
        await asyncio.sleep(0.01)
    assert await journal.retry_of("a", "r1") is None
    assert journal._db is not None and journal._db.execute("SELECT count(*) FROM retries").fetchone() == (0,)
