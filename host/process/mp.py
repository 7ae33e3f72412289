"""The `multiprocessing` context every process of the host is started with, and what its fork server preloads.

forkserver: a clean server process (never the host, with its event loop and sockets) forks each template
and job process. It has imported the libraries every job needs, so their pages are shared between the
processes; an agent's own code is imported after the fork, by its template (see host.process.template), so
that a reload's new template sees new code.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
from multiprocessing import util
from multiprocessing.process import BaseProcess

from host.sandbox import FORKSERVER_DIR, SAFE_PATH, SAFE_PATH_MARK
from host.tracing import JOB_MODULES

mp_context = multiprocessing.get_context("forkserver")


def _main_script_imports() -> list[str]:
    """What a job process would import again when the host runs as a script (the `agenthost` command):
    multiprocessing runs the host's main script in every process it starts, unless the host runs as a
    module (`python -m host`). Preloaded, those imports cost each job process nothing."""
    main = sys.modules.get("__main__")
    return ["host.cli"] if getattr(main, "__spec__", None) is None and getattr(main, "__file__", None) else []


PRELOAD = ["host.job.forkserver", "host.job.main", "host.job.context_api", "host.job.template_main",
           "host.context", "host.job.native", *_main_script_imports()]
FREEZE = ["host.job.freeze"]  # always last
mp_context.set_forkserver_preload(PRELOAD + FREEZE)
# livekit-agents' framework and its warm-up (imports, the VAD, the rtc library), shared by every job process
LIVEKIT_AGENTS_PRELOAD = ["host.lkagents.runner", "livekit.agents.ipc._preload"]


def preload(livekit_agents: bool = False, tracing: bool = False) -> None:
    """Have the fork server preload livekit-agents (when an agent has `api: livekit-agents`) and what a job's
    tracing imports (when tracing is on). Takes effect if called before the first process starts. A module
    that is not installed is left out by the fork server."""
    mp_context.set_forkserver_preload([*PRELOAD, *(LIVEKIT_AGENTS_PRELOAD if livekit_agents else ()),
                                       *(JOB_MODULES if tracing else ()), *FREEZE])


async def start_off_loop(proc: BaseProcess) -> None:
    """Start `proc` in a thread: the first start waits for the fork server to import what it preloads. If the
    caller is cancelled meanwhile, the start still completes, and the process is then killed and reaped
    (within 5 s): a started process is never left behind unwatched."""
    if FORKSERVER_DIR not in os.environ:  # the fork server's socket goes there: each job hides it from itself
        os.environ[FORKSERVER_DIR] = util.get_temp_dir()
    if SAFE_PATH not in os.environ:  # the fork server's own imports come from the installation only
        os.environ[SAFE_PATH], os.environ[SAFE_PATH_MARK] = "1", "1"
    starting = asyncio.ensure_future(asyncio.to_thread(proc.start))
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        await starting
        proc.kill()
        await asyncio.to_thread(proc.join, 5.0)
        raise
