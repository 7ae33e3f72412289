"""A job process's side of its pipe: what it tells the host, and the host's shutdown (or its going away)
turned into the job's."""

from __future__ import annotations

import asyncio
from multiprocessing import Pipe

from host.job.pipe import send, watch_host
from host.wire.messages import JobStarted, ShutdownJob
from host.wire.protocol import decode_job


def test_what_a_job_tells_the_host_is_in_the_form_the_host_reads():
    host_end, job_end = Pipe()
    assert send(job_end, JobStarted(12.5))
    assert decode_job(host_end.recv_bytes()) == JobStarted(12.5)
    host_end.close()
    assert not send(job_end, JobStarted(13.0))  # the host is gone: said, not raised


async def test_the_hosts_shutdown_and_its_going_away_end_the_job():
    host_end, job_end = Pipe()
    reasons: list[str] = []
    heard = asyncio.Event()

    def shutdown(reason: str) -> None:
        reasons.append(reason)
        heard.set()

    watch_host(job_end, shutdown)
    host_end.send(ShutdownJob("host_draining"))
    await asyncio.wait_for(heard.wait(), 10)
    heard.clear()
    host_end.close()
    await asyncio.wait_for(heard.wait(), 10)
    assert reasons == ["host_draining", "host_gone"]
