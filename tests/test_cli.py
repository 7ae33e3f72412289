"""The CLI, run as users run it, with its exact output in each format."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def agenthost(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "host", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, check=False)


BAD = "tests/fixtures/bad"
BAD_TEXT = (
    "tests/fixtures/bad/support.yaml:4:12: $.shutdown.timeout: '-5s' is not a duration: "
    "seconds from 0 to 86400 as a number, or a string such as 500ms, 10s, 2m (at most a day)\n"
    "tests/fixtures/bad/support.yaml:6:3: $.limits.max_job: unknown key 'max_job' (did you mean 'max_jobs'?)\n"
    "tests/fixtures/bad/twice.yaml:1:7: $.name: agent 'support' is already defined at "
    "tests/fixtures/bad/support.yaml:1 (to serve both as versions of one agent, give each a distinct `version:`)\n"
)


def test_validate_text():
    r = agenthost("validate", "--no-imports", BAD)
    assert r.returncode == 1
    assert r.stdout == BAD_TEXT + "3 errors\n"


def test_validate_json():
    r = agenthost("validate", "--no-imports", "--format", "json", BAD)
    assert r.returncode == 1
    body = json.loads(r.stdout)
    assert body["status"] == "fail"
    assert body["agents"] == []
    assert body["errors"][1] == {"file": "tests/fixtures/bad/support.yaml", "line": 6, "column": 3,
                                 "path": "$.limits.max_job",
                                 "message": "unknown key 'max_job' (did you mean 'max_jobs'?)"}
    assert len(body["errors"]) == 3


def test_validate_github():
    r = agenthost("validate", "--no-imports", "--format", "github", f"{BAD}/support.yaml")
    assert r.returncode == 1
    assert r.stdout.splitlines()[1] == (
        "::error file=tests/fixtures/bad/support.yaml,line=6,col=3,title=$.limits.max_job::"
        "$.limits.max_job: unknown key 'max_job' (did you mean 'max_jobs'?)")


def test_validate_ok_with_imports():
    r = agenthost("validate", "tests/fixtures/good")
    assert (r.returncode, r.stdout) == (0, "ok: 1 agent in 1 file\n")
    r = agenthost("validate", "--format", "json", "tests/fixtures/good")
    assert json.loads(r.stdout) == {"status": "ok", "errors": [],
                                    "agents": [{"name": "ok", "file": "tests/fixtures/good/ok.yaml", "line": 1}]}


def test_validate_metadata_payload(tmp_path):
    r = agenthost("validate", "tests/fixtures/good", "--metadata", "ok", '{"user_id": 7}')
    assert (r.returncode, r.stdout) == (1, "<metadata>:1:13: $.user_id: 7 is not of type 'string'\n1 error\n")
    payload = tmp_path / "p.json"
    payload.write_text('{"user_id": "u"}')
    r = agenthost("validate", "tests/fixtures/good", "--metadata", "ok", f"@{payload}")
    assert (r.returncode, r.stdout) == (0, "ok: 1 agent in 1 file\n")


@pytest.mark.parametrize("args", [("validate", "--bogus"), ("validate", "no/such/path"),
                                  ("validate", "tests/fixtures/good", "--metadata", "nobody", "{}"),
                                  ("run", "--http", "8081", "tests/fixtures/good"),
                                  ("run", "--load-threshold", "2", "tests/fixtures/good"),
                                  ("status", "--http", "nowhere")])
def test_usage_errors_exit_2(args):
    r = agenthost(*args)
    assert r.returncode == 2 and r.stdout == "" and "Error:" in r.stderr and "Traceback" not in r.stderr


def test_schema_command_prints_the_schema():
    r = agenthost("schema")
    assert r.returncode == 0
    assert json.loads(r.stdout) == json.loads((ROOT / "schemas" / "agent.schema.json").read_text())


def test_validate_never_imports_the_livekit_sdk():
    code = ("import sys; from host.cli import cli\n"
            "try:\n    cli.main(['validate', '--no-imports', 'tests/fixtures/good'], standalone_mode=False)\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('livekit')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.stdout.strip().endswith("[]"), r.stdout + r.stderr


def test_the_shipped_examples_validate():
    r = agenthost("validate")
    assert r.returncode == 0, r.stdout
    assert r.stdout.startswith("ok: ")


def test_run_refuses_an_invalid_configuration():
    r = agenthost("run", BAD)
    assert r.returncode == 1
    assert "$.limits.max_job: unknown key 'max_job'" in r.stderr and "Traceback" not in r.stderr


def test_dispatch_checks_metadata_before_sending():
    r = agenthost("dispatch", "ok", "--room", "r", "--config", "tests/fixtures/good", "--metadata", "{}",
                  "--url", "ws://127.0.0.1:9", "--api-key", "k", "--api-secret", "s")
    assert r.returncode == 1
    assert r.stderr == "<metadata>:1:1: $: 'user_id' is a required property\n1 error\n"


def test_run_says_when_its_http_port_is_taken():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = agenthost("run", "--http", f"127.0.0.1:{port}", "--url", "ws://127.0.0.1:9", "--api-key", "k",
                      "--api-secret", "s", "tests/fixtures/good")
    assert r.returncode == 1
    assert f"agenthost: cannot serve HTTP on 127.0.0.1:{port}: " in r.stderr and "Traceback" not in r.stderr


def test_validate_metadata_still_checks_imports(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: missing_module_xyz:entrypoint\n")
    r = agenthost("validate", str(tmp_path), "--metadata", "a", "")
    assert r.returncode == 1 and "cannot import 'missing_module_xyz'" in r.stdout
    r = agenthost("validate", str(tmp_path), "--no-imports", "--metadata", "a", "")
    assert (r.returncode, r.stdout) == (0, "ok: 1 agent in 1 file\n")


def test_dispatch_to_an_agent_whose_file_is_broken_shows_the_file_problems(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nlimits: {max_jobs: -1}\n")
    r = agenthost("dispatch", "a", "--room", "r", "--config", str(tmp_path),
                  "--url", "ws://127.0.0.1:9", "--api-key", "k", "--api-secret", "s")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "a.yaml:3:" in r.stderr and "$.limits.max_jobs" in r.stderr
    assert "no agent named 'a' (known: none) that loads without problems" in r.stderr


def test_validate_livekit_agents_entrypoints(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "mod.py").write_text(
        "from livekit.agents import AgentServer\nfrom livekit.agents.inference_runner import _InferenceRunner\n"
        "server = AgentServer()\n\n@server.rtc_session(agent_name='other')\nasync def entry(ctx):\n    pass\n\n"
        "class Eou(_InferenceRunner):\n    INFERENCE_METHOD = 'eou'\n\n"
        "def register():\n    _InferenceRunner.register_runner(Eou)\n")
    (tmp_path / "runner.py").write_text("import mod\nmod.register()\nserver = mod.server\n")
    (tmp_path / "a.yaml").write_text("name: a\napi: livekit-agents\nentrypoint: mod.py:server\n")
    r = agenthost("validate", str(tmp_path / "a.yaml"))
    assert r.returncode == 0, r.stdout
    assert r.stdout.endswith("a.yaml:1:7: $.name: warning: AgentServer 'server' registers agent_name 'other'; "
                             "agenthost registers the agent file's name 'a': dispatches to 'other' "
                             "reach it only with `name: other`\nok: 1 agent in 1 file\n")
    (tmp_path / "b.yaml").write_text("name: b\napi: livekit-agents\nentrypoint: runner.py:server\n")
    r = agenthost("validate", str(tmp_path / "b.yaml"))
    assert r.returncode == 1 and "inference runners (eou)" in r.stdout and "Traceback" not in r.stdout
    (tmp_path / "c.yaml").write_text("name: c\napi: livekit-agents\nentrypoint: mod.py:register\n")
    r = agenthost("validate", str(tmp_path / "c.yaml"))
    assert r.returncode == 1
    assert "must be an async function taking the job context, an AgentServer or WorkerOptions" in r.stdout


CALL_SERVER = ("--url", "ws://127.0.0.1:9", "--api-key", "k", "--api-secret", "s")


def test_call_an_unknown_agent_is_a_usage_error():
    r = agenthost("call", "nope", "--say", "hi", "--config", "tests/fixtures/good", *CALL_SERVER)
    assert r.returncode == 2
    assert r.stderr.endswith("Error: no agent named 'nope' (known: ok)\n")


def test_call_with_nothing_to_say_is_a_usage_error():
    r = agenthost("call", "ok", "--config", "tests/fixtures/good", *CALL_SERVER)
    assert r.returncode == 2
    assert r.stderr.endswith("Error: nothing to say: give --say TEXT or --wav FILE (repeatable)\n")


def test_call_names_a_missing_wav(tmp_path):
    r = agenthost("call", "ok", "--wav", str(tmp_path / "gone.wav"), "--config", "tests/fixtures/good",
                  "--metadata", '{"user_id": "u"}', *CALL_SERVER)
    assert r.returncode == 2
    assert r.stderr.endswith(f"Error: Invalid value for --say/--wav: {tmp_path / 'gone.wav'}: no such file\n")


def test_call_checks_metadata_before_calling():
    r = agenthost("call", "ok", "--say", "hi", "--config", "tests/fixtures/good", "--metadata", "{}", *CALL_SERVER)
    assert r.returncode == 1
    assert r.stderr == "<metadata>:1:1: $: 'user_id' is a required property\n1 error\n"


def test_call_says_when_the_server_is_unreachable():
    r = agenthost("call", "ok", "--say", "hi", "--config", "tests/fixtures/good", "--metadata", '{"user_id": "u"}',
                  *CALL_SERVER)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "agenthost: cannot join room 'call-" in r.stderr and "at ws://127.0.0.1:9" in r.stderr


def test_a_metadata_file_is_read_up_to_the_bound():
    r = agenthost("validate", "--no-imports", "tests/fixtures/good", "--metadata", "ok", "@/dev/zero")
    assert r.returncode == 2
    assert "'/dev/zero' is over the metadata limit of 65536 bytes" in r.stderr


def test_a_token_and_a_token_file_together_are_refused(tmp_path):
    (tmp_path / "token").write_text("t\n")
    r = agenthost("status", "--http", "127.0.0.1:9", "--http-token", "a", "--http-token-file", str(tmp_path / "token"))
    assert r.returncode == 2
    assert "give --http-token or --http-token-file (or their variables), not both" in r.stderr


def test_livekit_agents_code_under_api_host_and_the_differences_it_would_lose(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "agent.py").write_text(
        "from livekit.agents import AgentServer, JobContext, WorkerType\n"
        "server = AgentServer()\n\n@server.rtc_session(type=WorkerType.PUBLISHER)\n"
        "async def session(ctx: JobContext) -> None:\n    pass\n")
    folder = tmp_path / "agents.d"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: a\nentrypoint: ../agent.py:server\n---\nname: b\n"
                                   "entrypoint: ../agent.py:session\n")
    r = agenthost("validate", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == (
        "agents.d/a.yaml:2:13: $.entrypoint: ../agent.py:server: this is a livekit-agents AgentServer: add "
        "`api: livekit-agents` to the agent file to run it as livekit-agents does\n"
        "agents.d/a.yaml:5:13: $.entrypoint: ../agent.py:session: this is a function registered with "
        "livekit-agents' @server.rtc_session(): add `api: livekit-agents` to the agent file to run it as "
        "livekit-agents does\n2 errors\n")
    (folder / "a.yaml").write_text("name: a\napi: livekit-agents\nentrypoint: ../agent.py:server\n")
    r = agenthost("validate", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == (
        "agents.d/a.yaml:3:13: $.dispatch: AgentServer 'server' registers no agent_name, so livekit-agents "
        "dispatches it automatically to every new room; this agent file is dispatch: explicit, so the agent joins "
        "only the rooms it is dispatched to by name. Add `dispatch: automatic` to keep livekit-agents' behaviour "
        "(or write `dispatch: explicit` to say you mean it)\n"
        "agents.d/a.yaml:3:13: $.job_type: AgentServer 'server' is ServerType.PUBLISHER (one job per publisher); "
        "this agent file is job_type: room. Add `job_type: publisher` to keep it\n2 errors\n")
    # said on purpose, they are warnings, which --strict makes errors
    (folder / "a.yaml").write_text("name: a\napi: livekit-agents\nentrypoint: ../agent.py:server\n"
                                   "dispatch: explicit\njob_type: room\n")
    r = agenthost("validate", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count(": warning: ") == 2, r.stdout
    assert agenthost("validate", "--strict", cwd=tmp_path).returncode == 1


def test_messages_that_say_what_to_do(tmp_path):
    (tmp_path / "agent.py").write_text("async def entrypoint(ctx):\n    pass\n")
    (tmp_path / "exits.py").write_text("import sys\nasync def entrypoint(ctx):\n    pass\nsys.exit(0)\n")
    folder = tmp_path / "agents.d"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: a\nentrypoint: agent.py:entrypoint\n---\nname: b\n"
                                   "entrypoint: ../exits.py:entrypoint\n---\nname: c\nagent_name: c\n"
                                   "num_idle_processes: 2\njob_memory_limit_mb: 100\nload_threshold: 0.5\n"
                                   "drain_timeout: 10\nentrypoint: ../agent.py:entrypoint\n")
    r = agenthost("validate", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == (
        "agents.d/a.yaml:2:13: $.entrypoint: agent.py:entrypoint: file 'agents.d/agent.py' does not exist (a path "
        "is read from the agent file's folder, agents.d); did you mean '../agent.py:entrypoint', or the module "
        "form 'agent:entrypoint' (imported from the folder agenthost runs in)?\n"
        f"agents.d/a.yaml:5:13: $.entrypoint: ../exits.py:entrypoint: importing '{tmp_path}/exits.py' raised "
        "SystemExit: 0: the module ran its program at import (a call such as cli.run_app(...) or main() at the "
        "top level); put it under `if __name__ == \"__main__\":` so that importing the module only defines the "
        "agent\n"
        "agents.d/a.yaml:8:1: $.agent_name: unknown key 'agent_name' (livekit-agents' agent_name is 'name' here: "
        "the agent's name, registered with LiveKit unless dispatch is automatic)\n"
        "agents.d/a.yaml:9:1: $.num_idle_processes: unknown key 'num_idle_processes' (livekit-agents' "
        "num_idle_processes is 'processes.idle' here)\n"
        "agents.d/a.yaml:10:1: $.job_memory_limit_mb: unknown key 'job_memory_limit_mb' (livekit-agents' "
        "job_memory_limit_mb is 'limits.memory_limit_mb' here)\n"
        "agents.d/a.yaml:11:1: $.load_threshold: unknown key 'load_threshold' (livekit-agents' load_threshold is "
        "the host's option --load-threshold of agenthost run here, not an agent's)\n"
        "agents.d/a.yaml:12:1: $.drain_timeout: unknown key 'drain_timeout' (livekit-agents' drain_timeout is the "
        "host's option --drain-timeout of agenthost run here, not an agent's)\n"
        "7 errors\n")
    r = agenthost("validate", cwd=tmp_path / "agents.d")
    assert r.returncode == 2 and "./agents.d does not exist (write an agent file from a livekit-agents module " \
        "with `agenthost init agent.py`, or create ./agents.d/NAME.yaml)" in r.stderr


def test_validate_no_env_notes_unset_variables_and_empty_takes_the_default(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: a:entrypoint\nenv:\n  KEY: ${OPENAI_API_KEY}\n"
                                     "  MODE: ${EMPTY:-fallback}\n  KEPT: ${EMPTY-unused}\n")
    r = agenthost("validate", "--no-imports", str(tmp_path / "a.yaml"))
    assert r.returncode == 1 and "environment variable OPENAI_API_KEY is not set and has no default" in r.stdout
    r = agenthost("validate", "--no-imports", "--no-env", "--format", "json", str(tmp_path / "a.yaml"))
    assert r.returncode == 0, r.stdout
    body = json.loads(r.stdout)
    assert body["status"] == "ok" and [n["message"] for n in body["notes"]] == [
        "environment variable OPENAI_API_KEY is not set (not checked)"]
    # a checked field from an unset variable is noted, not checked; the rest of the file still is
    (tmp_path / "b.yaml").write_text("name: ${AGENT_NAME}\nentrypoint: a:entrypoint\nlimits: {max_jobs: -1}\n")
    r = agenthost("validate", "--no-imports", "--no-env", str(tmp_path / "b.yaml"))
    assert r.returncode == 1 and r.stdout.count(": note: environment variable AGENT_NAME is not set") == 1
    assert "$.limits.max_jobs" in r.stdout and "$.name:" not in r.stdout.replace(": note:", "")


def test_durations_on_the_command_line():
    r = agenthost("run", "--drain-timeout", "soon", "tests/fixtures/good")
    assert r.returncode == 2
    assert "'soon' is not a duration (seconds, or a number with ms, s or m: 500ms, 60s, 1.5m)" in r.stderr
    r = agenthost("validate", "--import-timeout", "20s", "tests/fixtures/good")
    assert r.returncode == 0, r.stdout + r.stderr


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


def test_livekit_agents_code_is_recognised_under_api_host_however_it_is_written(tmp_path):
    pytest.importorskip("livekit.agents")
    (tmp_path / "dotted.py").write_text("from __future__ import annotations\nfrom livekit import agents as lk\n\n"
                                        "async def entrypoint(ctx: lk.JobContext) -> None:\n    pass\n")
    (tmp_path / "runs.py").write_text("from livekit.agents import JobContext, WorkerOptions, cli\n\n"
                                      "async def entrypoint(ctx: JobContext) -> None:\n    pass\n\n"
                                      "cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))\n")
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: dotted.py:entrypoint\n---\n"
                                     "name: b\nentrypoint: runs.py:entrypoint\n")
    r = agenthost("validate", "a.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert "a.yaml:2:13: $.entrypoint: dotted.py:entrypoint: this is a function taking livekit-agents' " \
           "JobContext: add `api: livekit-agents`" in r.stdout
    assert "raised SystemExit" in r.stdout and "if it is livekit-agents code, add `api: livekit-agents` to the " \
           "agent file (agenthost then imports it without running cli.run_app)" in r.stdout
