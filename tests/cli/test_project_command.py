"""`agenthost init`: an agent file written from a livekit-agents module, never over one."""

import pytest

from host.testing.cli import ROOT, agenthost


def init_writes(tmp_path, target: str, agent: str, *lines: str) -> None:
    """`agenthost init TARGET` writes agents.d/AGENT.yaml with each of `lines`, and `validate --strict` takes it."""
    r = agenthost("init", target, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    written = (tmp_path / "agents.d" / f"{agent}.yaml").read_text()
    for line in lines:
        assert line in written, written
    assert agenthost("validate", "--strict", f"agents.d/{agent}.yaml", cwd=tmp_path).returncode == 0


def test_init_writes_an_agent_file_and_never_overwrites_one(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "agent.py").write_text(
        "from livekit.agents import AgentServer, JobContext, cli\nserver = AgentServer(load_threshold=0.5)\n\n"
        "@server.rtc_session()\nasync def session(ctx: JobContext) -> None:\n    pass\n\n"
        "if __name__ == '__main__':\n    cli.run_app(server)\n")
    r = agenthost("init", "agent.py", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("wrote agents.d/agent.yaml: agent 'agent', api: livekit-agents, dispatch: automatic\n"
                               "  not carried over: load_threshold=0.5: it is the host's")
    written = (tmp_path / "agents.d" / "agent.yaml").read_text()
    assert "entrypoint: ../agent.py:server" in written and "dispatch: automatic" in written
    r = agenthost("init", "agent.py", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "agenthost init: agents.d/agent.yaml exists: not overwritten (--force "
                                           "replaces it)\n")
    assert (tmp_path / "agents.d" / "agent.yaml").read_text() == written
    assert agenthost("init", "agent.py", "--force", cwd=tmp_path).returncode == 0
    r = agenthost("init", "missing.py", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "agenthost init: missing.py: no such file\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    r = agenthost("init", "empty.py", cwd=tmp_path)
    assert r.returncode == 1 and "no agent found" in r.stderr


def test_init_reads_a_package_module_with_relative_imports_and_its_main_guard(tmp_path):
    pytest.importorskip("livekit.agents")
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("GREETING = 'hi'\n")
    (pkg / "agent.py").write_text(
        "from livekit.agents import JobContext, JobProcess, WorkerOptions, WorkerType, cli\n"
        "from .helpers import GREETING\n\n"
        "def prewarm(proc: JobProcess) -> None:\n    proc.userdata['g'] = GREETING\n\n"
        "async def entrypoint(ctx: JobContext) -> None:\n    pass\n\n"
        "if __name__ == '__main__':\n"
        "    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, agent_name='pkg-agent',\n"
        "                              worker_type=WorkerType.PUBLISHER))\n")
    r = agenthost("init", "mypkg.agent", "--out", "deploy/a.yaml", "--import-timeout", "30s", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    written = (tmp_path / "deploy" / "a.yaml").read_text()
    for line in ("name: pkg-agent", "entrypoint: ../mypkg/agent.py:entrypoint", "setup: ../mypkg/agent.py:prewarm",
                 "dispatch: explicit", "job_type: publisher"):
        assert line in written
    # the written file resolves from anywhere: its paths are read from its own folder
    assert agenthost("validate", "--strict", str(tmp_path / "deploy"), cwd=ROOT).returncode == 0
    # the same module by its path, and its function named: its settings still come from the __main__ guard
    r = agenthost("init", "mypkg/agent.py:entrypoint", "--out", "b.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "setup: mypkg/agent.py:prewarm" in (tmp_path / "b.yaml").read_text()
    # validate reads the guarded WorkerOptions too: dropping setup and job_type is said, as errors
    (tmp_path / "c.yaml").write_text("name: pkg-agent\napi: livekit-agents\nentrypoint: mypkg/agent.py:entrypoint\n")
    r = agenthost("validate", "c.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert "$.setup: the WorkerOptions given to cli.run_app runs 'prewarm' in each process before its job " \
           "(prewarm); this agent file names the entrypoint function only, so it would not run. Add `setup: " \
           "mypkg/agent.py:prewarm`" in r.stdout
    assert "$.job_type: the WorkerOptions given to cli.run_app is ServerType.PUBLISHER" in r.stdout


def test_init_names_one_of_several_servers_and_follows_an_entrypoint_into_another_module(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "two.py").write_text(
        "from livekit.agents import AgentServer, JobContext, cli\nserver = AgentServer()\n"
        "staging = AgentServer(num_idle_processes=0)\n\n"
        "@server.rtc_session(agent_name='prod')\nasync def entry(ctx: JobContext) -> None:\n    pass\n\n"
        "@staging.rtc_session(agent_name='staging')\nasync def entry2(ctx: JobContext) -> None:\n    pass\n")
    r = agenthost("init", "two.py", cwd=tmp_path)
    assert r.returncode == 1
    assert "the module has several AgentServers (server, staging): name one (agenthost init FILE:staging)" \
        in r.stderr
    r = agenthost("init", "two.py:staging", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    written = (tmp_path / "agents.d" / "staging.yaml").read_text()
    assert "entrypoint: ../two.py:staging" in written and "idle: 0" in written
    # `import handlers.voice as voice` ... WorkerOptions(entrypoint_fnc=voice.entrypoint): that module's function,
    # with the options given to cli.run_app
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "__init__.py").write_text("")
    (tmp_path / "handlers" / "voice.py").write_text(
        "from livekit.agents import JobContext, JobProcess\n\n"
        "def prewarm(proc: JobProcess) -> None:\n    pass\n\n"
        "async def entrypoint(ctx: JobContext) -> None:\n    pass\n")
    (tmp_path / "main.py").write_text(
        "from livekit.agents import WorkerOptions, cli\nimport handlers.voice as voice\n\n"
        "if __name__ == '__main__':\n"
        "    cli.run_app(WorkerOptions(entrypoint_fnc=voice.entrypoint, prewarm_fnc=voice.prewarm,\n"
        "                              agent_name='multi', num_idle_processes=2))\n")
    init_writes(tmp_path, "main.py", "multi", "name: multi", "entrypoint: ../handlers/voice.py:entrypoint",
                "setup: ../handlers/voice.py:prewarm", "dispatch: explicit", "idle: 2")
    # the prewarm function defined beside cli.run_app, the entrypoint in another module: each named where it is
    (tmp_path / "main.py").write_text(
        "from livekit.agents import JobProcess, WorkerOptions, cli\nimport handlers.voice as voice\n\n"
        "def load_models(proc: JobProcess) -> None:\n    pass\n\n"
        "if __name__ == '__main__':\n"
        "    cli.run_app(WorkerOptions(entrypoint_fnc=voice.entrypoint, prewarm_fnc=load_models,\n"
        "                              agent_name='split'))\n")
    init_writes(tmp_path, "main.py", "split", "entrypoint: ../handlers/voice.py:entrypoint",
                "setup: ../main.py:load_models")


def test_init_reads_an_untyped_entrypoint_given_to_run_app_by_a_main_function(tmp_path):
    """Whatever cli.run_app serves is livekit-agents code, type hints or not; and a `main()` (the function a
    `[project.scripts]` entry names) that calls cli.run_app is run to read its options."""
    pytest.importorskip("livekit.agents")
    (tmp_path / "agent.py").write_text(
        "from livekit.agents import WorkerOptions, cli\n\n"
        "def prewarm(proc):\n    proc.userdata['x'] = 1\n\n"
        "async def entrypoint(ctx):\n    await ctx.connect()\n\n"
        "def main():\n    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, "
        "agent_name='sales'))\n")
    init_writes(tmp_path, "agent.py", "sales", "api: livekit-agents", "entrypoint: ../agent.py:entrypoint",
                "setup: ../agent.py:prewarm", "dispatch: explicit")


def test_init_keeps_an_agent_name_yaml_would_read_as_a_number_and_says_one_it_renames(tmp_path):
    pytest.importorskip("livekit.agents")
    for name in ("123", "My Agent"):
        (tmp_path / "agent.py").write_text(
            "from livekit.agents import AgentServer, JobContext\nserver = AgentServer()\n\n"
            f"@server.rtc_session(agent_name={name!r})\nasync def session(ctx: JobContext) -> None:\n    pass\n")
        r = agenthost("init", "agent.py", "--out", f"agents.d/{name.replace(' ', '-')}.yaml", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
    assert 'name: "123"\n' in (tmp_path / "agents.d" / "123.yaml").read_text()
    assert "renamed: livekit-agents' agent_name 'My Agent' is not a name an agent file can have" in r.stdout
    assert "dispatch 'My-Agent' instead" in r.stdout


def test_init_refuses_a_prewarm_it_cannot_name_and_says_how(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "agent.py").write_text(
        "from functools import partial\nfrom livekit.agents import JobContext, WorkerOptions, cli\n\n"
        "def prewarm(proc, size='small'):\n    pass\n\n"
        "async def entrypoint(ctx: JobContext):\n    pass\n\n"
        "if __name__ == '__main__':\n"
        "    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=partial(prewarm, size='large')))\n")
    r = agenthost("init", "agent.py", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "runs functools.partial(prewarm, ...) in each process before its job (prewarm), which has no " \
           "top-level name" in r.stderr, r.stderr


def test_validate_checks_each_agent_with_its_own_modules(tmp_path):
    """Two agents, each with a `prompts.py` beside it: each imports its own (as its own process would), not the
    one the other agent loaded first."""
    for name, prompt in (("sales", "SALES_PROMPT"), ("support", "SUPPORT_PROMPT")):
        folder = tmp_path / "agents" / name
        folder.mkdir(parents=True)
        (folder / "prompts.py").write_text(f"{prompt} = 'be kind'\n")
        (folder / "agent.py").write_text(f"from prompts import {prompt}\n\nasync def entrypoint(ctx):\n    pass\n")
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nentrypoint: agents/{name}/agent.py:entrypoint\n")
    r = agenthost("validate", "sales.yaml", "support.yaml", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "ok: 2 agents in 2 files\n", r.stdout + r.stderr


def test_validate_says_a_memory_bound_init_rounded_is_kept(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "agent.py").write_text(
        "from livekit.agents import AgentServer, JobContext\nserver = AgentServer(job_memory_warn_mb=2048.5)\n\n"
        "@server.rtc_session(agent_name='memo')\nasync def session(ctx: JobContext) -> None:\n    pass\n")
    init_writes(tmp_path, "agent.py", "memo", "memory_warn_mb: 2048")


def test_init_out_may_name_a_folder_but_not_a_file_no_host_would_read(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "agent.py").write_text(
        "from livekit.agents import AgentServer, JobContext\nserver = AgentServer()\n\n"
        "@server.rtc_session(agent_name='desk')\nasync def session(ctx: JobContext) -> None:\n    pass\n")
    (tmp_path / "configs").mkdir()
    r = agenthost("init", "agent.py", "--out", "configs", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "configs" / "desk.yaml").is_file(), r.stdout + r.stderr
    r = agenthost("init", "agent.py", "--out", "desk.txt", cwd=tmp_path)
    assert r.returncode == 2 and "a host reads agent files ending in .yaml or .yml only" in r.stderr, r.stderr
    assert not (tmp_path / "desk.txt").exists()
