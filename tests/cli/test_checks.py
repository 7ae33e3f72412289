"""`agenthost validate` and `agenthost schema`, run as users run them, with their exact output in each format."""

import json
import subprocess
import sys

import pytest

from host.testing.cli import ROOT, agenthost

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


def test_validate_metadata_still_checks_imports(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: missing_module_xyz:entrypoint\n")
    r = agenthost("validate", str(tmp_path), "--metadata", "a", "")
    assert r.returncode == 1 and "cannot import 'missing_module_xyz'" in r.stdout
    r = agenthost("validate", str(tmp_path), "--no-imports", "--metadata", "a", "")
    assert (r.returncode, r.stdout) == (0, "ok: 1 agent in 1 file\n")


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


def test_validate_explains_a_bad_set_of_versions_with_file_line_and_column(tmp_path):
    (tmp_path / "bot-v1.yaml").write_text("name: bot\nversion: v1\nweight: 0\nentrypoint: m:f\n")
    (tmp_path / "bot-v2.yaml").write_text("name: bot\nversion: v2\nweight: 0\nentrypoint: m:f\n"
                                          "dispatch: automatic\njob_type: publisher\n")
    r = agenthost("validate", "--no-imports", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    v1, v2 = str(tmp_path / "bot-v1.yaml"), str(tmp_path / "bot-v2.yaml")
    assert any(line.startswith(f"{v2}:5:11: $.dispatch: version 'v2' of agent 'bot' says dispatch: automatic, "
                               f"version 'v1' ({v1}:1) says explicit") for line in lines), lines
    assert any(line.startswith(f"{v2}:6:11: $.job_type: version 'v2' of agent 'bot' says job_type: publisher")
               for line in lines), lines
    assert any(line.startswith(f"{v1}:3:9: $.weight: every version of agent 'bot' has weight 0") for line in lines), \
        lines
    (tmp_path / "bot-v2.yaml").write_text("name: bot\nversion: v1\nweight: 1\nentrypoint: m:f\n")  # v1 twice
    r = agenthost("validate", "--no-imports", str(tmp_path))
    assert r.returncode == 1 and (
        f"{v2}:1:7: $.name: version 'v1' of agent 'bot' is already defined at {v1}:1\n" in r.stdout), r.stdout
