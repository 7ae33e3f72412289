"""Checking an agent's entrypoint and setup where they will run: imported in a child process (never in the host,
whose memory and secrets import-time code must not reach), bounded in time and output, with the privileges of a
job (host.sandbox.harden_check). One child checks every request; one that hangs or kills the child is blamed, and
the rest are checked in a fresh child."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from host.config.definitions import FunctionRef
from host.config.entrypoints import EntrypointError, check_loaded, livekit_agents_code, load_object
from host.config.sources import is_project_module, project_files, snapshot


@dataclass(frozen=True)
class CheckRequest:
    ref: FunctionRef
    role: str  # "entrypoint" | "setup"
    api: str = "host"  # the agent's `api`
    # what the agent file says that a livekit-agents server could say otherwise (host.lkagents.project.AgentFile)
    declared: dict[str, Any] | None = None


@dataclass(frozen=True)
class CheckResult:
    error: str | None  # why the reference does not resolve; None when it does
    # the project source files its import loaded (see host.config.sources), for noticing code changes later
    sources: dict[str, tuple[int, int]] = field(default_factory=dict)
    # (severity, agent file key, message): how the agent file changes what the module's server says
    differences: list[tuple[str, str, str]] = field(default_factory=list)


def check_request(request: CheckRequest) -> tuple[object, str | None, list[tuple[str, str, str]]]:
    """(the loaded object, error, differences) of one reference. Raises EntrypointError when it does not load."""
    if request.api == "livekit-agents":
        from host.lkagents import compat, project

        compat.intercept_run_app()  # as in the job process: a module calling cli.run_app at import is imported
        with compat.environment_kept():
            obj = load_object(request.ref)
            if request.role == "entrypoint":
                return (obj, *project.check_entry(obj, request.declared))
        return obj, check_loaded(obj, "setup") if callable(obj) else f"{request.ref.text!r} is not callable", []
    obj = load_object(request.ref)
    if request.role == "entrypoint" and (kind := livekit_agents_code(obj)) is not None:
        return obj, (f"this is {kind}: add `api: livekit-agents` to the agent file to run it as livekit-agents "
                     "does"), []
    if not callable(obj):
        return obj, f"{request.ref.text!r} is not callable", []
    return obj, check_loaded(obj, request.role), []


def _child_main() -> None:
    """Runs in the checking child: read requests on stdin, answer one JSON line each."""
    from host.sandbox import harden_check
    from host.tree import become_subreaper, descendants, end_all

    harden_check()  # the modules' import-time code gets no more than a job of theirs would
    become_subreaper()  # what it starts stays below this process, even in a session of its own
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever imported code prints goes to stderr, not into our answers
    sys.stdout = sys.stderr
    requests = json.loads(sys.stdin.read())
    path, environ = list(sys.path), dict(os.environ)
    last: tuple[str | None, str | None] | None = None
    for i, (ref_fields, role, api, declared) in enumerate(requests):
        request = CheckRequest(FunctionRef(**ref_fields), role, api, declared)
        out.write(json.dumps({"start": i}) + "\n")
        origin = (request.ref.file or request.ref.module, request.ref.base_dir)
        if origin != last:  # the same module again (an agent's entrypoint, then its setup) is the same import
            _forget_project(path, environ)
            last = origin
        before = set(sys.modules)
        sources: dict[str, tuple[int, int]] = {}
        differences: list[tuple[str, str, str]] = []
        try:
            obj, error, differences = check_request(request)
            loaded = [sys.modules[name] for name in set(sys.modules) - before]
            own = inspect.getmodule(obj)
            sources = snapshot(project_files(loaded + ([own] if own is not None else [])))
        except EntrypointError as exc:
            error = str(exc)
        out.write(json.dumps({"done": i, "error": error, "sources": sources, "differences": differences}) + "\n")
    out.flush()
    end_all(descendants(os.getpid()), grace=0.5)  # nothing the checked code started outlives the check


def _forget_project(path: list[str], environ: dict[str, str]) -> None:
    """Before each check: no module of the project loaded by an earlier one, and the import path and the
    environment as they began (a module may load a .env file into it).
    Each agent is then checked as its own process imports it: two agents' `prompts.py` beside each, or two
    versions' `bot/main.py`, are each their own, not the first one's (the installation's modules stay loaded:
    they are the same for all)."""
    for name, module in list(sys.modules.items()):
        if module is not None and is_project_module(module):
            del sys.modules[name]
    sys.path[:] = path
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)
    compat = sys.modules.get("host.lkagents.compat")
    if compat is not None:
        compat.RUN_APP_CALLS.clear()


STARTUP = 5.0  # seconds the checking child may take to start (a busy machine), beyond the imports' own bound


MAX_ANSWERS = 16 * 1024 * 1024  # what the checking child's answers may take (each module's files, listed)
MAX_ERRORS = 64 * 1024  # the end of what it wrote to stderr: enough for the last lines of a traceback


def _run_checking_child(cmd: list[str], payload: str, timeout: float, cwd: str | None,
                        env: dict[str, str]) -> tuple[str, str, int, bool]:
    """Run the checking child: its answers, the end of its stderr, its exit code, and whether it timed out.
    It runs in a session of its own, ended with it: whatever the imported code started in the background does
    not outlive the check. What it writes is kept in files and read back bounded, never in memory whole."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=cwd, env=env,
                                start_new_session=True)
        timed_out = False
        try:
            proc.communicate(payload.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        out.seek(0)
        answers = out.read(MAX_ANSWERS).decode("utf-8", "replace")
        err.seek(0, os.SEEK_END)
        err.seek(max(0, err.tell() - MAX_ERRORS))
        errors = err.read().decode("utf-8", "replace")
    return answers, errors, -9 if timed_out else proc.returncode, timed_out


def check_functions(requests: Sequence[CheckRequest], timeout: float = 10.0,
                    cwd: str | None = None) -> list[CheckResult]:
    """For each request, whether it resolves and what it loaded, importing in child processes.

    One child imports everything; a request that hangs past `timeout` or kills the
    child is blamed, and the remaining ones are checked in a fresh child.
    """
    results: list[CheckResult] = [CheckResult(None)] * len(requests)
    pending = list(range(len(requests)))
    while pending:
        payload = json.dumps([[vars(r.ref), r.role, r.api, r.declared] for r in (requests[i] for i in pending)])
        # its own imports from the installation only: the folder it runs in may hold a job's files
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1"}
        cmd = [sys.executable, "-c", "from host.config.import_check import _child_main; _child_main()"]
        stdout, stderr, code, timed_out = _run_checking_child(cmd, payload, timeout + STARTUP, cwd, env)
        done: set[int] = set()
        started: int | None = None
        for line in stdout.splitlines():
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "start" in msg:
                started = msg["start"]
            elif "done" in msg:
                sources = {path: (stat[0], stat[1]) for path, stat in msg.get("sources", {}).items()}
                results[pending[msg["done"]]] = CheckResult(
                    msg["error"], sources, [(d[0], d[1], d[2]) for d in msg.get("differences", [])])
                done.add(msg["done"])
                started = None
        if len(done) == len(pending):
            break
        if started is None:
            # the child died before answering anything: blame the first unanswered request
            started = min(set(range(len(pending))) - done)
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            reason = f"checking child failed (exit {code}): {tail}"
        elif timed_out:
            reason = f"importing it did not finish within {timeout:g}s"
        else:
            tail = (stderr.strip().splitlines() or [""])[-1]
            reason = f"importing it ended the process (exit {code})" + (f": {tail}" if tail else "")
        results[pending[started]] = CheckResult(reason)
        done.add(started)
        pending = [pending[j] for j in range(len(pending)) if j not in done]
    return results
