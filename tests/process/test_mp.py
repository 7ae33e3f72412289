"""The multiprocessing context the host starts its processes with: started off the event loop, and the fork
server's folder made known to the job processes, which hide it from themselves."""

from __future__ import annotations

import os
from multiprocessing import forkserver, util

from host.process.mp import mp_context, start_off_loop
from host.sandbox import FORKSERVER_DIR


async def test_a_process_starts_off_the_loop_and_the_fork_servers_folder_is_passed_on(monkeypatch):
    monkeypatch.delenv(FORKSERVER_DIR, raising=False)
    proc = mp_context.Process(target=os.getpid)
    await start_off_loop(proc)
    proc.join(30)
    assert proc.exitcode == 0
    assert os.environ[FORKSERVER_DIR] == util.get_temp_dir()
    address = forkserver._forkserver._forkserver_address  # type: ignore[attr-defined]
    assert os.path.dirname(address) == os.environ[FORKSERVER_DIR]  # the folder a job hides is the socket's


def test_what_a_jobs_tracing_imports_is_preloaded_only_with_tracing_on():
    from host.process.mp import FREEZE, LIVEKIT_AGENTS_PRELOAD, PRELOAD, preload
    from host.tracing import JOB_MODULES

    server = forkserver._forkserver  # type: ignore[attr-defined]
    try:
        preload(tracing=True)
        assert server._preload_modules == [*PRELOAD, *JOB_MODULES, *FREEZE]
        preload(livekit_agents=True)
        assert server._preload_modules == [*PRELOAD, *LIVEKIT_AGENTS_PRELOAD, *FREEZE]
    finally:
        preload()
    assert server._preload_modules == [*PRELOAD, *FREEZE]
