"""livekit-agents' published examples' shape: silero's VAD loaded in prewarm, an AgentSession, and
WorkerOptions under the `__main__` guard. Offline: a local LLM that echoes typed chat stands in for a
cloud model."""

from typing import Any

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    Agent,
    AgentSession,
    APIConnectOptions,
    JobContext,
    JobProcess,
    WorkerOptions,
    cli,
    llm,
    room_io,
)
from livekit.plugins import silero


class EchoLLM(llm.LLM):
    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[Any] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS, **_: Any) -> llm.LLMStream:
        return _Echo(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _Echo(llm.LLMStream):
    async def _run(self) -> None:
        said = next((m.text_content for m in reversed(self.chat_ctx.messages()) if m.role == "user"), "")
        self._event_ch.send_nowait(llm.ChatChunk(id="echo", delta=llm.ChoiceDelta(role="assistant",
                                                                                   content=f"you said: {said}")))


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session = AgentSession(vad=ctx.proc.userdata["vad"], llm=EchoLLM())
    await session.start(agent=Agent(instructions="Echo."), room=ctx.room,
                        room_options=room_io.RoomOptions(audio_output=False))


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, agent_name="proj-published"))
