"""What an agent file changes about the livekit-agents server it serves."""

from __future__ import annotations

import dataclasses
import functools

import pytest

pytest.importorskip("livekit.agents", reason="needs the extra: pip install 'agenthost[agents]'")

from livekit.agents import AgentServer, JobContext, JobRequest, WorkerPermissions, WorkerType

from host.lkagents import project
from host.lkagents.server import read_server


async def entry(ctx: JobContext) -> None:
    pass


async def screen(req: JobRequest) -> None:
    await req.accept()


def agent_file(**changes: object) -> project.AgentFile:
    fields: dict[str, object] = {"name": "support", "entrypoint": "../agent.py:entry", "setup": None,
                                 "dispatch": "explicit", "job_type": "room",
                                 "stated": frozenset({"name", "entrypoint", "api"}), "idle": 1,
                                 "init_timeout": 10.0, "shutdown_timeout": 10.0, "memory_warn_mb": 1000,
                                 "memory_limit_mb": 0}
    return project.AgentFile(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_server_without_agent_name_is_automatic_and_an_explicit_default_is_an_error():
    server = AgentServer()
    server.rtc_session(entry)
    settings = read_server(server, None)
    assert settings.source == "the AgentServer given to cli.run_app"
    settings = dataclasses.replace(settings, source="AgentServer 'server'")
    assert settings.agent_name == "" and settings.server_type == "room" and not settings.on_request
    (found,) = project.differences(settings, agent_file())
    assert (found.severity, found.key) == ("error", "dispatch")
    assert found.message.startswith("AgentServer 'server' registers no agent_name, so livekit-agents dispatches "
                                    "it automatically to every new room; this agent file is dispatch: explicit")
    assert "Add `dispatch: automatic`" in found.message
    # written on purpose, it is said but is no error; the same dispatch is nothing to say
    (stated,) = project.differences(settings, agent_file(stated=frozenset({"dispatch"})))
    assert stated.severity == "warning"
    assert project.differences(settings, agent_file(dispatch="automatic")) == []


def test_publisher_type_request_function_and_permissions_are_each_said():
    server = AgentServer(permissions=WorkerPermissions(hidden=True), num_idle_processes=3,
                         job_memory_limit_mb=500, load_threshold=0.5)
    server.rtc_session(entry, agent_name="support", type=WorkerType.PUBLISHER, on_request=screen)
    settings = dataclasses.replace(read_server(server, None), source="AgentServer 'server'")
    found = {d.key: d for d in project.differences(settings, agent_file())}
    assert found["job_type"].severity == "error"
    assert "is ServerType.PUBLISHER (one job per publisher); this agent file is job_type: room. Add " \
           "`job_type: publisher` to keep it" in found["job_type"].message
    assert found["metadata"].severity == "warning"
    assert "sets on_request (request_fnc), which agenthost does not call" in found["metadata"].message
    assert "sets permissions (hidden=True), which are not carried over" in found["participant"].message
    assert "write `processes.idle: 3`" in found["processes.idle"].message
    assert "write `limits.memory_limit_mb: 500`" in found["limits.memory_limit_mb"].message
    assert found["limits.memory_limit_mb"].severity == "error"  # a limit silently gone
    assert found["processes.idle"].severity == "warning"
    assert "sets load_threshold=0.5: it is the host's: `agenthost run --load-threshold`" in found["entrypoint"].message
    assert project.differences(settings, agent_file(job_type="publisher", idle=3, memory_limit_mb=500,
                                                    stated=frozenset({"job_type"})))[0].key == "metadata"


def prewarm(proc: object) -> None:
    pass


def test_a_prewarm_given_to_run_app_is_an_error_unless_the_agent_file_names_a_setup():
    from livekit.agents import WorkerOptions, cli

    from host.lkagents import compat
    from host.lkagents.server import find_server

    compat.intercept_run_app()
    cli.run_app(WorkerOptions(entrypoint_fnc=entry, prewarm_fnc=prewarm, agent_name="support"))
    settings = find_server(entry)
    assert settings is not None
    # naming the function alone leaves its prewarm out: an error, unless the file names a setup
    (missing,) = project.differences(settings, agent_file())
    assert (missing.severity, missing.key) == ("error", "setup")
    assert missing.message.endswith("this agent file names the entrypoint function only, so it would not run. "
                                    "Add `setup: ../agent.py:prewarm`")
    assert project.differences(settings, agent_file(setup="../agent.py:prewarm")) == []


def test_options_set_in_code_that_the_host_owns_are_each_said_and_secrets_not_shown():
    from livekit.agents.worker import ServerEnvOption

    def my_load(_server: object) -> float:
        return 0.99

    server = AgentServer(ws_url="wss://example.livekit.cloud", api_key="APIkey", api_secret="s3cr3t",
                         load_fnc=my_load, log_level="DEBUG", multiprocessing_context="spawn",
                         num_idle_processes=ServerEnvOption(dev_default=0, prod_default=5),
                         load_threshold=ServerEnvOption(dev_default=1.0, prod_default=0.5))
    server.rtc_session(entry, agent_name="support")
    settings = read_server(server, None)
    assert settings.options["num_idle_processes"] == 5  # a dev/prod option: its production value
    said = " ".join(d.message for d in project.differences(settings, agent_file(idle=5)))
    for option in ("ws_url='wss://example.livekit.cloud'", "load_fnc='my_load'", "log_level='DEBUG'",
                   "multiprocessing_context='spawn'", "load_threshold=0.5", "api_key=", "api_secret="):
        assert option in said, option
    assert "APIkey" not in said and "s3cr3t" not in said
    # livekit-agents' own defaults (as WorkerOptions gives them: empty strings, its load function) say nothing
    from livekit.agents.worker import ServerOptions

    plain = read_server(ServerOptions(entrypoint_fnc=entry, agent_name="support"), None)
    assert plain.options == {}


def test_options_livekit_agents_takes_from_the_environment_are_not_said_to_be_in_the_code(monkeypatch):
    for name, value in (("LIVEKIT_URL", "ws://elsewhere:7880"), ("LIVEKIT_API_KEY", "k"),
                        ("LIVEKIT_API_SECRET", "s"), ("HTTPS_PROXY", "http://proxy:3128")):
        monkeypatch.setenv(name, value)
    server = AgentServer()
    server.rtc_session(entry, agent_name="support")
    assert read_server(server, None).options == {}
    proxied = AgentServer(http_proxy="http://user:pw@proxy.corp:3128")
    proxied.rtc_session(entry, agent_name="support")
    assert read_server(proxied, None).options == {"http_proxy": "http://***@proxy.corp:3128"}


def test_naming_the_function_of_a_server_with_a_session_end_says_it_would_not_run():
    async def on_end(ctx: JobContext) -> None:
        pass

    server = AgentServer()
    server.rtc_session(entry, agent_name="support", on_session_end=on_end)
    named_server = read_server(server, None)
    assert named_server.session_end == "on_end"
    assert not any("would not run" in d.message for d in project.differences(named_server, agent_file()))
    function = dataclasses.replace(named_server, named="function")
    (said,) = [d for d in project.differences(function, agent_file()) if "would not run" in d.message]
    assert said.severity == "warning" and "name the server instead (`entrypoint: ../agent.py:SERVER`)" in said.message


@pytest.mark.parametrize("setup", [lambda proc: None, functools.partial(prewarm), "nested"])
def test_a_prewarm_with_no_top_level_name_is_an_error_that_says_how_to_name_it(setup):
    from livekit.agents import WorkerOptions, cli

    from host.lkagents import compat
    from host.lkagents.server import find_server

    if setup == "nested":
        def setup(proc: object) -> None:
            pass
    compat.intercept_run_app()
    cli.run_app(WorkerOptions(entrypoint_fnc=entry, prewarm_fnc=setup, agent_name="support"))
    settings = find_server(entry)
    assert settings is not None and settings.setup is None and settings.setup_unnamed
    (missing,) = project.differences(settings, agent_file())
    assert (missing.severity, missing.key) == ("error", "setup")
    assert "has no top-level name" in missing.message and "define it at the module's top level" in missing.message


def test_options_a_module_loads_into_its_environment_are_said_to_be_for_the_host_to_export(monkeypatch):
    """A project that loads LIVEKIT_URL and its keys from a .env file: the host reads none of them."""
    from host.lkagents import compat

    monkeypatch.delenv("LIVEKIT_URL", raising=False)
    with compat.environment_kept():
        monkeypatch.setenv("LIVEKIT_URL", "wss://project.livekit.cloud")  # what load_dotenv() would do
        server = AgentServer(ws_url="wss://project.livekit.cloud")
        server.rtc_session(entry, agent_name="support")
        options = read_server(server, None).options
    assert options["ws_url"].startswith("wss://project.livekit.cloud (loaded by the module into its environment")
    assert "the host reads no .env file" in options["ws_url"]
