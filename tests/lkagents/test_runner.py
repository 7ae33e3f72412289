"""An `api: livekit-agents` job's runtime, built as a job process builds it: the agent's code imported, its entry
resolved, its setup run on a livekit-agents JobProcess (the job itself is run end to end: tests/e2e)."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("livekit.agents", reason="needs the extra: pip install 'agenthost[agents]'")

from host.config.entrypoints import module_name_for_file
from host.config.loader import load
from host.lkagents.runner import AgentsRuntime, import_agent

MODULE = """
from livekit.agents import AgentServer, JobContext, JobProcess, cli

server = AgentServer()


def prewarm(proc: JobProcess) -> None:
    proc.userdata["warm"] = True


server.setup_fnc = prewarm


@server.rtc_session(agent_name="greeter")
async def entry(ctx: JobContext) -> None:
    await ctx.connect()


cli.run_app(server)  # at import: recorded, not run
"""


def definition(tmp_path, entrypoint: str):
    (tmp_path / "lk_runner_agent.py").write_text(MODULE)
    (tmp_path / "a.yaml").write_text(f"name: greeter\napi: livekit-agents\nentrypoint: {entrypoint}\n"
                                     "dispatch: explicit\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


@pytest.fixture(autouse=True)
def _forget_the_module(tmp_path):
    yield
    sys.modules.pop(module_name_for_file(str(tmp_path / "lk_runner_agent.py")), None)


def test_the_servers_setup_runs_on_a_job_process_and_its_session_function_is_the_entry(tmp_path):
    runtime = AgentsRuntime(definition(tmp_path, "lk_runner_agent.py:server"))
    assert runtime.proc.userdata == {"warm": True}
    assert runtime.entry.entrypoint.__name__ == "entry"


def test_a_template_imports_the_agent_without_running_it(tmp_path):
    import_agent(definition(tmp_path, "lk_runner_agent.py:server"))
    module = sys.modules[module_name_for_file(str(tmp_path / "lk_runner_agent.py"))]
    assert module.server.setup_fnc is module.prewarm  # imported whole: cli.run_app returned instead of serving
