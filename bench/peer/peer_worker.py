"""The peer in bench/job_bench.py: the same probe entrypoint, served by livekit-agents' agent server.

Run with the peer venv's python (scripts/setup-bench-peer.sh): `python peer_worker.py start`.
"""

import asyncio
import time

from livekit.agents import JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    started = time.time()  # when the entrypoint runs, and when the job is connected: the burst's figures
    await ctx.connect()
    await ctx.room.local_participant.send_text(f"ready {started} {time.time()}", topic="probe")
    if ctx.job.metadata == "stay":
        await asyncio.Event().wait()
    ctx.shutdown("probe answered")


def no_load() -> float:
    """The load reported to the server: none, as agenthost runs with --load-threshold 0 in the benches (its
    CPU-based load would reach the server's target 0.7 on a 2-core machine that also runs the clients, and
    the server would stop offering jobs)."""
    return 0.0


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, agent_name="probe-peer", num_idle_processes=2, port=0,
                              load_threshold=float("inf"), load_fnc=no_load))
