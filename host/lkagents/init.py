"""`agenthost init`: the agent file equivalent to a livekit-agents module.

`read` imports the module in a child process with a time bound (its code may hang or print) and reports
what its server says: an `AgentServer` in the module, the function registered on it, or what the module
gives `cli.run_app`, at import or under its `if __name__ == "__main__":` guard (run with `cli.run_app`
intercepted, so livekit-agents' server never starts). `render` turns that into the text of an agent file,
a pure function: every setting with an equivalent is written, and every one without is a comment saying
what agenthost does instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import runpy
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from host.lkagents import compat, project
from host.lkagents.project import ServerSettings


class InitError(Exception):
    """The module cannot be read, or holds no agent."""


@dataclass(frozen=True)
class Reading:
    """What `read` found in a module."""

    target: str  # what the user named: a file path or a module name (without :OBJECT)
    is_file: bool
    api: str  # "livekit-agents" | "host"
    entrypoint: str  # the module attribute the agent file's entrypoint names
    setup: str | None
    server: ServerSettings | None  # None for an api: host module, or a function no server names
    default_name: str


def read(target: str, timeout: float = 30.0) -> Reading:
    """Read `MODULE_OR_FILE[:OBJECT]` in a child process. Raises InitError."""
    spec, _, obj = target.partition(":") if not re.match(r"^[A-Za-z]:\\", target) else (target, "", "")
    is_file = spec.endswith(".py") or os.sep in spec
    if is_file and not os.path.isfile(spec):
        raise InitError(f"{spec}: no such file")
    cmd = [sys.executable, "-c", "from host.lkagents.init import _child_main; _child_main()"]
    request = json.dumps({"spec": os.path.abspath(spec) if is_file else spec, "is_file": is_file, "object": obj})
    try:
        proc = subprocess.run(cmd, input=request, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except subprocess.TimeoutExpired:
        raise InitError(f"{spec}: reading the module did not finish within {timeout:g}s") from None
    answer = next((json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")), None)
    if answer is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InitError(f"{spec}: reading the module ended its process (exit {proc.returncode}): {tail}")
    if "error" in answer:
        raise InitError(f"{spec}: {answer['error']}")
    server = ServerSettings(**answer["server"]) if answer["server"] else None
    return Reading(spec, is_file, answer["api"], answer["entrypoint"], answer["setup"], server, answer["name"])


def _child_main() -> None:
    """Runs in the reading child: one JSON line on the real stdout; what the module prints goes to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    try:
        answer = _read_here(request["spec"], request["is_file"], request["object"])
    except InitError as exc:
        answer = {"error": str(exc)}
    out.write(json.dumps(answer) + "\n")


def _read_here(spec: str, is_file: bool, wanted: str) -> dict[str, Any]:
    try:
        compat.intercept_run_app()
        have_agents = True
    except ImportError:
        have_agents = False
    module = _import(spec, is_file)
    stem = os.path.splitext(os.path.basename(spec))[0] if is_file else spec.rpartition(".")[2]
    if wanted:
        obj = getattr(module, wanted, None)
        if obj is None:
            raise InitError(f"the module has no attribute {wanted!r}")
    else:
        obj = _find(module, spec, is_file) if have_agents else None
        if obj is None:
            obj = getattr(module, "entrypoint", None)
        if obj is None:
            raise InitError("no agent found: no AgentServer, no WorkerOptions given to cli.run_app, and no "
                            "function named entrypoint (name one: agenthost init FILE:FUNCTION)")
    api = "livekit-agents" if have_agents and _is_livekit(obj) else "host"
    settings = None
    if api == "livekit-agents":
        from livekit.agents import AgentServer

        registered = [v for v in vars(module).values() if isinstance(v, AgentServer) and v._entrypoint_fnc is obj]
        obj = registered[0] if registered else obj  # name the server: its setup and session end come with it
        settings = project.find_server(obj)
    entry_name = _name_in(module, obj)
    if entry_name is None:
        raise InitError("the agent's entrypoint is not a top-level name of the module, so an agent file cannot "
                        "name it (define it at the top level)")
    name = settings.agent_name if settings is not None and settings.agent_name else stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", name).lstrip("_.-")[:128] or "agent"
    # a server's own setup function comes with it; a function's is named beside it
    setup = settings.setup if settings is not None and not _is_server(obj) else None
    return {"api": api, "entrypoint": entry_name, "setup": setup, "name": name,
            "server": asdict(settings) if settings is not None else None}


def _is_server(obj: object) -> bool:
    return type(obj).__name__ == "AgentServer"


def _import(spec: str, is_file: bool) -> Any:
    if "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if is_file:
            sys.path.insert(0, os.path.dirname(spec))
            name = os.path.splitext(os.path.basename(spec))[0]
            spec_obj = importlib.util.spec_from_file_location(name, spec)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[name] = module
            spec_obj.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except SystemExit as exc:
        raise InitError(f"importing it raised SystemExit: {exc}: put the call that starts the program under "
                        "`if __name__ == \"__main__\":`") from exc
    except BaseException as exc:
        raise InitError(f"importing it raised {type(exc).__name__}: {exc}") from exc


