"""A call's job log lines, as the host serving it logs them (`agenthost console --logs`): read from the host's
/logs (`agenthost run --job-logs`, which `agenthost dev` turns on) every READ_EVERY seconds and handed to the
console one line at a time. The host's line about the job's end is kept: it says why an agent left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from host.ops.status import printable
from host.ops.status_fetch import StatusError, fetch_logs

READ_EVERY = 0.3  # seconds between two reads of the host's /logs
MAX_PAGES_SKIPPED = 20  # of a reused room's earlier lines, at most


@dataclass(frozen=True)
class JobLogSource:
    address: str  # http://HOST:PORT of the host serving the agent
    token: str | None = None


class HostLogs:
    def __init__(self, source: JobLogSource, room: str, say: Callable[[str], None]) -> None:
        self.source, self.room, self._say = source, room, say
        self.job_end: str | None = None  # the host's line about the job's end, once it came
        self.job_end_seen = asyncio.Event()
        self._after = 0

    def _url(self) -> str:
        return f"{self.source.address}/logs?room={quote(self.room, safe='')}&after={self._after}"

    def skip_earlier(self) -> None:
        """Start after what a room given again already holds of earlier jobs (blocking: run it in a thread)."""
        with contextlib.suppress(StatusError):  # said by `follow`, which tries again
            for _ in range(MAX_PAGES_SKIPPED):
                lines, self._after = fetch_logs(self._url(), self.source.token)
                if not lines:
                    break

    async def follow(self) -> None:
        """Until cancelled: each new line said as `[log] LEVEL message`; a host that cannot be read is said once
        (and again once it can be after all)."""
        failing = False
        while True:
            try:
                lines, self._after = await asyncio.to_thread(fetch_logs, self._url(), self.source.token)
            except StatusError as exc:
                if not failing:
                    self._say(f"  (no job log lines: cannot read {self.source.address}/logs: {exc})")
                failing = True
            else:
                if failing:
                    self._say(f"  (job log lines from {self.source.address} again)")
                failing = False
                for line in lines:
                    message = printable(str(line.get("message", "")))
                    self._say(f"  [log] {printable(str(line.get('level', ''))).upper():<7} {message}")
                    if message.startswith(("job ended", "job failed")):
                        self.job_end = message
                        self.job_end_seen.set()
            await asyncio.sleep(READ_EVERY)
