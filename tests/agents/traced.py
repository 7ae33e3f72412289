"""Test agent: joins, makes a span of its own with OpenTelemetry's API (no setup: the host's tracing gives the
job a tracer provider), says hello, and waits for the caller to leave."""

from opentelemetry import trace

from host.context import JobContext


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    with trace.get_tracer("traced-agent").start_as_current_span("agent.work"):
        await ctx.room.local_participant.send_text("hello", topic="status")
