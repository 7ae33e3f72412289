"""The peer in bench/agents_bench.py: examples/voice_agent.py's AgentServer, unchanged, served by
livekit-agents' own agent server (two prewarmed processes, no load shedding, like the agenthost side).

Run from the repository root with a python that has livekit-agents: `python bench/peer/voice_peer.py start`.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("LIVEKIT_AGENT_NAME_OVERRIDE", "voice-peer")  # read by rtc_session() at import
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from livekit.agents import cli

from examples.voice_agent import server

server._num_idle_processes = 2
server._load_threshold = float("inf")
server._port = 0

if __name__ == "__main__":
    cli.run_app(server)
