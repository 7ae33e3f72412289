#!/usr/bin/env bash
# The peer for bench/job_bench.py: livekit-agents' own agent server, in a venv of its own
# (its pins on the livekit SDK need not match ours). Idempotent; prints the venv's python.
set -euo pipefail
VERSION="${LIVEKIT_AGENTS_VERSION:-1.8.9}"
VENV="${AGENTHOST_PEER_VENV:-$HOME/.cache/agenthost/peer-venv-$VERSION}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import livekit.agents" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "livekit-agents==$VERSION" psutil >&2
fi
echo "$VENV/bin/python"
