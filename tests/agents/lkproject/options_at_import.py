"""An older style: WorkerOptions given to cli.run_app at import, with no `__main__` guard."""

from livekit.agents import JobContext, JobProcess, WorkerOptions, cli


def prewarm(proc: JobProcess) -> None:
    proc.userdata["warm"] = "prewarmed"


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text(f"proj-options {ctx.proc.userdata['warm']}", topic="greeting")


cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, agent_name="proj-options"))
