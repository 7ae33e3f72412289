"""The peer in bench/job_bench.py: the same probe entrypoint, served by livekit-agents' agent server.

Run with the peer venv's python (scripts/setup-bench-peer.sh): `python peer_worker.py start`.
"""

import asyncio

from livekit.agents import JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text("ready", topic="probe")
    if ctx.job.metadata == "stay":
        await asyncio.Event().wait()
    ctx.shutdown("probe answered")


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, agent_name="probe-peer", num_idle_processes=2, port=0,
                              load_threshold=float("inf")))
