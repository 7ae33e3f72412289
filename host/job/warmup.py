"""What a template runs before it forks, so that each job process it forks copies fewer of its pages.

CPython 3.11 specializes the code it runs: it counts a function's calls and an instruction's runs in the code
object itself, then rewrites the instruction for what it met. In a process forked from the template, each such
write to code the template has not run yet copies the page it is on, in every job process. So the template
runs the job runtime's event-loop machinery (tasks, waits, events, queues, timeouts, a pipe reader, the
host's log formatting) WARM_RUNS times before it forks: that code is specialized once, in the template, and
the job processes share it. It opens no socket and starts no thread, and leaves no event loop behind.
"""

from __future__ import annotations

import asyncio
import logging
import os

WARM_RUNS = 20  # enough runs for the interpreter to specialize what they run


def warm_up() -> bool:
    """Run the job runtime's event-loop and logging paths WARM_RUNS times, without a job; False if it could not
    (no descriptor to spare, say: the forks then copy a little more, and work the same)."""
    record = logging.LogRecord("agenthost.job", logging.INFO, __file__, 0, "job %s", ("started",), None)
    try:
        for _ in range(WARM_RUNS):
            asyncio.run(_exercise())
            for handler in logging.getLogger().handlers:
                handler.filter(record)  # a job's fields filter (it writes the fields into the record)
                handler.format(record)
    except OSError as exc:
        logging.getLogger("agenthost.job").debug("no warm-up before forking: %s", exc)
        return False
    return True


async def _exercise() -> None:
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()  # the job's pipe to its host is watched the same way
    try:
        readable: asyncio.Future[bytes] = loop.create_future()

        def on_readable() -> None:
            if not readable.done():
                readable.set_result(os.read(read_end, 1))

        loop.add_reader(read_end, on_readable)
        os.write(write_end, b".")
        await asyncio.wait_for(readable, 1.0)
        loop.remove_reader(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    queue: asyncio.Queue[None] = asyncio.Queue()
    event = asyncio.Event()
    getter = asyncio.create_task(queue.get())
    waiter = asyncio.create_task(event.wait())
    queue.put_nowait(None)
    await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
    event.set()
    await asyncio.gather(waiter, asyncio.sleep(0))
    loop.call_soon(event.clear)
    await asyncio.sleep(0)