def _find(module: Any, spec: str, is_file: bool) -> object | None:
    """The module's agent: an AgentServer of it, or what it gives cli.run_app (at import, else under its
    `__main__` guard, run with cli.run_app recording instead of starting a server)."""
    from livekit.agents import AgentServer

    servers = [v for v in vars(module).values() if isinstance(v, AgentServer)]
    if len(servers) > 1:
        raise InitError("the module has several AgentServers: name one (agenthost init FILE:NAME)")
    if servers:
        return servers[0]
    if not compat.RUN_APP_CALLS:
        path = spec if is_file else getattr(module, "__file__", None)
        if path:
            try:
                runpy.run_path(path, run_name="__main__")
            except SystemExit:
                pass
            except BaseException as exc:
                raise InitError(f"running its `__main__` block raised {type(exc).__name__}: {exc}") from exc
    for given in list(compat.RUN_APP_CALLS):
        if isinstance(given, AgentServer):
            continue  # a server made only under the guard has no name an agent file could give
        fn = getattr(given, "entrypoint_fnc", None)
        # a `__main__` run defined its own copies: the module's function of the same name is the one to name
        own = getattr(module, getattr(fn, "__name__", ""), None)
        if own is not None and getattr(own, "__qualname__", None) == getattr(fn, "__qualname__", None):
            if own is not fn:
                compat.RUN_APP_CALLS.append(_rebound(given, module))
            return own  # type: ignore[no-any-return]
    return None


def _rebound(options: Any, module: Any) -> Any:
    """WorkerOptions from a `__main__` run, with its functions replaced by the imported module's own, so that
    the module's names are found for them."""
    import dataclasses

    changes = {}
    for attr in ("entrypoint_fnc", "prewarm_fnc", "request_fnc"):
        fn = getattr(options, attr, None)
        own = getattr(module, getattr(fn, "__name__", ""), None)
        if own is not None and callable(own):
            changes[attr] = own
    return dataclasses.replace(options, **changes)


def _is_livekit(obj: object) -> bool:
    from host.config.entrypoints import livekit_agents_code

    return livekit_agents_code(obj) is not None or type(obj).__module__.startswith("livekit.agents")


def _name_in(module: Any, obj: object) -> str | None:
    names: dict[str, object] = vars(module)
    return next((name for name, value in names.items() if value is obj and not name.startswith("_")), None)


@dataclass(frozen=True)
class Written:
    text: str
    not_carried: list[str] = field(default_factory=list)


def render_file(reading: Reading, out_path: str, source_shown: str) -> Written:
    """The agent file for `reading`, to be written at `out_path` (paths in it are relative to its folder)."""
    if reading.is_file:
        source, folder = os.path.abspath(reading.target), os.path.dirname(os.path.abspath(out_path))
        # relative to the agent file's folder, so the project moves as one; absolute when they share only /
        ref = (source if os.path.commonpath([source, folder]) == os.sep else os.path.relpath(source, folder)) + ":"
    else:
        ref = f"{reading.target}:"
    server = reading.server
    lines = [f"# The agent of {source_shown}, written by `agenthost init`. Check it with `agenthost validate`.",
             f"name: {reading.default_name}"]
    if reading.api == "livekit-agents":
        lines.append("api: livekit-agents")
    lines.append(f"entrypoint: {ref}{reading.entrypoint}" + ("  # read from this file's folder"
                                                            if reading.is_file else
                                                            "  # imported from the folder agenthost runs in"))
    if reading.setup:
        lines.append(f"setup: {ref}{reading.setup}")
    not_carried: list[str] = []
    if server is not None:
        if server.agent_name:
            lines.append("dispatch: explicit  # the module registers agent_name "
                         f"{server.agent_name!r}: dispatched by name")
        else:
            lines.append("dispatch: automatic  # the module registers no agent_name: livekit-agents dispatches "
                         "it to every new room")
        if server.server_type != "room":
            lines.append(f"job_type: {server.server_type}  # ServerType.{server.server_type.upper()}")
        opts: dict[str, Any] = dict(server.options)
        processes = [f"  idle: {int(opts['num_idle_processes'])}  # num_idle_processes"] \
            if "num_idle_processes" in opts else []
        if "initialize_process_timeout" in opts:
            processes.append(f"  init_timeout: {float(opts['initialize_process_timeout']):g}s  "
                             "# initialize_process_timeout")
        if processes:
            lines += ["processes:", *processes]
        if "shutdown_process_timeout" in opts:
            lines += ["shutdown:", f"  timeout: {float(opts['shutdown_process_timeout']):g}s  "
                                   "# shutdown_process_timeout"]
        limits = [f"  {key}: {int(opts[option])}  # job_{key}"
                  for option, key in (("job_memory_warn_mb", "memory_warn_mb"),
                                      ("job_memory_limit_mb", "memory_limit_mb")) if option in opts]
        if limits:
            lines += ["limits:", *limits]
        for option, key, ours, _ in project.OPTIONS:
            if key is None and option in opts:
                not_carried.append(f"{option}={opts[option]!r}: {ours}")
        if server.on_request:
            not_carried.append("on_request: not called by agenthost; a job is accepted when its metadata passes "
                               "`metadata.schema`, and `participant:` sets the agent's identity, name and "
                               "attributes")
        if server.permissions:
            listed = ", ".join(f"{k}={v!r}" for k, v in sorted(server.permissions.items()))
            not_carried.append(f"permissions ({listed}): the agent joins with livekit-agents' default permissions")
        if not_carried:
            lines.append("# Not carried over (no equivalent in an agent file):")
            lines += [f"#   {line}" for line in not_carried]
        lines += ["# Defaults that differ from livekit-agents' own:",
                  "#   processes.idle: 1 warm process per agent (livekit-agents: one per CPU in production)",
                  "#   agenthost run --load-threshold 0.9 (livekit-agents: 0.7), --drain-timeout 60s (1 hour),",
                  "#   --http 127.0.0.1:8081 (livekit-agents: all interfaces, port 8081); / answers as /healthz"]
    return Written("\n".join(lines) + "\n", not_carried)
