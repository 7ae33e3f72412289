"""A livekit-agents project as agenthost reads it: what its server says, and how an agent file differs.

A livekit-agents project names its settings on an `AgentServer` (with `@server.rtc_session(...)`) or on
`WorkerOptions` passed to `cli.run_app` (which `compat.intercept_run_app` records instead of running).
`ServerSettings` is what the server says, as plain data;
`differences` is a pure function from it and what an agent file says to what changes under agenthost.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from host.lkagents import compat


@dataclass(frozen=True)
class ServerSettings:
    """What a livekit-agents server says about its agent, in livekit-agents' own terms."""

    source: str  # "AgentServer 'server'", "WorkerOptions given to cli.run_app", ...
    agent_name: str  # "" means automatic dispatch
    server_type: str  # "room" | "publisher"
    setup: str | None  # the module's name of its setup (prewarm) function, if it has one
    on_request: bool  # a request function other than livekit-agents' default accept
    permissions: Mapping[str, object] = field(default_factory=dict)  # those differing from the defaults
    options: Mapping[str, object] = field(default_factory=dict)  # the server's other options set, by name
    # what the agent file's entrypoint names: "server" (an AgentServer: its setup function comes with it),
    # "function" (a function registered on a module's AgentServer: its name is the file's own choice), or
    # "options" (the function given to cli.run_app, alone or in WorkerOptions)
    named: str = "server"


def _given(value: object) -> object | None:
    """A server option as set, or None where it is livekit-agents' dev/prod default (a ServerEnvOption)."""
    if type(value).__name__ == "ServerEnvOption":
        return None
    return value


def name_in(module: object, value: object) -> str | None:
    """The module's top-level name for `value`: the object itself, or the function of the same name defined
    by the same code (a `__main__` run of the module defines its own copies)."""
    names: dict[str, object] = vars(module) if module is not None else {}
    for name, candidate in names.items():
        if candidate is value and not name.startswith("_"):
            return name
    own = names.get(getattr(value, "__name__", "") or "")
    return getattr(value, "__name__", None) if own is not None and same_function(own, value) else None


def same_function(a: object, b: object) -> bool:
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return a is b or (code_a is not None and code_b is not None and code_a.co_filename == code_b.co_filename
                      and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None))


def read_server(obj: object, module: object | None, named: str = "server") -> ServerSettings:
    """The settings of an AgentServer or ServerOptions (WorkerOptions) object; `module` names its parts."""
    from livekit.agents import AgentServer
    from livekit.agents.worker import ServerOptions, WorkerPermissions

    if isinstance(obj, ServerOptions):
        server = AgentServer.from_server_options(obj)
        source = "the WorkerOptions given to cli.run_app"
    elif isinstance(obj, AgentServer):
        server = obj
        name = name_in(module, obj)
        source = f"AgentServer {name!r}" if name else "the AgentServer given to cli.run_app"
    else:
        raise TypeError(f"not a livekit-agents server: {type(obj).__name__}")
    defaults = WorkerPermissions()
    permissions = {k: v for k, v in vars(server._permissions).items() if getattr(defaults, k) != v}
    request = server._request_fnc
    options: dict[str, object] = {}
    for option, default in (("num_idle_processes", None), ("load_threshold", None), ("drain_timeout", 3600),
                            ("job_memory_warn_mb", 1000), ("job_memory_limit_mb", 0),
                            ("initialize_process_timeout", 10.0), ("shutdown_process_timeout", 10.0),
                            ("session_end_timeout", 300.0), ("port", None), ("host", ""),
                            ("job_executor_type", None), ("preload_modules", []), ("prometheus_port", None),
                            ("max_retry", 16)):
        value = _given(getattr(server, f"_{option}", None))
        if option == "job_executor_type" and value is not None:
            value = getattr(value, "value", value)
            default = "process"
        if value is not None and value != default:
            options[option] = value
    setup = server.setup_fnc
    return ServerSettings(
        source=source,
        agent_name=server._agent_name,
        server_type="publisher" if server._server_type.name == "PUBLISHER" else "room",
        setup=(name_in(module, setup) or getattr(setup, "__name__", "setup"))
        if setup is not None and setup.__name__ != "_default_setup_fnc" else None,
        on_request=request is not None and getattr(request, "__name__", "") != "_default_request_fnc",
        permissions=permissions,
        options=options,
        named=named,
    )


