"""A livekit-agents project's server as agenthost reads it: what it says about its agent, as plain data.

A livekit-agents project names its settings on an `AgentServer` (with `@server.rtc_session(...)`) or on
`WorkerOptions` passed to `cli.run_app` (which `compat.intercept_run_app` records instead of running).
`ServerSettings` is what the server says; `find_server` finds the server behind an agent file's entrypoint.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

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
