"""A job or template process's side of its pipe to the host: telling the host, and hearing it (the host's
ShutdownJob, or the host going away)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from multiprocessing.connection import Connection

from host.job.watchdog import HostWatchdog
from host.wire.messages import ProcessMessage, ShutdownJob, TemplateMessage
from host.wire.protocol import encode

logger = logging.getLogger("agenthost.job")

_watchdog: HostWatchdog | None = None  # the process's one watch on its host (`watch_host_process`)


def send(conn: Connection, msg: ProcessMessage | TemplateMessage) -> bool:
    """Tell the host (in the form it reads: host.wire.protocol); False when it is gone (the job still ends by
    its own lifecycle)."""
    try:
        conn.send_bytes(encode(msg))
    except (BrokenPipeError, ConnectionError, OSError):
        logger.warning("the host is gone; could not report %s", type(msg).__name__)
        return False
    return True


def watch_host_process(host_pid: int, timeout: float) -> HostWatchdog:
    """Start this process's watch on the host process itself (it may die without closing the pipe)."""
    global _watchdog
    _watchdog = HostWatchdog(host_pid, timeout)
    _watchdog.start()
    return _watchdog


def watch_host(conn: Connection, shutdown: Callable[[str], None]) -> None:
    """Turn the host's ShutdownJob (or its going away) into a shutdown of the running job."""
    loop = asyncio.get_running_loop()
    if _watchdog is not None:
        _watchdog.on_host_gone = lambda: loop.call_soon_threadsafe(shutdown, "host_gone")

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            shutdown("host_gone")
            return
        if isinstance(msg, ShutdownJob):
            shutdown(msg.reason)

    loop.add_reader(conn.fileno(), on_message)
