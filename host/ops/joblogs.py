"""The recent log lines of each call, kept by the host for `agenthost console --logs` (GET /logs?room=...), when
`agenthost run --job-logs` (or `agenthost dev`) asks for them.

A handler on the host's logging keeps every record that names a job (the host's own lines about it, and the
lines its process wrote, which the host logs with the job's fields): at most LINES_PER_JOB lines, each cut at
MAX_LINE characters, of each of the JOBS_KEPT jobs that logged last, running or ended. A job's room is known from
the first line that names it (a job process's own lines do not), so a console shows the lines of the job in its
room, from the offer to the exit, as they come. Each line has a sequence number: a reader asks for what came
after the last one it saw, and an answer holds at most MAX_ANSWER_BYTES of lines (the reader asks again).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from typing import Any

from host.logs import MAX_FIELD, bounded, record_fields

LINES_PER_JOB = 300
JOBS_KEPT = 32
MAX_LINE = 2000  # characters of one kept line's message
MAX_ANSWER_BYTES = 512 * 1024


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
        self._jobs: OrderedDict[str, deque[JobLine]] = OrderedDict()  # the job that logged last at the end
        self._rooms: dict[str, str] = {}  # job -> its room, from the first line that named it

    def emit(self, record: logging.LogRecord) -> None:  # under the handler's lock, on any thread
        try:
            fields = record_fields(record)
            job_id = fields.get("job_id")
            if not job_id:
                return
            job_id = bounded(job_id)
            if fields.get("room") and job_id not in self._rooms:
                self._rooms[job_id] = bounded(fields["room"])
            self._seq += 1
            line = JobLine(self._seq, record.created, record.levelname.lower(), record.name,
                           bounded(record.getMessage(), MAX_LINE), job_id, self._rooms.get(job_id, ""))
            lines = self._jobs.pop(job_id, None)
            if lines is None:
                lines = deque(maxlen=LINES_PER_JOB)
            self._jobs[job_id] = lines  # the newest end: a long call that goes on logging is kept
            lines.append(line)
            while len(self._jobs) > JOBS_KEPT:
                gone, _ = self._jobs.popitem(last=False)
                self._rooms.pop(gone, None)
        except Exception:
            self.handleError(record)

    def after(self, seq: int, room: str | None = None, job_id: str | None = None) -> dict[str, Any]:
        """The lines after `seq` of the jobs of `room` or of `job_id` (one of them is needed), oldest first, and
        the sequence number to ask after next time."""
        if room is None and job_id is None:
            raise ValueError("a room or a job is needed")
        room = bounded(room, MAX_FIELD) if room is not None else None
        assert self.lock is not None
        with self.lock:
            jobs = [key for key in self._jobs if (job_id is None or key == job_id)
                    and (room is None or self._rooms.get(key) == room)]
            found = sorted((line for key in jobs for line in self._jobs[key] if line.seq > seq),
                           key=lambda line: line.seq)
        answer: list[dict[str, Any]] = []
        size = 0
        for line in found:
            body = asdict(line)
            size += len(json.dumps(body)) + 8
            if answer and size > MAX_ANSWER_BYTES:
                break
            answer.append(body)
        return {"lines": answer, "next": answer[-1]["seq"] if answer else seq}
