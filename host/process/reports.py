"""What a job process says of itself up its pipe, as the host keeps it: the project files it imported and the
CPU its prewarm took (Ready), how it is doing every second (JobVitals), its entrypoint's start, its result
(JobDone), and how many of its spans it could not deliver. Written by the process's handle
(host.process.handle) as the messages come; read by the job table, the pool and the view."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from host.wire.messages import VITALS_EVERY, JobDone, JobStarted, JobVitals, Ready


@dataclass
class JobReports:
    sources: dict[str, tuple[int, int]] = field(default_factory=dict)  # project files it imported
    prewarm_cpu: float = 0.0  # CPU seconds it took to get ready: not its job's
    vitals: JobVitals | None = None  # its last report of its loop lag and room
    vitals_at: float = 0.0  # when that report came (monotonic)
    met_someone: bool = False  # some report said another was in its room (its call had a caller)
    result: JobDone | None = None  # what it said when its job ended; None if it never did
    spans_dropped: int = 0  # of its traces, as it last said
    on_started: Callable[[float], None] | None = None  # called with entrypoint_at
    on_spans_dropped: Callable[[int], None] | None = None  # called with each increase

    def ready(self, msg: Ready) -> None:
        self.sources, self.prewarm_cpu = msg.sources, msg.prewarm_cpu

    def take(self, msg: object) -> bool:
        """Keep what `msg` says of the job; False for a message that is not a report (a change of state)."""
        if isinstance(msg, JobVitals):
            self.vitals, self.vitals_at = msg, time.monotonic()
            self.met_someone = self.met_someone or msg.participants > 0
            self._note_spans_dropped(msg.spans_dropped)
        elif isinstance(msg, JobStarted):
            if self.on_started is not None:
                self.on_started(msg.entrypoint_at)
        elif isinstance(msg, JobDone):
            self.result = msg
            self._note_spans_dropped(msg.spans_dropped)
        else:
            return False
        return True

    @property
    def own_bytes(self) -> int | None:
        """The job's own pages as it last said (it says them where the host may not read them); None if not."""
        return self.vitals.own_bytes if self.vitals is not None and self.vitals.own_bytes > 0 else None

    def loop_lag_ms(self, now: float | None) -> float | None:
        """The job's event-loop lag: as it last said, or, when its report is overdue at `now` (None: a job no
        longer reporting, being shut down), at least how long overdue it is (a loop blocked by synchronous work
        sends nothing until it is free, and then reports it once)."""
        if self.vitals is None:
            return None
        if now is None:
            return self.vitals.loop_lag_ms
        overdue = now - self.vitals_at - VITALS_EVERY
        return max(self.vitals.loop_lag_ms, round(overdue * 1000, 1)) if overdue > VITALS_EVERY else \
            self.vitals.loop_lag_ms

    def _note_spans_dropped(self, count: int) -> None:
        """The job's count only grows: a smaller one (a job's bug, or its lie) adds nothing."""
        more = count - self.spans_dropped
        if more > 0:
            self.spans_dropped = count
            if self.on_spans_dropped is not None:
                self.on_spans_dropped(more)
