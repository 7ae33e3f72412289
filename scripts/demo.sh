#!/usr/bin/env bash
# Sets everything up, then runs `agenthost run` on agents.d against a local livekit-server
# and shows one job end to end: a client joins, hello-world is dispatched, the text arrives.
# Runs inside a private network namespace (root), so nothing leaves this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec unshare --net .venv/bin/python scripts/demo.py
