"""How an agent file differs from the livekit-agents project it serves, as `validate` explains it.

`differences` is a pure function from what the project's server says (host.lkagents.server) and what an agent
file says to what changes under agenthost, and how to keep livekit-agents' behaviour; `check_entry` is what
`validate` runs on an agent's entrypoint.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from host.lkagents import compat
from host.lkagents.server import ServerSettings, find_server, run_app_given

AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # the agent schema's `name`
NAME_RULE = "letters, digits, '_', '.', '-', starting with a letter or digit"  # AGENT_NAME, as a message says it


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
        fix = (f"reach it only with `name: {server.agent_name}`" if AGENT_NAME.fullmatch(server.agent_name) else
               f"cannot reach it, as no agent file can have that name ({NAME_RULE}): callers must dispatch "
               f"{agent.name!r}")
        out.append(Difference("warning", "name", f"{server.source} registers agent_name {server.agent_name!r}; "
                              f"agenthost registers the agent file's name {agent.name!r}: dispatches to "
                              f"{server.agent_name!r} {fix}"))
    if server.setup and server.named != "server" and agent.setup is None:
        ref = agent.entrypoint.rpartition(":")[0] + ":" + server.setup
        say("setup", "setup", f"{server.source} runs {server.setup!r} in each process before its job (prewarm); "
            f"this agent file names the entrypoint function only, so it would not run. Add `setup: {ref}`")
    # a server named brings its own setup along; a file naming a setup of its own has chosen
    if server.setup_unnamed and server.named != "server" and agent.setup is None:
        say("setup", "setup", f"{server.source} runs {server.setup_unnamed} in each process before its job "
            "(prewarm), which has no top-level name, so no agent file can name it and it would not run: define "
            "it at the module's top level (`def prewarm(proc): ...`) and add `setup: "
            f"{agent.entrypoint.rpartition(':')[0]}:prewarm`")
    if server.session_end and "session_end_timeout" not in server.options and "shutdown" not in agent.stated:
        out.append(Difference("warning", "shutdown", f"{server.source} runs {server.session_end!r} when a session "
                              "ends (on_session_end), which livekit-agents gives 300 s by default; agenthost gives "
                              f"it the rest of `shutdown.timeout` ({agent.shutdown_timeout:g}s here): write "
                              "`shutdown: {timeout: 300s}` if it needs that long"))
    if server.session_end and server.named != "server":
        out.append(Difference("warning", "entrypoint", f"{server.source} runs {server.session_end!r} when a "
                              "session ends (on_session_end); this agent file names the entrypoint function only, "
                              "so it would not run: name the server instead (`entrypoint: "
                              f"{agent.entrypoint.rpartition(':')[0]}:SERVER`)"))
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
        elif _differs(int(value) if fmt is _int and isinstance(value, float) else value, getattr(agent, ours)):
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
    ("ws_url", None, "the server is the host's: LIVEKIT_URL or `agenthost run --url` (without either, "
                     "ws://127.0.0.1:7880)", str),
    ("api_key", None, "the host's: LIVEKIT_API_KEY or `agenthost run --api-key`", str),
    ("api_secret", None, "the host's: LIVEKIT_API_SECRET or `agenthost run --api-secret`", str),
    ("http_proxy", None, "agenthost connects to LiveKit without a proxy", str),
    ("multiprocessing_context", None, "agenthost forks each job's process from the agent's template process", str),
    ("log_level", None, "it is the host's: `agenthost run --log-level` (default info)", str),
    ("load_fnc", None, "agenthost reports its own load (its CPU use and running jobs, `agenthost run "
                       "--load-threshold`); the function is not called", str),
    ("prometheus_multiproc_dir", None, "agenthost's metrics are at /metrics on `agenthost run --http`", str),
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
    if server is None and module is not None:
        try:  # the published examples' shape: WorkerOptions given to cli.run_app under the `__main__` guard
            run_app_given(module)
        except Exception as exc:
            return None, [("warning", "entrypoint", "what the module runs to give cli.run_app its server (its "
                                                    "`__main__` block, or a function calling it) raised "
                                                    f"{type(exc).__name__}: {exc}")]
        server = find_server(obj, module)
    if server is None or declared is None:
        return None, []
    agent = AgentFile(**{**declared, "stated": frozenset(declared["stated"])})
    return None, [(d.severity, d.key, d.message) for d in differences(server, agent)]
