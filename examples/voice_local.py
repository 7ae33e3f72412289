"""A voice agent that runs with no cloud key and no network: silero's VAD, pocketsphinx, flite and a rule
LLM (examples/local_speech.py), in an unchanged livekit-agents AgentSession.

agenthost serves it with `api: livekit-agents` (agents.d/voice-local.yaml); livekit-agents' own server runs it
as it is (`python examples/voice_local.py start`). Try it by voice with `agenthost call voice-local --say
"hello there"`. Install its parts with `pip install 'agenthost[voice]'` and Debian's `flite`.

Turn-taking: the end of the caller's turn is decided by the VAD alone (no end-of-turn model: it would add its
own wait and CPU), after 0.3 s of silence; the endpointing delay (0.2 s, counted from the end of speech) has
passed by then, so the answer is made at once.
"""

from __future__ import annotations

import logging

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, cli, room_io
from livekit.plugins import silero

from examples import local_speech

logger = logging.getLogger("voice-local")

server = AgentServer()


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=0.3)


server.setup_fnc = prewarm


def local_session(proc: JobProcess) -> AgentSession:
    """A session of the local components, with the VAD `prewarm` loaded."""
    vad = proc.userdata["vad"]
    return AgentSession(
        vad=vad, stt=local_speech.PocketSphinxSTT(vad), llm=local_speech.RuleLLM(), tts=local_speech.FliteTTS(),
        turn_handling={"turn_detection": "vad", "endpointing": {"mode": "fixed", "min_delay": 0.2,
                                                                "max_delay": 1.0}})


# the caller's audio as the recogniser takes it (16 kHz), resampled once, where it arrives
ROOM_OPTIONS = room_io.RoomOptions(audio_input=room_io.AudioInputOptions(sample_rate=local_speech.SAMPLE_RATE))


@server.rtc_session(agent_name="voice-local")
async def entrypoint(ctx: JobContext) -> None:
    await local_session(ctx.proc).start(agent=Agent(instructions="Answer a few phrases; repeat the rest."),
                                        room=ctx.room, room_options=ROOM_OPTIONS)


if __name__ == "__main__":
    cli.run_app(server)
