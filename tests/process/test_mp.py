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
