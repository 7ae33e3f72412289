"""Reading a livekit-agents project's server: an AgentServer, or what the module gives cli.run_app."""

from __future__ import annotations

import pytest

pytest.importorskip("livekit.agents", reason="needs the extra: pip install 'agenthost[agents]'")

from livekit.agents import JobContext, WorkerOptions, cli

from host.lkagents import compat
from host.lkagents.server import find_server, runs_app_under_guard


async def entry(ctx: JobContext) -> None:
    pass


def prewarm(proc: object) -> None:
    pass


def test_worker_options_given_to_run_app_are_recorded_not_run():
    compat.intercept_run_app()
    options = WorkerOptions(entrypoint_fnc=entry, prewarm_fnc=prewarm, agent_name="support")
    cli.run_app(options)  # returns: recorded, livekit-agents' server is not started
    assert compat.RUN_APP_CALLS[-1] is options
    settings = find_server(entry)
    assert settings is not None and settings.source == "the WorkerOptions given to cli.run_app"
    assert (settings.agent_name, settings.setup, settings.named) == ("support", "prewarm", "options")


def test_a_run_app_under_the_main_guard_is_found_in_the_source_without_running_it(tmp_path):
    guarded = tmp_path / "guarded.py"
    guarded.write_text("from livekit.agents import cli\nif __name__ == '__main__':\n    cli.run_app(None)\n")
    plain = tmp_path / "plain.py"
    plain.write_text("def entrypoint(ctx):\n    pass\n")
    module = type("Module", (), {})
    module.__file__ = str(guarded)
    assert runs_app_under_guard(module)
    module.__file__ = str(plain)
    assert not runs_app_under_guard(module)
    module.__file__ = str(tmp_path / "gone.py")
    assert not runs_app_under_guard(module)


def test_only_a_function_calling_livekit_agents_run_app_is_run_to_read_its_server(tmp_path):
    """`main()` calling cli.run_app is run (intercepted) to read its options; a function calling another
    framework's run_app (a web server's, that would really serve) is not."""
    import importlib.util
    import sys

    from host.lkagents import compat
    from host.lkagents.server import run_app_given

    compat.intercept_run_app()
    (tmp_path / "two_apps.py").write_text(
        "from livekit.agents import WorkerOptions, cli\n\n"
        "class web:\n    @staticmethod\n    def run_app(app):\n        raise SystemExit('the web server ran')\n\n"
        "async def entrypoint(ctx):\n    pass\n\n"
        "def health():\n    web.run_app(object())\n\n"
        "def main():\n    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, agent_name='two'))\n")
    spec = importlib.util.spec_from_file_location("two_apps", tmp_path / "two_apps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["two_apps"] = module
    try:
        spec.loader.exec_module(module)
        health_ran: list[bool] = []
        module.web.run_app = lambda app: health_ran.append(True)  # what `health` would call
        before = len(compat.RUN_APP_CALLS)
        run_app_given(module)
        assert len(compat.RUN_APP_CALLS) == before + 1 and compat.RUN_APP_CALLS[-1].agent_name == "two"
        assert health_ran == []
    finally:
        del sys.modules["two_apps"]
