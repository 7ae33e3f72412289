"""What agenthost relies on in livekit-agents, checked before any job runs."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("livekit.agents", reason="needs the extra: pip install 'agenthost[agents]'")

from livekit.agents import AgentServer, JobContext, job

from host.lkagents import compat, project


async def entry(ctx: JobContext) -> None:
    pass


def test_a_plain_async_function_is_an_entry():
    resolved = compat.resolve(entry)
    assert resolved.entrypoint is entry and resolved.setup is None


def test_an_agent_server_gives_its_session_entrypoint_prewarm_and_session_end():
    server = AgentServer()

    def prewarm(proc: object) -> None:
        pass

    async def ended(ctx: JobContext) -> None:
        pass

    server.setup_fnc = prewarm
    server.rtc_session(entry, agent_name="named", on_session_end=ended)
    resolved = compat.resolve(server)
    assert (resolved.entrypoint, resolved.setup, resolved.session_end) == (entry, prewarm, ended)
    declared = {"name": "other", "entrypoint": "mod.py:server", "setup": None, "dispatch": "explicit",
                "job_type": "room", "stated": ["name"], "idle": 1,
                "init_timeout": 10.0, "shutdown_timeout": 10.0, "memory_warn_mb": 1000, "memory_limit_mb": 0}
    error, found = project.check_entry(server, declared)
    assert error is None and [(severity, key) for severity, key, _ in found] == [("warning", "name"),
                                                                                  ("warning", "shutdown")]
    assert "registers agent_name 'named'; agenthost registers the agent file's name 'other'" in found[0][2]
    # livekit-agents gives on_session_end 300 s; agenthost, the rest of shutdown.timeout, unless the file says
    assert "livekit-agents gives 300 s by default" in found[1][2] and "(10s here)" in found[1][2]
    assert project.check_entry(server, {**declared, "name": "named", "stated": ["name", "shutdown"]}) == (None, [])


def test_what_cannot_be_an_entry_is_said_clearly():
    with pytest.raises(compat.AgentsApiError, match="no session entrypoint"):
        compat.resolve(AgentServer())
    with pytest.raises(compat.AgentsApiError, match="must be an async function"):
        compat.resolve(lambda ctx: None)

    async def two(a: object, b: object) -> None:
        pass

    with pytest.raises(compat.AgentsApiError, match="exactly one argument"):
        compat.resolve(two)


def test_an_incompatible_release_fails_at_the_check(monkeypatch):
    compat.check_compatible()  # the installed one is supported

    class Changed:
        def __init__(self, *, proc: object, info: object) -> None:
            pass

    monkeypatch.setattr(job, "JobContext", Changed)
    with pytest.raises(compat.AgentsApiError, match=r"JobContext\(\) no longer takes room, on_connect"):
        compat.check_compatible()


def test_a_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "livekit.agents", None)
    with pytest.raises(compat.AgentsApiError, match=r"pip install 'agenthost\[agents\]'"):
        compat.version()


def test_inference_runners_are_refused(monkeypatch):
    from livekit.agents.inference_runner import _InferenceRunner

    compat.check_no_inference_runners()
    monkeypatch.setitem(_InferenceRunner.registered_runners, "lk_end_of_utterance_en", object)
    with pytest.raises(compat.AgentsApiError, match=r"lk_end_of_utterance_en.*inference process"):
        compat.check_no_inference_runners()
