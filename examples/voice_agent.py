"""A livekit-agents voice agent, exactly as it would run under livekit-agents' own server: agenthost serves
it unchanged with `api: livekit-agents` (agents.d/voice.yaml names the AgentServer,
agents.d/voice-function.yaml the function and its prewarm).

The production configuration is the usual plugin set, loaded once per process in prewarm:

    from livekit.plugins import deepgram, openai, cartesia, silero

    def prewarm(proc: JobProcess) -> None:
        proc.userdata["vad"] = silero.VAD.load()

    session = AgentSession(vad=ctx.proc.userdata["vad"], stt=deepgram.STT(), llm=openai.LLM(),
                           tts=cartesia.TTS())

To run with no provider and no network, this example answers typed chat (text sent on `lk.chat`, the
answer on `lk.transcription`) with a local LLM that echoes, with audio input and output off.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    Agent,
    AgentServer,
    AgentSession,
    APIConnectOptions,
    JobContext,
    JobProcess,
    get_job_context,
    llm,
    room_io,
)

logger = logging.getLogger("voice-agent")

server = AgentServer()


class EchoLLM(llm.LLM):
    """A local LLM that answers with what the user said, and with facts that show where it runs."""

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[Any] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS, **_: Any) -> llm.LLMStream:
        return _EchoStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _EchoStream(llm.LLMStream):
    async def _run(self) -> None:
        said = next((m.text_content for m in reversed(self.chat_ctx.messages()) if m.role == "user"), "")
        ctx = get_job_context()  # the job's context, as livekit-agents' plugins find it
        user = json.loads(ctx.job.metadata or "{}").get("user", "someone")
        answer = f"{ctx.proc.userdata['prefix']} {user} said: {said} (job {ctx.job.id})"
        self._event_ch.send_nowait(llm.ChatChunk(id="echo", delta=llm.ChoiceDelta(role="assistant",
                                                                                   content=answer)))


def prewarm(proc: JobProcess) -> None:
    proc.userdata["prefix"] = "echo:"  # production: proc.userdata["vad"] = silero.VAD.load()


server.setup_fnc = prewarm


@server.rtc_session(agent_name="voice")
async def entrypoint(ctx: JobContext) -> None:
    async def log_end(reason: str) -> None:
        logger.info("voice job over: %s", reason)

    ctx.add_shutdown_callback(log_end)
    session = AgentSession(llm=EchoLLM())
    await session.start(agent=Agent(instructions="Repeat what the user says."), room=ctx.room,
                        room_options=room_io.RoomOptions(audio_input=False, audio_output=False))
