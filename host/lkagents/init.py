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
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import yaml

from host.config.entrypoints import livekit_agents_code, package_of
from host.lkagents import compat, project
from host.lkagents.server import ServerSettings, described, find_server, name_in, read_server, run_app_given


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
    module: str | None  # its dotted name, when named as a module or part of a package
    file: str  # the module's file, which the agent file names by its path
    setup_file: str | None = None  # the setup function's module's file, when it is not `file`


class NoModule(InitError):
    """The module or file named does not exist."""


def read(target: str, timeout: float = 30.0) -> Reading:
    """Read `MODULE_OR_FILE[:OBJECT]` in a child process. Raises InitError (NoModule: nothing by that name)."""
    spec, _, obj = target.partition(":")
    is_file = spec.endswith(".py") or os.sep in spec
    if is_file and not os.path.isfile(spec):
        raise NoModule(f"{spec}: no such file")
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
        raise (NoModule if answer.get("missing") else InitError)(f"{spec}: {answer['error']}")
    server = ServerSettings(**answer["server"]) if answer["server"] else None
    return Reading(spec, is_file, answer["api"], answer["entrypoint"], answer["setup"], server, answer["name"],
                   answer["module"], answer["file"], answer.get("setup_file"))


def _child_main() -> None:
    """Runs in the reading child: one JSON line on the real stdout; what the module prints goes to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    try:
        with compat.environment_kept():
            answer = _read_here(request["spec"], request["is_file"], request["object"])
    except InitError as exc:
        answer = {"error": str(exc), "missing": isinstance(exc, NoModule)}
    out.write(json.dumps(answer) + "\n")


def _read_here(spec: str, is_file: bool, wanted: str) -> dict[str, Any]:
    try:
        compat.intercept_run_app()
        have_agents = True
    except ImportError:
        have_agents = False
    module, module_name = _import(spec, is_file)
    stem = os.path.splitext(os.path.basename(spec))[0] if is_file else spec.rpartition(".")[2]
    found = _discover(module, named=bool(wanted)) if have_agents else None
    if wanted:
        if not hasattr(module, wanted):
            raise InitError(f"the module has no attribute {wanted!r}")
        obj = getattr(module, wanted)
    else:
        obj = found if found is not None else getattr(module, "entrypoint", None)
        if obj is None:
            raise InitError("no agent found: no AgentServer, no WorkerOptions given to cli.run_app, and no "
                            "function named entrypoint (name one: agenthost init FILE:FUNCTION)")
    # what a livekit-agents server serves is livekit-agents code, whatever its type hints say (or lack)
    settings = find_server(obj, module) if have_agents else None
    api = "livekit-agents" if settings is not None or (have_agents and livekit_agents_code(obj) is not None) \
        else "host"
    entry_name = name_in(module, obj)
    setup_file: str | None = None  # where the setup function is, when not in the entrypoint's module
    if entry_name is None and settings is not None:  # a server this module does not name: its function's module
        fn = getattr(obj, "entrypoint_fnc", None) or getattr(obj, "_entrypoint_fnc", None)
        home = sys.modules.get(getattr(fn, "__module__", "") or "")
        if home is not None and home is not module and name_in(home, fn) is not None:
            settings = read_server(obj, home, named="options")
            elsewhere = _setup_elsewhere(obj, home, module)
            if elsewhere is not None:  # named in the module that defines it
                setup_file, setup_name = elsewhere
                settings = replace(settings, setup=setup_name)
            module, module_name, obj = home, home.__name__, fn
            entry_name = name_in(home, fn)
    if entry_name is None:
        fn = getattr(obj, "entrypoint_fnc", None) or getattr(obj, "_entrypoint_fnc", None) or obj
        raise InitError(f"the agent's entrypoint ({described(fn)}) is not a top-level name of the module, so an "
                        "agent file cannot name it: define it with `def` at the module's top level, or name the "
                        "AgentServer or WorkerOptions that holds it (agenthost init FILE:NAME)")
    name = settings.agent_name if settings is not None and settings.agent_name else stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", name).lstrip("_.-")[:128] or "agent"
    # a server's (or WorkerOptions') own setup function comes with it; a function's is named beside it
    setup = settings.setup if settings is not None and settings.named != "server" else None
    file = getattr(module, "__file__", None)
    if not file:
        raise InitError("the module has no file an agent file could name")
    return {"api": api, "entrypoint": entry_name, "setup": setup, "setup_file": setup_file, "name": name,
            "module": module_name, "file": os.path.abspath(file),
            "server": asdict(settings) if settings is not None else None}


def _setup_function(server: object) -> Any:
    return getattr(server, "setup_fnc", None) or getattr(server, "prewarm_fnc", None)


def _setup_elsewhere(server: object, entry_module: object, *others: object) -> tuple[str, str] | None:
    """The file of the module defining the server's setup (prewarm) function at its top level, and its name
    there, when the entrypoint's module does not; None when it does, or no module does."""
    fn = _setup_function(server)
    if fn is None or name_in(entry_module, fn) is not None:
        return None
    for module in (*others, sys.modules.get(getattr(fn, "__module__", "") or "")):
        file, name = getattr(module, "__file__", None), name_in(module, fn) if module is not None else None
        if file and name is not None:
            return os.path.abspath(file), name
    return None


