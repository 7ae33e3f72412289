"""Resolving `entrypoint` and `setup` references to functions.

`load_function` is what a job process uses. `check_functions` is what `validate` and
reload use: it imports the modules in a child process with a time bound, so a module
that hangs, crashes or prints at import cannot hang or break the caller. The child
writes one JSON line per reference on a private pipe (the real stdout), while
anything the imported code prints goes to stderr.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from host.config.definitions import FunctionRef
from host.config.sources import project_files, snapshot


class EntrypointError(Exception):
    """A function reference does not resolve to a usable function."""


def package_of(path: str) -> tuple[str, str] | None:
    """(the folder above the package, the module's dotted name) of a file inside a package (a folder with an
    `__init__.py`), so that it is imported as part of it and its relative imports work; None otherwise."""
    folder, parts = os.path.dirname(os.path.abspath(path)), [os.path.splitext(os.path.basename(path))[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")) and parts[0].isidentifier():
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    if len(parts) == 1 or not all(p.isidentifier() for p in parts):
        return None
    return folder, ".".join(parts)


def module_name_for_file(path: str) -> str:
    package = package_of(path)
    if package is not None:
        return package[1]
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"agenthost_file_{abs(hash(path)):x}_{stem}"


def load_function(ref: FunctionRef) -> Callable[..., Any]:
    """Import the reference's module and return the function. Raises EntrypointError."""
    fn = load_object(ref)
    if not callable(fn):
        raise EntrypointError(f"{ref.text!r} is not callable")
    return fn


