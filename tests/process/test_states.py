"""A job process's state and its moments (ready, shutting down, exited), without a process."""

from __future__ import annotations

import asyncio

import pytest

from host.process.errors import ProcessStartError
from host.process.exits import ProcessExit
from host.process.states import ProcessLife, ProcessState


def end(code: int) -> ProcessExit:
    return ProcessExit(code, False, None, None, None)


class Kills:
    count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_a_process_with_a_queued_job_runs_at_ready_and_one_without_is_idle():
    queued, idle = ProcessLife(Kills(), lambda: 1), ProcessLife(Kills(), lambda: 2)
    queued.ready(job_queued=True)
    idle.ready(job_queued=False)
    await queued.wait_ready(1)
    await idle.wait_ready(1)
    assert (queued.state, idle.state) == (ProcessState.RUNNING, ProcessState.IDLE)


async def test_forbidden_moves_change_nothing_and_the_first_shutdown_reason_is_kept():
    life = ProcessLife(Kills(), lambda: 1)
    life.shutting_down("early")  # starting: it has no job to shut down
    assert life.state is ProcessState.STARTING and life.shutdown_reason is None
    life.ready(job_queued=True)
    life.shutting_down("terminated_by_server")
    life.shutting_down("host_draining")
    await life.wait_shutting_down()
    assert life.state is ProcessState.SHUTTING_DOWN and life.shutdown_reason == "terminated_by_server"
    assert not life.move(ProcessState.IDLE) and life.state is ProcessState.SHUTTING_DOWN


async def test_a_process_that_exits_before_ready_fails_its_start_with_why():
    life = ProcessLife(Kills(), lambda: 1)
    life.not_ready = "broke the protocol: bad frame"
    life.exited(end(-9))
    with pytest.raises(ProcessStartError, match="broke the protocol"):
        await life.wait_ready(1)
    assert (await life.wait_exit()).code == -9
    await asyncio.wait_for(life.wait_shutting_down(), 1)  # an exit ends any wait for the shutdown too
    assert life.state is ProcessState.EXITED
    other = ProcessLife(Kills(), lambda: 2)
    other.start_failed("ImportError: no module named x")
    other.ready(job_queued=False)  # a late message cannot undo it
    with pytest.raises(ProcessStartError, match="ImportError"):
        await other.wait_ready(1)


async def test_bounded_waits_kill_the_process_when_they_run_out():
    kills = Kills()
    life = ProcessLife(kills, lambda: 1)
    with pytest.raises(ProcessStartError, match=r"not ready within 0\.05s"):
        await life.wait_ready(0.05)
    assert kills.count == 1
    life.ready(job_queued=True)
    waiting = asyncio.ensure_future(life.wait_exit(0.05))
    for _ in range(500):  # the wait runs out: the process is killed, and its exit still awaited
        if kills.count == 2:
            break
        await asyncio.sleep(0.01)
    assert kills.count == 2
    assert not waiting.done()
    life.exited(end(-9))
    assert (await waiting).code == -9
