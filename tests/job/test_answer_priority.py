"""A voice call's answer first, the job process's side (host.job.answer_priority): which session states say the
call waits for its answer, told to the host once each."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from host.job.answer_priority import AnswerWatch, change_for


@pytest.mark.parametrize(("event", "old", "new", "agent", "expected"), [
    ("user_state_changed", "speaking", "listening", "listening", "waiting"),  # the caller stopped: an answer is due
    ("user_state_changed", "speaking", "listening", "speaking", None),  # a word while the agent speaks
    ("user_state_changed", "listening", "away", "listening", None),
    ("user_state_changed", "listening", "speaking", "listening", "answered"),  # the caller speaks again
    ("agent_state_changed", "listening", "thinking", "thinking", "waiting"),
    ("agent_state_changed", "thinking", "speaking", "speaking", "answered"),  # the answer is heard
    ("agent_state_changed", "thinking", "listening", "listening", "answered"),  # nothing to say
    ("agent_state_changed", "initializing", "listening", "listening", "answered"),
    ("close", "", "", "listening", "answered"),
    ("metrics_collected", "", "", "listening", None),
])
def test_the_caller_s_end_of_speech_makes_the_call_wait_until_its_agent_answers(event, old, new, agent, expected):
    assert change_for(event, old, new, agent) == expected


class Session:
    """What AgentWatch uses of an AgentSession: `on(event, callback)`."""

    def __init__(self) -> None:
        self.handlers: dict[str, list] = {}

    def on(self, event: str, callback) -> None:
        self.handlers.setdefault(event, []).append(callback)

    def emit(self, event: str, old: str = "", new: str = "") -> None:
        for callback in self.handlers[event]:
            callback(SimpleNamespace(old_state=old, new_state=new))


def test_the_host_is_told_once_when_a_call_starts_and_stops_waiting():
    told: list[bool] = []
    session = Session()
    AnswerWatch(told.append).watch(session)
    session.emit("user_state_changed", "listening", "speaking")  # not waiting yet: nothing said
    session.emit("user_state_changed", "speaking", "listening")
    session.emit("agent_state_changed", "listening", "thinking")  # still the same wait
    session.emit("agent_state_changed", "thinking", "speaking")
    session.emit("user_state_changed", "listening", "speaking")  # a word over the agent's answer
    session.emit("user_state_changed", "speaking", "listening")  # is not a turn waiting for one
    session.emit("agent_state_changed", "speaking", "listening")
    session.emit("agent_state_changed", "listening", "thinking")  # an answer without speech (a greeting)
    session.emit("close")
    assert told == [True, False, True, False]
