"""A decorated function with no agent_name: livekit-agents dispatches it to every new room."""

from livekit.agents import AgentServer, JobContext, cli

server = AgentServer()


@server.rtc_session()
async def greet(ctx: JobContext) -> None:
    await ctx.connect()
    await ctx.room.local_participant.send_text("automatic agent here", topic="greeting")


if __name__ == "__main__":
    cli.run_app(server)
