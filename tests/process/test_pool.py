"""Prewarmed job processes, spawned for real."""

from __future__ import annotations

import asyncio

import pytest

from host.config.loader import load
from host.process.errors import ProcessStartError
from host.process.pool import GROW_MIN_PREWARM_CPU, MAX_GROWTH, ProcessPool, pool_target
from host.process.states import ProcessState


async def ready(pool: ProcessPool):
    """A process from the pool, once it is ready (a fresh one is handed out as soon as it is started)."""
    proc = await pool.take()
    await proc.wait_ready(30)
    return proc

def definition(tmp_path, setup_body: str, init_timeout: str = "10s"):
    (tmp_path / "mod.py").write_text(f"async def entrypoint(ctx): pass\n\ndef prewarm(proc):\n{setup_body}\n")
    (tmp_path / "a.yaml").write_text(f"name: a\nentrypoint: mod.py:entrypoint\nsetup: mod.py:prewarm\n"
                                     f"processes: {{idle: 1, init_timeout: {init_timeout}}}\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


async def test_prewarmed_process_is_ready_and_replaced_when_taken(tmp_path):
    pool = ProcessPool(definition(tmp_path, "    proc.userdata['x'] = 1"), "text", 20)
    pool.start()
    try:
        for _ in range(200):
            if pool.idle_count == 1:
                break
            await asyncio.sleep(0.05)
        assert pool.idle_count == 1
        proc = await ready(pool)
        assert proc.state is ProcessState.IDLE and proc.pid and proc.warm  # from the idle ones
        for _ in range(200):  # a replacement is warmed
            if pool.idle_count == 1:
                break
            await asyncio.sleep(0.05)
        assert pool.idle_count == 1
        proc.kill()
        assert await proc.wait_exit(5) != 0
    finally:
        await pool.close()


async def test_failing_setup_is_reported_and_backs_off(tmp_path, caplog):
    pool = ProcessPool(definition(tmp_path, "    raise RuntimeError('no database')"), "text", 20)
    with pytest.raises(ProcessStartError, match="RuntimeError: no database"):
        await ready(pool)
    pool.start()
    try:
        for _ in range(200):
            if "after 2 failed starts" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "job process for a failed to start: RuntimeError: no database" in caplog.text
        assert "next process for a in" in caplog.text and "after 2 failed starts" in caplog.text
        assert pool.idle_count == 0
    finally:
        await pool.close()


async def test_hanging_setup_is_killed_at_init_timeout(tmp_path):
    pool = ProcessPool(definition(tmp_path, "    import time; time.sleep(60)", "1s"), "text", 20)
    with pytest.raises(ProcessStartError, match=r"not ready within 1s"):
        await ready(pool)
    await pool.close()


async def test_an_os_error_at_start_is_a_start_failure(tmp_path, monkeypatch, caplog):
    from host.process import mp

    pool = ProcessPool(definition(tmp_path, "    pass"), "text", 20)

    def no_descriptors(*_args, **_kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(mp.mp_context, "Pipe", no_descriptors)
    with pytest.raises(ProcessStartError, match=r"cannot start a job process: .*Too many open files"):
        await ready(pool)
    assert pool.last_error is not None and "Too many open files" in pool.last_error
    assert "job process for a failed to start" in caplog.text
    await pool.close()


def test_the_pool_grows_by_its_misses_only_when_a_process_is_costly_to_get_ready():
    assert pool_target(2, 5, [0.2, 0.3, 0.25]) == 7
    assert pool_target(2, 50, [0.2]) == 2 + MAX_GROWTH
    assert pool_target(2, 5, [0.01, 0.02, 0.2]) == 2, "a fork that is ready at once is worth no idle memory"
    assert pool_target(2, 5, []) == 2
    assert pool_target(0, 0, [1.0]) == 0


COSTLY_SETUP = "    sum(range(10_000_000))"  # about 0.2 s of CPU: worth keeping idle processes for


async def test_a_pool_of_cheap_processes_does_not_grow(tmp_path):
    pool = ProcessPool(definition(tmp_path, "    pass"), "text", 20)
    pool.start()
    try:
        taken = await asyncio.gather(*(ready(pool) for _ in range(4)))
        assert all(p.reports.prewarm_cpu < GROW_MIN_PREWARM_CPU for p in taken), \
            [p.reports.prewarm_cpu for p in taken]
        assert pool.target == 1
        for proc in taken:
            proc.kill()
    finally:
        await pool.close()


async def test_the_pool_grows_while_jobs_find_it_empty_and_shrinks_back(tmp_path, monkeypatch):
    from host.process import pool as pool_module

    monkeypatch.setattr(pool_module, "GROW_WINDOW", 3.0)
    pool = ProcessPool(definition(tmp_path, COSTLY_SETUP), "text", 20)
    pool.start()
    try:
        taken = await asyncio.gather(*(ready(pool) for _ in range(4)))  # one idle at most: the rest miss
        assert pool.target >= 4, [p.reports.prewarm_cpu for p in taken]
        for _ in range(200):
            if pool.idle_count >= 4:
                break
            await asyncio.sleep(0.05)
        assert pool.idle_count >= 4, "the pool grew to meet the burst"
        for _ in range(200):
            if pool.idle_count == 1:
                break
            await asyncio.sleep(0.05)
        assert pool.target == 1 and pool.idle_count == 1, "quiet again: back to processes.idle"
        for proc in taken:
            proc.kill()
    finally:
        await pool.close()


def test_the_source_files_a_process_lists_are_bounded_and_stated_by_the_host(tmp_path, caplog, monkeypatch):
    import host.process.pool as pool_module

    real = tmp_path / "real.py"
    real.write_text("x = 1\n")
    pool = ProcessPool(definition(tmp_path, "    pass"), "text", 20)
    before = dict(pool.sources)
    monkeypatch.setattr(pool_module, "MAX_SOURCES", len(before) + 2)
    # what agent code may claim: a relative path, not Python, a path into the kernel's file systems (one into
    # its own namespace, say), a fake time for a real file, too many files
    (tmp_path / "link").symlink_to("/proc/1/root/mnt")
    pool._learn_sources({"rel.py": (1, 1), "/etc/passwd": (1, 1), "/proc/1/root/mnt/fuse/x.py": (1, 1),
                         "//proc/1/root/x.py": (1, 1), "/./proc/1/root/x.py": (1, 1),
                         str(tmp_path / "link" / "x.py"): (1, 1),
                         str(real): (1, 1), "/no/such/a.py": (5, 5), "/no/such/b.py": (5, 5)})
    added = {k: v for k, v in pool.sources.items() if k not in before}
    stat = real.stat()
    assert added == {str(real): (stat.st_mtime_ns, stat.st_size), "/no/such/a.py": (0, -1)}
    assert "listed 1 more source files than are watched per agent" in caplog.text


async def test_a_process_started_for_a_job_is_not_a_warm_one(tmp_path):
    pool = ProcessPool(definition(tmp_path, "    pass"), "text", 20)  # not started: nothing idle
    proc = await pool.take()
    try:
        await proc.wait_ready(30)
        assert not proc.warm  # ready by the assignment, perhaps, but started for this job (a span says so)
    finally:
        proc.kill()
        await pool.close()
