"""The third side of bench/voice_bench.py: the voice-local agent (examples/local_speech.py's components, the same
turn-taking) served by OpenRTC 0.20's AgentPool in process mode (livekit-agents' process per call), with as many
prewarmed processes as the other sides and no load shedding.

OpenRTC builds each call's AgentSession itself, from the pool's providers and the VAD its prewarm loads: that
VAD is given voice-local's silence setting, and the speech-to-text, which runs on a VAD of its own, loads that
VAD in each job process (the providers cross to the job process pickled).

Run from the repository root with a python that has openrtc: `python bench/peer/voice_local_openrtc.py start`.
"""

import functools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from livekit.agents import Agent
from livekit.plugins import silero
from openrtc.core import turn_handling

from examples import local_speech

silero.VAD.load = functools.partial(silero.VAD.load, min_silence_duration=0.3)  # as voice-local's prewarm
# OpenRTC makes its default end-of-turn model (the multilingual turn detector, downloaded from the Hugging Face hub)
# before it applies the turn handling given to it: offline that fails every call, though "vad" is asked for
turn_handling._default_turn_detection = lambda proc, inference_executor=None: None


class LocalSTT(local_speech.PocketSphinxSTT):
    """PocketSphinxSTT whose VAD is loaded where it runs: a VAD does not cross processes."""

    def __init__(self) -> None:
        super().__init__(silero.VAD.load())

    def __reduce__(self):
        return (LocalSTT, ())


class FliteTTS(local_speech.FliteTTS):
    def __reduce__(self):
        return (FliteTTS, ())


class RuleLLM(local_speech.RuleLLM):
    def __reduce__(self):
        return (RuleLLM, ())


class VoiceLocal(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Answer a few phrases; repeat the rest.")


if __name__ == "__main__":
    from openrtc import AgentPool

    pool = AgentPool(isolation="process", agent_name="voice-local-openrtc", enable_introspection=False,
                     max_concurrent_sessions=100)
    pool.add("voice", VoiceLocal, stt=LocalSTT(), llm=RuleLLM(), tts=FliteTTS(),
             turn_handling={"turn_detection": "vad", "endpointing": {"mode": "fixed", "min_delay": 0.2,
                                                                     "max_delay": 1.0}})
    pool.server._num_idle_processes = int(os.environ.get("VOICE_PEER_IDLE", "2"))
    pool.server._load_threshold = float("inf")
    pool.server._port = 0
    pool.run()
