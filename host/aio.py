"""Small asyncio helpers every layer of the runtime uses: owned background tasks, backoff, and loops that end
when cancelled even where a library swallowed the cancellation."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger("agenthost")


class TaskSet:
    """Background tasks owned by one object: kept referenced while they run, failures logged, cancelled
    together. A task's unexpected exception is logged with `what` instead of asyncio's "Task exception was
    never retrieved"."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("%s: task %s failed: %s", self._what, task.get_name(), exc, exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_all(self) -> None:
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def backoff_delay(attempt: int, start: float, cap: float) -> float:
    """Capped exponential backoff with jitter: uniform in [d/2, d], d = min(cap, start * 2**attempt).

    The jitter keeps many hosts (or agents) that failed together from retrying in lockstep."""
    d = min(cap, start * 2 ** max(0, attempt))
    return random.uniform(d / 2, d)


def cancel_requested() -> bool:
    """Whether the running task was asked to stop, even when a library it awaited swallowed the CancelledError
    (redis-py's asyncio client, on Python 3.11, can): a loop that looks at this each turn still ends, and
    whoever waits for it is not left waiting. (Python 3.10 cannot tell: False.)"""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling is not None and cancelling())
