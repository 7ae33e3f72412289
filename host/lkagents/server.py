"""A livekit-agents project's server as agenthost reads it: what it says about its agent, as plain data.

A livekit-agents project names its settings on an `AgentServer` (with `@server.rtc_session(...)`) or on
`WorkerOptions` passed to `cli.run_app` (which `compat.intercept_run_app` records instead of running).
`ServerSettings` is what the server says; `find_server` finds the server behind an agent file's entrypoint.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from host.config.credentials import without_userinfo
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
    session_end: str | None = None  # the module's name of its on_session_end function, if it has one
    # its setup (prewarm) function when the module has no top-level name for it (a lambda, a
    # functools.partial), as it reads: no agent file's `setup:` can name it
    setup_unnamed: str | None = None


# the options read from a server, as AgentServer's arguments are named (where its attribute is not `_NAME`)
READ_OPTIONS = ("num_idle_processes", "load_threshold", "drain_timeout", "job_memory_warn_mb", "job_memory_limit_mb",
                "initialize_process_timeout", "shutdown_process_timeout", "session_end_timeout", "port", "host",
                "job_executor_type", "preload_modules", "prometheus_port", "prometheus_multiproc_dir", "max_retry",
                "ws_url", "api_key", "api_secret", "http_proxy", "multiprocessing_context", "log_level", "load_fnc")
ATTRIBUTES = {"multiprocessing_context": "_mp_ctx_str"}
SECRETS = ("api_key", "api_secret")  # said to be set, never shown
# where livekit-agents fills an option in from the environment when the code leaves it out
FROM_ENVIRONMENT = {"ws_url": ("LIVEKIT_URL",), "api_key": ("LIVEKIT_API_KEY",),
                    "api_secret": ("LIVEKIT_API_SECRET",), "http_proxy": ("HTTPS_PROXY", "HTTP_PROXY")}


def given(value: object, default: object) -> tuple[bool, object]:
    """(whether the server's option was set, its value as a production server uses it): a value of livekit-agents'
    dev/prod kind (ServerEnvOption) counts as set when it is not the default one, with its production value."""
    if type(value).__name__ == "ServerEnvOption":
        return value != default, getattr(value, "prod_default", None)
    if type(default).__name__ == "ServerEnvOption":  # a plain value where the default is dev/prod: set
        return value is not None, value
    if value is None or value == "" or value is default or type(value).__name__ == "NotGiven" \
            or getattr(value, "__qualname__", "") == "_DefaultLoadCalc.get_load":  # WorkerOptions' own defaults
        return False, None
    return value != default and value != [], value


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
    default_permissions = WorkerPermissions()
    permissions = {k: v for k, v in vars(server._permissions).items() if getattr(default_permissions, k) != v}
    request = server._request_fnc
    defaults = {name: p.default for name, p in inspect.signature(AgentServer.__init__).parameters.items()}
    options: dict[str, object] = {}
    before = compat.environment_before()
    for option in READ_OPTIONS:
        is_set, value = given(getattr(server, ATTRIBUTES.get(option, f"_{option}"), None), defaults.get(option))
        if not is_set or any(value == before.get(name) for name in FROM_ENVIRONMENT.get(option, ())):
            continue  # not set, or as the environment sets it (livekit-agents reads it there, and so does the host)
        # the module put it into its own environment (from a .env file, say), which the host does not read
        loaded = any(value == os.environ.get(name) for name in FROM_ENVIRONMENT.get(option, ()))
        if option == "job_executor_type":
            value = getattr(value, "value", value)
            if value == "process":
                continue
        elif option in SECRETS:
            value = "(given in the code)" if not loaded else ""
        elif option == "http_proxy" and isinstance(value, str):  # its password not shown
            value = without_userinfo(value)
        if loaded:
            value = f"{value} (loaded by the module into its environment, from a .env file say: the host reads " \
                    "no .env file, so export it where the host runs)".lstrip()
        elif callable(value):
            value = name_in(module, value) or getattr(value, "__name__", repr(value))
        options[option] = value
    setup, session_end = server.setup_fnc, getattr(server, "_session_end_fnc", None)
    if getattr(setup, "__name__", None) == "_default_setup_fnc":
        setup = None
    setup_name = name_in(module, setup) if setup is not None else None
    if setup_name is None and setup is not None and _plain_function(setup):
        setup_name = setup.__name__  # a module's function its `__main__` run defined again
    return ServerSettings(
        source=source,
        agent_name=server._agent_name,
        server_type="publisher" if server._server_type.name == "PUBLISHER" else "room",
        setup=setup_name,
        on_request=request is not None and getattr(request, "__name__", "") != "_default_request_fnc",
        permissions=permissions,
        options=options,
        named=named,
        session_end=(name_in(module, session_end) or getattr(session_end, "__name__", "on_session_end"))
        if session_end is not None else None,
        setup_unnamed=described(setup) if setup is not None and setup_name is None else None,
    )


def _plain_function(fn: object) -> bool:
    """A function defined by `def` at a module's top level (not a lambda, a partial, a method or a nested one)."""
    return inspect.isfunction(fn) and fn.__name__ != "<lambda>" and "<" not in fn.__qualname__ \
        and "." not in fn.__qualname__


def described(fn: object) -> str:
    """A function as a message names it: a lambda and a functools.partial by what they are."""
    if getattr(fn, "__name__", None) == "<lambda>":
        return "a lambda"
    func = getattr(fn, "func", None)
    if func is not None:
        return f"functools.partial({getattr(func, '__name__', '?')}, ...)"
    return str(getattr(fn, "__qualname__", None) or repr(fn)[:80])


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


def run_app_given(module: object) -> None:
    """Run what of the module gives cli.run_app its server (compat.intercept_run_app must be on): its `__main__`
    block, else a top-level function that calls cli.run_app itself and takes no argument (the `main` a
    `[project.scripts]` entry names, say). What they give is then in compat.RUN_APP_CALLS. Raises what they
    raise."""
    had = len(compat.RUN_APP_CALLS)
    if runs_app_under_guard(module):
        run_main(module)
    for fn in _run_app_callers(module):
        if len(compat.RUN_APP_CALLS) > had:
            return
        with contextlib.suppress(SystemExit):
            fn()


def _run_app_callers(module: object) -> list[Any]:
    """The module's own top-level functions, taking no argument, whose code calls livekit-agents' run_app (by a
    name of the module's for it, for livekit.agents or for its cli: another framework's `run_app` would really
    run, a web server's say)."""
    names: dict[str, object] = vars(module) if module is not None else {}
    callers = []
    for value in list(names.values()):
        if not (inspect.isfunction(value) and value.__module__ == getattr(module, "__name__", None)) \
                or inspect.iscoroutinefunction(value) or "run_app" not in value.__code__.co_names \
                or not any(_livekit_agents(names.get(n)) for n in value.__code__.co_names):
            continue
        try:
            if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   for p in inspect.signature(value).parameters.values()):
                callers.append(value)
        except (TypeError, ValueError):
            continue
    return callers


def _livekit_agents(value: object) -> bool:
    """Whether `value` is livekit-agents' run_app (as intercepted), or its package or cli module."""
    if getattr(value, "_agenthost_recorder", False):
        return True
    return inspect.ismodule(value) and value.__name__ in ("livekit", "livekit.agents", "livekit.agents.cli",
                                                          "livekit.agents.cli.cli")


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
