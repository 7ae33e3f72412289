"""The entrypoint API (host.context) as a job's runtime uses it: one shutdown request, the callbacks, closing."""

from __future__ import annotations

import logging

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.loader import load
from host.context import JobContext, ProcessContext, Shutdown


def context(tmp_path, shutdown: Shutdown | None = None) -> JobContext:
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: m:f\nshutdown: {drain: false}\n")
    d = load([str(tmp_path)], check_imports=False).require_ok().agents[0]
    job = agent_pb.Job(id="AJ_1")
    job.room.name = "room-1"
    return JobContext(job=job, definition=d, metadata={"x": 1}, url="ws://127.0.0.1:9", token="t",
                      credentials=Credentials("ws://127.0.0.1:9", "k", "s" * 32), worker_id="AW",
                      proc=ProcessContext(), shutdown=shutdown)


async def test_ctx_shutdown_is_the_runtimes_one_request(tmp_path):
    shutdown = Shutdown(drain=False)
    ctx = context(tmp_path, shutdown)
    ctx.shutdown()
    ctx.shutdown("later", drain=True)
    assert await shutdown.wait() == ("shutdown requested", False)  # the first one, with the file's drain


async def test_shutdown_callbacks_run_in_order_with_or_without_the_reason_and_a_failure_does_not_stop_them(
        tmp_path, caplog):
    ctx = context(tmp_path)
    seen = []

    async def with_reason(reason):
        seen.append(f"async {reason}")

    def broken():
        raise RuntimeError("boom")

    ctx.add_shutdown_callback(with_reason)
    ctx.add_shutdown_callback(broken)
    ctx.add_shutdown_callback(lambda: seen.append("sync"))
    with caplog.at_level(logging.ERROR, "agenthost.job"):
        await ctx.run_shutdown_callbacks("participants_left")
    assert seen == ["async participants_left", "sync"]
    assert "shutdown callback 'broken' failed" in caplog.text


async def test_a_context_that_never_connected_leaves_and_closes_quietly(tmp_path):
    ctx = context(tmp_path)
    assert not ctx.is_connected and ctx.participant_tasks() == []
    await ctx.leave()
    client = ctx.api  # made on first use
    assert ctx.api is client
    await ctx.close()
    await ctx.close()  # twice is fine
    assert ctx.agent_name == "a" and ctx.metadata == {"x": 1} and ctx.job.room.name == "room-1"