def find_server(obj: object, module: object | None = None) -> ServerSettings | None:
    """The settings behind an agent file's entrypoint `obj` (of `module`): the AgentServer itself, the
    AgentServer a function is registered on, or what the module gave cli.run_app (at import, or under its
    `__main__` guard once `run_main` ran it); None for a function no server names."""
    from livekit.agents import AgentServer
    from livekit.agents.worker import ServerOptions

    if isinstance(obj, (AgentServer, ServerOptions)):
        fn = obj.entrypoint_fnc if isinstance(obj, ServerOptions) else obj._entrypoint_fnc
        return read_server(obj, module or sys.modules.get(getattr(fn, "__module__", "") or ""))
    module = module if module is not None else sys.modules.get(getattr(obj, "__module__", "") or "")
    for value in vars(module).values() if module is not None else ():
        if isinstance(value, AgentServer) and value._entrypoint_fnc is obj:
            return read_server(value, module, named="function")
    for given in reversed(compat.RUN_APP_CALLS):
        target = given.entrypoint_fnc if isinstance(given, ServerOptions) else getattr(given, "_entrypoint_fnc", None)
        if same_function(target, obj):
            return read_server(given, module, named="options")
    return None


def runs_app_under_guard(module: object) -> bool:
    """Whether the module's source calls run_app under a `__main__` guard (so `run_main` would find its
    server); read from its file, nothing run."""
    path = getattr(module, "__file__", None)
    try:
        with open(path or "", encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return False
    return "__main__" in text and "run_app" in text


def run_main(module: object) -> None:
    """Run the module's `__main__` block, with cli.run_app recording (compat.intercept_run_app must be on):
    what it gives cli.run_app is then in compat.RUN_APP_CALLS. Raises what the block raises."""
    import runpy

    spec = getattr(module, "__spec__", None)
    try:
        if spec is not None and spec.name and "." in spec.name:  # in a package: its relative imports work
            runpy.run_module(spec.name, run_name="__main__", alter_sys=False)
        else:
            runpy.run_path(getattr(module, "__file__", "") or "", run_name="__main__")
    except SystemExit:
        pass


@dataclass(frozen=True)
class AgentFile:
    """What an agent file says, as far as a livekit-agents server could say otherwise."""

    name: str
    entrypoint: str  # its `entrypoint`, as written
    setup: str | None  # its `setup`, as written, if it has one
    dispatch: str  # "explicit" | "automatic"
    job_type: str
    stated: frozenset[str]  # the top-level keys the file writes (the rest are agenthost's defaults)
    idle: int
    init_timeout: float
    shutdown_timeout: float
    memory_warn_mb: int
    memory_limit_mb: int


@dataclass(frozen=True)
class Difference:
    severity: str  # "error": behaviour silently lost; "warning": changed, and said how to keep it
    key: str  # the agent file's key the difference is about
    message: str


def differences(server: ServerSettings, agent: AgentFile) -> list[Difference]:
    """What changes when this server's agent runs from this agent file, and how to keep livekit-agents'
    behaviour. Where behaviour would be silently lost (dispatch, job type, the prewarm function, the memory
    limit), the change is an error unless the file states that key on purpose, then a warning; the rest are
    warnings that say what to write."""
    out: list[Difference] = []

    def say(key: str, stated_by: str, message: str) -> None:
        out.append(Difference("warning" if stated_by in agent.stated else "error", key, message))

    automatic = server.agent_name == ""
    if automatic and agent.dispatch != "automatic":
        say("dispatch", "dispatch", f"{server.source} registers no agent_name, so livekit-agents dispatches it "
            "automatically to every new room; this agent file is dispatch: explicit, so the agent joins only "
            "the rooms it is dispatched to by name. Add `dispatch: automatic` to keep livekit-agents' behaviour "
            "(or write `dispatch: explicit` to say you mean it)")
    elif not automatic and agent.dispatch == "automatic":
        say("dispatch", "dispatch", f"{server.source} registers agent_name {server.agent_name!r} (explicit "
            "dispatch); this agent file is dispatch: automatic, so the agent joins every new room")
    elif not automatic and server.agent_name != agent.name and server.named != "function":
        out.append(Difference("warning", "name", f"{server.source} registers agent_name {server.agent_name!r}; "
                              f"agenthost registers the agent file's name {agent.name!r}: dispatches to "
                              f"{server.agent_name!r} reach it only with `name: {server.agent_name}`"))
    if server.setup and server.named != "server" and agent.setup is None:
        ref = agent.entrypoint.rpartition(":")[0] + ":" + server.setup
        say("setup", "setup", f"{server.source} runs {server.setup!r} in each process before its job (prewarm); "
            f"this agent file names the entrypoint function only, so it would not run. Add `setup: {ref}`")
    if server.server_type != agent.job_type:
        say("job_type", "job_type", f"{server.source} is ServerType.{server.server_type.upper()} (one job per "
            f"{server.server_type}); this agent file is job_type: {agent.job_type}. Add `job_type: "
            f"{server.server_type}` to keep it")
    if server.on_request:
        out.append(Difference("warning", "metadata", f"{server.source} sets on_request (request_fnc), which "
                              "agenthost does not call: a job is accepted when its metadata passes "
                              "`metadata.schema`, and the agent joins with the identity, name and attributes of "
                              "`participant:`; move its checks there (or into the entrypoint)"))
    if server.permissions:
        listed = ", ".join(f"{k}={v!r}" for k, v in sorted(server.permissions.items()))
        out.append(Difference("warning", "participant", f"{server.source} sets permissions ({listed}), which "
                              "are not carried over: agenthost's agent joins with livekit-agents' default permissions "
                              "(publish, subscribe, publish data, update metadata; not hidden)"))
    for option, key, ours, fmt in OPTIONS:
        if option not in server.options:
            continue
        value = server.options[option]
        if key is None:
            out.append(Difference("warning", "entrypoint", f"{server.source} sets {option}={value!r}: {ours}"))
        elif _differs(value, getattr(agent, ours)):
            message = (f"{server.source} sets {option}={value!r}; this agent file has {key}: "
                       f"{getattr(agent, ours)!r}: write `{key}: {fmt(value)}` to keep it")
            if option == "job_memory_limit_mb":  # a limit silently gone: an error unless the file says so
                say(key, key.partition(".")[0], message)
            else:
                out.append(Difference("warning", key, message))
    return out


def _differs(theirs: object, ours: object) -> bool:
    try:
        return not math.isclose(float(theirs), float(ours))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return theirs != ours


def _secs(value: object) -> str:
    return f"{value:g}s" if isinstance(value, (int, float)) else str(value)


def _int(value: object) -> str:
    return str(int(value)) if isinstance(value, (int, float)) else str(value)


# livekit-agents option -> (agent file key, AgentFile field, how to write it), or (None, what agenthost does)
OPTIONS: tuple[tuple[str, str | None, str, Callable[[Any], str]], ...] = (
    ("num_idle_processes", "processes.idle", "idle", _int),
    ("initialize_process_timeout", "processes.init_timeout", "init_timeout", _secs),
    ("shutdown_process_timeout", "shutdown.timeout", "shutdown_timeout", _secs),
    ("job_memory_warn_mb", "limits.memory_warn_mb", "memory_warn_mb", _int),
    ("job_memory_limit_mb", "limits.memory_limit_mb", "memory_limit_mb", _int),
    ("load_threshold", None, "it is the host's: `agenthost run --load-threshold` (default 0.9; livekit-agents' "
                             "0.7)", str),
    ("drain_timeout", None, "it is the host's: `agenthost run --drain-timeout` (default 60s)", str),
    ("port", None, "agenthost's health and metrics are on `agenthost run --http` (default 127.0.0.1:8081; `/` "
                   "answers as /healthz does)", str),
    ("host", None, "agenthost's HTTP address is `agenthost run --http HOST:PORT`", str),
    ("job_executor_type", None, "agenthost runs every job in a process of its own", str),
    ("preload_modules", None, "agenthost imports each agent's modules once, in the agent's template process",
     str),
    ("prometheus_port", None, "agenthost's metrics are at /metrics on `agenthost run --http`", str),
    ("session_end_timeout", None, "agenthost bounds the session-end function by `shutdown.timeout`", str),
    ("max_retry", None, "agenthost reconnects to LiveKit without a bound", str),
)


def check_entry(obj: object, declared: Mapping[str, Any] | None) -> tuple[str | None, list[tuple[str, str, str]]]:
    """For `validate`: why `obj` cannot serve the agent (or None), and how the agent file `declared` (the
    fields of `AgentFile`) changes what its livekit-agents server says, as (severity, key, message)."""
    try:
        compat.check_compatible()
        compat.resolve(obj)
        compat.check_no_inference_runners()
    except compat.AgentsApiError as exc:
        return str(exc), []
    server = find_server(obj)
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    if server is None and module is not None and runs_app_under_guard(module):
        try:  # the published examples' shape: WorkerOptions given to cli.run_app under the `__main__` guard
            run_main(module)
        except Exception as exc:
            return None, [("warning", "entrypoint", f"the module's `__main__` block, run to read what it gives "
                                                    f"cli.run_app, raised {type(exc).__name__}: {exc}")]
        server = find_server(obj, module)
    if server is None or declared is None:
        return None, []
    agent = AgentFile(**{**declared, "stated": frozenset(declared["stated"])})
    return None, [(d.severity, d.key, d.message) for d in differences(server, agent)]
