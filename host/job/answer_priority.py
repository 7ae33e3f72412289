"""A voice call's answer first, the job process's side: it follows its primary AgentSession's states and tells
the host when its call starts and stops waiting for the agent's answer (Answering); the host favours the
process meanwhile, as far as it may and for a bounded time (host.process.priority). The process itself may
not raise its own priority."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

Change = Literal["waiting", "answered"] | None

ANSWER_BOOST = 0  # nice levels a job process waiting for its answer runs above the others, by default (none)
MOST = 10
ANSWER_PRIORITY = "AGENTHOST_ANSWER_PRIORITY"  # the host's --answer-priority, as its processes inherit it


def answer_levels() -> int:
    """The host's --answer-priority, read by a process before any agent code runs (agent code may change the
    environment): the most a job process may run above the host."""
    try:
        return max(0, min(MOST, int(os.environ.get(ANSWER_PRIORITY, ANSWER_BOOST))))
    except ValueError:
        return ANSWER_BOOST


def change_for(event: str, old: str, new: str, agent: str = "listening") -> Change:
    """What a state change of the session says of its call, the agent being in state `agent`: `waiting` when
    the caller has just stopped speaking (not over the agent's own speech: a word while it speaks) or the agent
    starts thinking; `answered` once the agent speaks, goes back to listening without a word, the caller
    speaks again or the session ends."""
    if event == "user_state_changed":
        if new == "speaking":
            return "answered"
        return "waiting" if old == "speaking" and new == "listening" and agent != "speaking" else None
    if event == "agent_state_changed":
        if new == "thinking":
            return "waiting"
        return "answered" if new in ("speaking", "listening", "idle") else None
    return "answered" if event == "close" else None


class AnswerWatch:
    """Tells `tell(waiting)` each time the call starts or stops waiting for an answer, once each."""

    def __init__(self, tell: Callable[[bool], object]) -> None:
        self.tell = tell
        self.waiting = False
        self.agent = "listening"  # the agent's state, as last said

    def watch(self, session: Any) -> None:
        """Follow an AgentSession's states (the job's primary session, from its start)."""
        def on_agent(ev: Any) -> None:
            self.agent = ev.new_state
            self.apply(change_for("agent_state_changed", ev.old_state, ev.new_state))

        session.on("user_state_changed", lambda ev: self.apply(change_for("user_state_changed", ev.old_state,
                                                                          ev.new_state, self.agent)))
        session.on("agent_state_changed", on_agent)
        session.on("close", lambda _ev: self.apply("answered"))

    def apply(self, change: Change) -> None:
        if change is not None and (change == "waiting") != self.waiting:
            self.waiting = change == "waiting"
            self.tell(self.waiting)