def load_object(ref: FunctionRef) -> object:
    """Import the reference's module and return the named object. Raises EntrypointError."""
    try:
        if ref.file is not None:
            if not os.path.isfile(ref.file):
                raise EntrypointError(missing_file_message(ref))
            name = module_name_for_file(ref.file)
            module = sys.modules.get(name)
            package = package_of(ref.file)
            if module is None and package is not None:
                if package[0] not in sys.path:
                    sys.path.insert(0, package[0])
                module = importlib.import_module(name)
            elif module is None:
                folder = os.path.dirname(ref.file)
                if folder not in sys.path:
                    sys.path.insert(0, folder)
                spec = importlib.util.spec_from_file_location(name, ref.file)
                if spec is None or spec.loader is None:
                    raise EntrypointError(f"cannot import {ref.file!r}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            assert ref.module is not None
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(ref.module)
    except EntrypointError:
        raise
    except ModuleNotFoundError as exc:
        raise EntrypointError(f"cannot import {ref.module or ref.file!r}: {exc}") from exc
    except SystemExit as exc:
        livekit = "livekit.agents" in sys.modules  # only an `api: host` check gets here with livekit-agents loaded
        raise EntrypointError(
            f"importing {ref.module or ref.file!r} raised SystemExit: {exc}: the module ran its program at import "
            "(a call such as cli.run_app(...) or main() at the top level); " + (
                "if it is livekit-agents code, add `api: livekit-agents` to the agent file (agenthost then "
                "imports it without running cli.run_app), or put the call under `if __name__ == \"__main__\":`"
                if livekit else "put it under `if __name__ == \"__main__\":` so that importing the module only "
                "defines the agent")) from exc
    except BaseException as exc:
        raise EntrypointError(f"importing {ref.module or ref.file!r} raised {type(exc).__name__}: {exc}") from exc
    obj = getattr(module, ref.function, None)
    if obj is None:
        raise EntrypointError(f"{ref.module or ref.file!r} has no attribute {ref.function!r}")
    return obj


def missing_file_message(ref: FunctionRef) -> str:
    """Why a file reference does not resolve, with the reference that would, when the file is found nearby:
    paths are read from the agent file's folder, which newcomers expect to be the folder they run in."""
    assert ref.file is not None
    target = ref.text.rpartition(":")[0]
    message = f"file {display(ref.file)!r} does not exist"
    if os.path.isabs(target) or ref.base_dir is None:
        return message
    base = ref.base_dir
    message += f" (a path is read from the agent file's folder, {display(base) or '.'})"
    cwd = os.getcwd()
    folders = [cwd]
    folder = base
    while True:  # the agent file's folder and those above it, up to the working directory
        folder = os.path.dirname(folder)
        folders.append(folder)
        if folder in (cwd, os.path.dirname(folder)) or len(folders) > 8:
            break
    for folder in folders:
        found = os.path.join(folder, target)
        if os.path.isfile(found):
            rel = os.path.relpath(found, base)
            hint = f"; did you mean {rel + ':' + ref.function!r}"
            module = os.path.relpath(found, cwd)[:-3]
            if not module.startswith(".."):
                hint += (f", or the module form {module.replace(os.sep, '.') + ':' + ref.function!r} (imported "
                         "from the folder agenthost runs in)")
            return message + hint + "?"
    return message


def display(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def livekit_agents_code(obj: object) -> str | None:
    """What makes `obj` livekit-agents code (an AgentServer, a function taking its JobContext), or None. Read
    without importing livekit-agents: an `api: host` agent may not have it."""
    kind = type(obj)
    if kind.__module__.startswith("livekit.agents") and kind.__name__ in ("AgentServer", "ServerOptions"):
        return f"a livekit-agents {'WorkerOptions' if kind.__name__ == 'ServerOptions' else kind.__name__}"
    if not callable(obj):
        return None
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    for value in vars(module).values() if module is not None else ():
        if type(value).__name__ == "AgentServer" and getattr(value, "_entrypoint_fnc", None) is obj:
            return "a function registered with livekit-agents' @server.rtc_session()"
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params:
        return None
    annotation = params[0].annotation
    if isinstance(annotation, str):  # `from __future__ import annotations`: look the name up where it was written
        first, *rest = annotation.split(".")
        annotation = getattr(obj, "__globals__", {}).get(first)
        for part in rest:  # `agents.JobContext`, `lk.JobContext`
            annotation = getattr(annotation, part, None)
    if (getattr(annotation, "__name__", None) == "JobContext"
            and str(getattr(annotation, "__module__", "")).startswith("livekit.agents")):
        return "a function taking livekit-agents' JobContext"
    return None


def check_loaded(fn: Callable[..., Any], role: str) -> str | None:
    """Why `fn` cannot serve as `role` ('entrypoint' or 'setup'), or None."""
    if role == "entrypoint" and not inspect.iscoroutinefunction(fn):
        return "the entrypoint must be an async function (async def)"
    try:
        inspect.signature(fn).bind(object())
    except TypeError:
        return f"the {role} must take exactly one argument"
    except ValueError:
        pass  # builtins without a signature: give them the benefit of the doubt
    return None


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
    # the project source files its import loaded (see host.sources), for noticing code changes later
    sources: dict[str, tuple[int, int]] = field(default_factory=dict)
    # (severity, agent file key, message): how the agent file changes what the module's server says
    differences: list[tuple[str, str, str]] = field(default_factory=list)


def check_request(request: CheckRequest) -> tuple[object, str | None, list[tuple[str, str, str]]]:
    """(the loaded object, error, differences) of one reference. Raises EntrypointError when it does not load."""
    if request.api == "livekit-agents":
        from host.lkagents import compat

        compat.intercept_run_app()  # as in the job process: a module calling cli.run_app at import is imported
        obj = load_object(request.ref)
        if request.role == "entrypoint":
            return (obj, *compat.check(obj, request.declared))
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
    for i, (ref_fields, role, api, declared) in enumerate(requests):
        request = CheckRequest(FunctionRef(**ref_fields), role, api, declared)
        out.write(json.dumps({"start": i}) + "\n")
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
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-c", "from host.config.entrypoints import _child_main; _child_main()"]
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
