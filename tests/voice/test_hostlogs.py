"""A call's job log lines read from a host's /logs: a reused room's earlier lines skipped, new ones said, the
job's end kept."""

from __future__ import annotations

import asyncio
import logging

from host.ops.httpserver import HttpServer
from host.ops.joblogs import JobLogs
from host.voice.hostlogs import HostLogs, JobLogSource


async def test_only_this_calls_lines_are_said_and_its_end_is_kept():
    logs = JobLogs()
    logger = logging.getLogger("agenthost.test-hostlogs")
    logger.handlers[:] = [logs]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.error("job failed: an earlier call in this room", extra={"job_id": "AJ_0", "room": "r"})
    server = HttpServer(type("Target", (), {"job_limits": "rlimit"})(), ("127.0.0.1", 0), logs=logs)  # type: ignore[arg-type]
    await server.start()
    said: list[str] = []
    reader = HostLogs(JobLogSource(f"http://127.0.0.1:{server.port}"), "r", said.append)
    try:
        await asyncio.to_thread(reader.skip_earlier)
        following = asyncio.ensure_future(reader.follow())
        logger.info("job running in process 42", extra={"job_id": "AJ_1", "room": "r"})
        logger.warning("agent says \x1b[31mred", extra={"fields": {"job_id": "AJ_1"}})
        logger.error("job failed: job process exited with code -6 (SIGABRT)", extra={"job_id": "AJ_1", "room": "r"})
        await asyncio.wait_for(reader.job_end_seen.wait(), 10)
        following.cancel()
    finally:
        await server.close()
    assert said == ["  [log] INFO    job running in process 42", "  [log] WARNING agent says \\x1b[31mred",
                    "  [log] ERROR   job failed: job process exited with code -6 (SIGABRT)"]
    assert reader.job_end == "job failed: job process exited with code -6 (SIGABRT)"
