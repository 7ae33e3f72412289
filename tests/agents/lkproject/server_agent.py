"""A livekit-agents project's agent as its authors wrote it: an AgentServer, a prewarm, an explicit name."""

from livekit.agents import AgentServer, JobContext, JobProcess, cli

server = AgentServer(num_idle_processes=1, job_memory_limit_mb=700)


def prewarm(proc: JobProcess) -> None:
    proc.userdata["warm"] = "prewarmed"


server.setup_fnc = prewarm


@server.rtc_session(agent_name="proj-server")
async def session(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text(f"proj-server {ctx.proc.userdata['warm']}", topic="greeting")


if __name__ == "__main__":
    cli.run_app(server)
