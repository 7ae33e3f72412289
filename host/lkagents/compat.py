"""What agenthost relies on in livekit-agents, checked before any job runs.

The job context's constructor is private in livekit-agents (the same from 1.2 through 1.8). A process
that serves an `api: livekit-agents` agent checks, when it is prewarmed (and `validate` checks, when it
imports the agent), that every constructor still takes the parameters agenthost passes, so an
incompatible release fails there with a clear message, never in the middle of a call.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from host.lkagents import EXTRA_HINT, SUPPORTED


class AgentsApiError(Exception):
    """livekit-agents is missing or incompatible, or the named object is no livekit-agents entrypoint."""


# constructor -> the keyword parameters agenthost passes to it
_PRIVATE = {
    "livekit.agents.job:JobContext": ("proc", "info", "room", "on_connect", "on_shutdown", "inference_executor"),
    "livekit.agents.job:JobProcess": ("executor_type", "user_arguments", "http_proxy"),
    "livekit.agents.job:RunningJobInfo": ("accept_arguments", "job", "url", "token", "worker_id", "fake_job"),
    "livekit.agents.job:JobAcceptArguments": ("name", "identity", "metadata", "attributes"),
}


@dataclass(frozen=True)
class AgentsEntry:
    """What a job process runs, from a plain function or an `AgentServer`."""

    entrypoint: Callable[[Any], Coroutine[Any, Any, None]]
    setup: Callable[[Any], Any] | None  # the server's setup_fnc (prewarm); the YAML's `setup` wins
    session_end: Callable[[Any], Awaitable[None]] | None
    session_end_timeout: float | None


# what cli.run_app was given while intercepted: AgentServer or ServerOptions (WorkerOptions) objects
RUN_APP_CALLS: list[object] = []
# the environment as it was before the project's modules were imported (one may load a .env file into it),
# while what they hold is read (`environment_kept`)
_ENVIRONMENT_BEFORE: list[dict[str, str]] = []


@contextlib.contextmanager
def environment_kept() -> Iterator[None]:
    """Within: `environment_before` is the environment as it was on entering (import the project's code, and
    read its server, within)."""
    _ENVIRONMENT_BEFORE.append(dict(os.environ))
    try:
        yield
    finally:
        _ENVIRONMENT_BEFORE.pop()


def environment_before() -> dict[str, str]:
    """The environment before the project's code ran, within `environment_kept`; else as it is."""
    return _ENVIRONMENT_BEFORE[-1] if _ENVIRONMENT_BEFORE else dict(os.environ)


def intercept_run_app() -> None:
    """From now on in this process, `livekit.agents.cli.run_app(server)` records `server` and returns: the
    module's import goes on, and agenthost, not livekit-agents' server, runs its jobs."""
    from livekit.agents import cli

    if getattr(getattr(cli, "run_app", None), "_agenthost_recorder", False):
        return

    def run_app(server: object, *args: object, **kwargs: object) -> None:
        RUN_APP_CALLS.append(server)

    run_app._agenthost_recorder = True  # type: ignore[attr-defined]
    for name in ("livekit.agents.cli", "livekit.agents.cli.cli", "livekit.agents"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "run_app"):
            setattr(module, "run_app", run_app)  # noqa: B010 - the module's own name for it, replaced


def version() -> str:
    try:
        from livekit.agents import __version__
    except ImportError as exc:
        raise AgentsApiError(f"api: livekit-agents needs the livekit-agents package ({EXTRA_HINT})") from exc
    return str(__version__)


def check_compatible() -> None:
    """Raise AgentsApiError when this livekit-agents cannot be hosted."""
    import importlib

    found = version()
    for target, names in _PRIVATE.items():
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name, None)
        if cls is None:
            raise AgentsApiError(f"livekit-agents {found} has no {target} (agenthost supports {SUPPORTED})")
        params = inspect.signature(cls.__init__).parameters
        missing = [n for n in names if n not in params]
        if missing:
            raise AgentsApiError(f"livekit-agents {found}: {name}() no longer takes {', '.join(missing)} "
                                 f"(agenthost supports livekit-agents {SUPPORTED})")
    for module, name in (("livekit.agents.job", "_JobContextVar"), ("livekit.agents.utils.http_context",
                                                                     "_new_session_ctx")):
        if not hasattr(importlib.import_module(module), name):
            raise AgentsApiError(f"livekit-agents {found} has no {module}.{name} "
                                 f"(agenthost supports livekit-agents {SUPPORTED})")


def check_no_inference_runners() -> None:
    """The deprecated turn-detector plugin needs livekit-agents' separate inference process; say so now."""
    from livekit.agents.inference_runner import _InferenceRunner

    if _InferenceRunner.registered_runners:
        methods = ", ".join(sorted(_InferenceRunner.registered_runners))
        raise AgentsApiError(
            f"the agent's imports register livekit-agents inference runners ({methods}), which run in "
            "livekit-agents' own inference process; agenthost does not start one. Use a turn detector that "
            "runs in the job process (the default of AgentSession) instead of the turn-detector plugin")


def resolve(obj: object) -> AgentsEntry:
    """The entry of an `AgentServer` object, or of a plain async function taking the job context."""
    from livekit.agents import AgentServer

    if isinstance(obj, AgentServer):
        fn = getattr(obj, "_entrypoint_fnc", None)
        if fn is None:
            raise AgentsApiError("this AgentServer has no session entrypoint (register one with "
                                 "@server.rtc_session())")
        return AgentsEntry(fn, obj.setup_fnc, getattr(obj, "_session_end_fnc", None),
                           getattr(obj, "_session_end_timeout", None))
    from livekit.agents.worker import ServerOptions

    if isinstance(obj, ServerOptions):  # WorkerOptions: its entrypoint and prewarm functions
        setup = obj.prewarm_fnc if getattr(obj.prewarm_fnc, "__name__", "") != "_default_setup_fnc" else None
        return AgentsEntry(obj.entrypoint_fnc, setup, None, obj.session_end_timeout)  # type: ignore[arg-type]
    if not inspect.iscoroutinefunction(obj):
        raise AgentsApiError("with api: livekit-agents the entrypoint must be an async function taking the job "
                             f"context, an AgentServer or WorkerOptions; found {type(obj).__name__}")
    try:
        inspect.signature(obj).bind(object())
    except TypeError:
        raise AgentsApiError("the entrypoint must take exactly one argument, the job context") from None
    return AgentsEntry(obj, None, None, None)
