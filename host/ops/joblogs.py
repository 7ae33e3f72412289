"""The recent log lines of each call, kept by the host for `agenthost console --logs` (GET /logs?room=...).

A handler on the host's logging keeps every record that names a job (the host's own lines about it, and the
lines its process wrote, which the host logs with the job's fields): at most LINES_PER_JOB lines of each of
the JOBS_KEPT most recent jobs, running or ended, so a console shows the lines of the job in its room, from
the offer to the exit, as they come. Each line has a sequence number: a reader asks for what came after the
last one it saw.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from typing import Any

from host.logs import MAX_FIELD, MAX_MESSAGE, bounded, record_fields

LINES_PER_JOB = 500
JOBS_KEPT = 64
MAX_ANSWER_LINES = 500  # of one answer: a reader far behind asks again


@dataclass(frozen=True)
class JobLine:
    seq: int
    time: float
    level: str
    logger: str
    message: str
    job_id: str
    room: str


class JobLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._seq = 0
        self._jobs: OrderedDict[str, deque[JobLine]] = OrderedDict()  # oldest job first

    def emit(self, record: logging.LogRecord) -> None:  # under the handler's lock
        fields = record_fields(record)
        job_id = fields.get("job_id")
        if not job_id:
            return
        self._seq += 1
        line = JobLine(self._seq, record.created, record.levelname.lower(), record.name,
                       bounded(record.getMessage(), MAX_MESSAGE), bounded(job_id), bounded(fields.get("room", "")))
        lines = self._jobs.get(line.job_id)
        if lines is None:
            lines = self._jobs[line.job_id] = deque(maxlen=LINES_PER_JOB)
            while len(self._jobs) > JOBS_KEPT:
                self._jobs.popitem(last=False)
        lines.append(line)

    def after(self, seq: int, room: str | None = None, job_id: str | None = None) -> dict[str, Any]:
        """The lines after `seq` of the jobs of `room` (any of whose lines names it) or of `job_id`, oldest
        first, and the sequence number to ask after next time."""
        room = bounded(room, MAX_FIELD) if room is not None else None
        assert self.lock is not None
        with self.lock:
            found = [line for key, lines in self._jobs.items()
                     if (job_id is None or key == job_id) and (room is None or any(x.room == room for x in lines))
                     for line in lines if line.seq > seq]
        found.sort(key=lambda line: line.seq)
        found = found[:MAX_ANSWER_LINES]
        return {"lines": [asdict(line) for line in found], "next": found[-1].seq if found else seq}
