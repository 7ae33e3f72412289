"""A voice call's answer first, the job process's side: it follows its primary AgentSession's states and tells
the host when its call starts and stops waiting for the agent's answer (Answering); the host favours the
process meanwhile, as far as it may and for a bounded time (host.process.priority). The process itself may
not raise its own priority."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

Change = Literal["waiting", "answered"] | None


def change_for(event: str, old: str, new: str) -> Change:
    """What a state change of the session says of its call: `waiting` when the caller has just stopped
    speaking or the agent starts thinking; `answered` once the agent speaks, the caller speaks again or the
    session ends."""
    if event == "user_state_changed":
        if new == "speaking":
            return "answered"
        return "waiting" if old == "speaking" and new == "listening" else None
    if event == "agent_state_changed":
        if new == "thinking":
            return "waiting"
        return "answered" if new == "speaking" else None
    return "answered" if event == "close" else None


class AnswerWatch:
    """Tells `tell(waiting)` each time the call starts or stops waiting for an answer, once each."""

    def __init__(self, tell: Callable[[bool], object]) -> None:
        self.tell = tell
        self.waiting = False

    def watch(self, session: Any) -> None:
        """Follow an AgentSession's states (the job's primary session, from its start)."""
        session.on("user_state_changed", lambda ev: self.apply(change_for("user_state_changed", ev.old_state,
                                                                          ev.new_state)))
        session.on("agent_state_changed", lambda ev: self.apply(change_for("agent_state_changed", ev.old_state,
                                                                           ev.new_state)))
        session.on("close", lambda _ev: self.apply("answered"))

    def apply(self, change: Change) -> None:
        if change is not None and (change == "waiting") != self.waiting:
            self.waiting = change == "waiting"
            self.tell(self.waiting)