def _import(spec: str, is_file: bool) -> tuple[Any, str | None]:
    """The module, and its dotted name when it is part of a package (or named as a module)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if is_file:
            package = package_of(spec)
            if package is not None:
                sys.path.insert(0, package[0])
                return importlib.import_module(package[1]), package[1]
            sys.path.insert(0, os.path.dirname(spec))
            name = os.path.splitext(os.path.basename(spec))[0]
            spec_obj = importlib.util.spec_from_file_location(name, spec)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[name] = module
            spec_obj.loader.exec_module(module)
            return module, None
        return importlib.import_module(spec), spec
    except ModuleNotFoundError as exc:
        if not is_file and exc.name and spec.startswith(exc.name):
            raise NoModule(f"no module named {spec!r} (from the folder agenthost runs in)") from exc
        raise InitError(f"importing it raised ModuleNotFoundError: {exc}") from exc
    except SystemExit as exc:
        raise InitError(f"importing it raised SystemExit: {exc}: put the call that starts the program under "
                        "`if __name__ == \"__main__\":`") from exc
    except BaseException as exc:
        raise InitError(f"importing it raised {type(exc).__name__}: {exc}") from exc


def _discover(module: Any, named: bool = False) -> object | None:
    """The module's agent: its AgentServer, or what it gives cli.run_app (at import, else under its
    `__main__` guard, run with cli.run_app recording): that object where the module names it, else its
    entrypoint function. None when the module has neither, or several servers and the user `named` one."""
    from livekit.agents import AgentServer
    from livekit.agents.worker import ServerOptions

    servers = [v for v in vars(module).values() if isinstance(v, AgentServer)]
    if len(servers) > 1 and named:
        return None  # the one named is read by itself
    if len(servers) > 1:
        names = [n for n, v in vars(module).items() if isinstance(v, AgentServer)]
        raise InitError(f"the module has several AgentServers ({', '.join(names)}): name one (agenthost init "
                        f"FILE:{names[-1]})")
    if servers:
        return servers[0]
    if not compat.RUN_APP_CALLS:
        try:
            run_app_given(module)
        except Exception as exc:
            raise InitError(f"running what gives cli.run_app its server (its `__main__` block, or a function "
                            f"calling it) raised {type(exc).__name__}: {exc}") from exc
    for given in reversed(compat.RUN_APP_CALLS):
        if name_in(module, given) is not None:
            return given  # WorkerOptions or a server the module names: its settings come with it
        fn = given.entrypoint_fnc if isinstance(given, ServerOptions) else getattr(given, "_entrypoint_fnc", None)
        name = name_in(module, fn)
        if name is not None:
            found: object = getattr(module, name)
            return found
    # its entrypoint is another module's (`import handlers.voice as voice` ... `voice.entrypoint`): the
    # server's settings still come with it, and the agent file names that module's function
    return compat.RUN_APP_CALLS[-1] if compat.RUN_APP_CALLS else None


@dataclass(frozen=True)
class Written:
    text: str
    not_carried: list[str] = field(default_factory=list)


def render_file(reading: Reading, out_path: str, source_shown: str) -> Written:
    """The agent file for `reading`, to be written at `out_path`: its paths are read from that file's folder,
    so the project and its agent files move together (a file in a package is imported as part of it)."""
    folder = os.path.dirname(os.path.abspath(out_path))

    def reference(file: str) -> tuple[str, bool]:
        relative = os.path.commonpath([file, folder]) != os.sep
        return (os.path.relpath(file, folder) if relative else file) + ":", relative
    ref, relative = reference(reading.file)
    server = reading.server
    name = reading.default_name
    registered = server.agent_name if server is not None else ""
    renamed = f"  # livekit-agents' agent_name {registered!r} is no agent file's name: dispatch {name!r}" \
        if registered and registered != name else ""
    lines = [f"# The agent of {source_shown}, written by `agenthost init`. Check it with `agenthost validate`.",
             f"name: {name if isinstance(yaml.safe_load(name), str) else json.dumps(name)}{renamed}"]
    if reading.api == "livekit-agents":
        lines.append("api: livekit-agents")
    lines.append(f"entrypoint: {ref}{reading.entrypoint}" + ("  # read from this file's folder" if relative else ""))
    if reading.setup:
        lines.append(f"setup: {reference(reading.setup_file)[0] if reading.setup_file else ref}{reading.setup}")
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
        if server.setup_unnamed and server.named != "server":
            not_carried.append(f"setup (prewarm) {server.setup_unnamed}: no agent file can name it; define it at "
                               "the module's top level and add `setup: FILE:NAME`")
        if server.session_end and server.named != "server":
            not_carried.append(f"on_session_end ({server.session_end}): runs only when the entrypoint names the "
                               "server; name it instead of the function")
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
