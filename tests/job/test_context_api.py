"""`api: host` in a job process: the runtime built at prewarm, and its part in the job's end (the shutdown
callbacks before the room is left; the whole job runs end to end in tests/e2e)."""

from __future__ import annotations

from livekit.protocol import agent as agent_pb

from host.config.credentials import Credentials
from host.config.loader import load
from host.context import JobContext, Shutdown
from host.job.context_api import ContextRuntime, _ContextJob

MODULE = """
calls = []


def setup(proc):
    proc.userdata["model"] = "loaded"


async def entrypoint(ctx):
    calls.append("entrypoint")
"""


def definition(tmp_path):
    (tmp_path / "ctx_api_agent.py").write_text(MODULE)
    (tmp_path / "a.yaml").write_text("name: a\nentrypoint: ctx_api_agent.py:entrypoint\n"
                                     "setup: ctx_api_agent.py:setup\n")
    return load([str(tmp_path)], check_imports=False).require_ok().agents[0]


async def test_setup_runs_at_prewarm_and_the_callbacks_run_before_the_room_is_left(tmp_path):
    d = definition(tmp_path)
    runtime = ContextRuntime(d)
    assert runtime.proc.userdata == {"model": "loaded"}
    ctx = JobContext(job=agent_pb.Job(id="AJ_1"), definition=d, metadata=None, url="ws://127.0.0.1:9", token="t",
                     credentials=Credentials("ws://127.0.0.1:9", "k", "s" * 32), worker_id="AW",
                     proc=runtime.proc, shutdown=Shutdown(False))
    job = _ContextJob(runtime.entrypoint, ctx)
    order = []
    ctx.add_shutdown_callback(lambda reason: order.append(f"callback {reason}"))
    ctx.room.on("disconnected", lambda *_: order.append("left"))
    await job.entrypoint()
    assert runtime.entrypoint.__globals__["calls"] == ["entrypoint"]  # called with the context
    assert not job.connected() and job.pending() == []
    await job.leave("participants_left")
    await job.close()
    assert order == ["callback participants_left"]  # never connected: nothing to leave
