"""`run --reload`: watch agent files and agent source folders, and ask for a reload on change.

Folders are watched without recursion: the agent paths (as the loader reads them) and
the folder of every project source file the agents' processes imported. A burst of
saves becomes one reload (watchfiles collects changes until `step` ms pass quietly).
When a reload changes the set of folders, the watch starts over on the new set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable

import watchfiles

logger = logging.getLogger("agenthost.watch")

# agent files, metadata schemas and code; editor leftovers (swap, backup, lock files) are ignored
WATCH_FILTER = watchfiles.PythonFilter(extra_extensions=(".yaml", ".yml", ".json"))
STEP_MS = 50  # quiet time that ends a burst of saves
MAX_BURST_MS = 1600  # a burst longer than this is cut into several reloads


def folders(paths: Iterable[str]) -> frozenset[str]:
    """The existing folders to watch for a set of files and folders."""
    result = set()
    for path in paths:
        folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        if os.path.isdir(folder):
            result.add(os.path.realpath(folder))
    return frozenset(result)


async def watch(watched: Callable[[], frozenset[str]], on_change: Callable[[list[str]], Awaitable[object]],
                stop: asyncio.Event) -> None:
    """Call `on_change` with the changed paths after each burst, until `stop` is set."""
    while not stop.is_set():
        current = watched()
        logger.debug("watching %s", ", ".join(sorted(current)))
        try:
            if current:
                async for changes in watchfiles.awatch(*sorted(current), watch_filter=WATCH_FILTER,
                                                       debounce=MAX_BURST_MS, step=STEP_MS, stop_event=stop,
                                                       recursive=False):
                    await on_change(sorted({path for _change, path in changes}))
                    if watched() != current:
                        break
                else:
                    return  # stopped
                continue
        except OSError as exc:  # a watched folder vanished: watch what is left
            logger.warning("watching stopped (%s); watching again in 1s", exc)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
