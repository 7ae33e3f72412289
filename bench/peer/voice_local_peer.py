"""The peer in bench/voice_bench.py: examples/voice_local.py's AgentServer, unchanged, served by livekit-agents'
own agent server, with as many prewarmed processes as the agenthost side and no load shedding (the bench
measures how many calls each carries before answers get slow, not where each refuses).

Run from the repository root with a python that has livekit-agents: `python bench/peer/voice_local_peer.py start`.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("LIVEKIT_AGENT_NAME_OVERRIDE", "voice-local-peer")  # read by rtc_session() at import
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from livekit.agents import cli

from examples.voice_local import server

server._num_idle_processes = int(os.environ.get("VOICE_PEER_IDLE", "2"))
server._load_threshold = float("inf")
server._port = 0

if __name__ == "__main__":
    cli.run_app(server)
