from __future__ import annotations

import asyncio

from host.aio import TaskSet, backoff_delay


async def test_a_failed_task_is_logged_and_forgotten(caplog):
    tasks = TaskSet("tester")

    async def boom() -> None:
        raise ValueError("bad")

    tasks.spawn(boom(), name="boom")
    await asyncio.sleep(0.01)
    assert len(tasks) == 0
    assert "tester: task boom failed: bad" in caplog.text


async def test_cancel_all_ends_every_task():
    tasks = TaskSet("tester")
    started = [tasks.spawn(asyncio.sleep(60)) for _ in range(3)]
    assert len(tasks) == 3
    await tasks.cancel_all()
    assert all(t.cancelled() for t in started) and len(tasks) == 0


def test_backoff_grows_to_its_cap_with_jitter():
    assert all(0.5 <= backoff_delay(0, 1.0, 8.0) <= 1.0 for _ in range(50))
    assert all(2.0 <= backoff_delay(2, 1.0, 8.0) <= 4.0 for _ in range(50))
    assert all(4.0 <= backoff_delay(10, 1.0, 8.0) <= 8.0 for _ in range(50))
    assert len({backoff_delay(3, 1.0, 8.0) for _ in range(20)}) > 1
