"""The states of a job process as the host sees it, and the only moves between them."""

from __future__ import annotations

import enum


class ProcessState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"  # prewarmed, waiting for a job
    RUNNING = "running"
    SHUTTING_DOWN = "shutting_down"
    EXITED = "exited"


# the only moves a process makes; anything else is a bug in the caller (or a late message) and is ignored
TRANSITIONS: dict[ProcessState, frozenset[ProcessState]] = {
    ProcessState.STARTING: frozenset({ProcessState.IDLE, ProcessState.RUNNING, ProcessState.EXITED}),
    ProcessState.IDLE: frozenset({ProcessState.RUNNING, ProcessState.EXITED}),
    ProcessState.RUNNING: frozenset({ProcessState.SHUTTING_DOWN, ProcessState.EXITED}),
    ProcessState.SHUTTING_DOWN: frozenset({ProcessState.EXITED}),
    ProcessState.EXITED: frozenset(),
}
