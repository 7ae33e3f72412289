"""Test agent: joins, makes 500 spans of its own at once (more than a small export queue holds), and says done."""

from opentelemetry import trace

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    tracer = trace.get_tracer("spanner-agent")
    for n in range(500):
        with tracer.start_as_current_span(f"work-{n}"):
            pass
    await ctx.room.local_participant.send_text("done", topic="status")
