#!/usr/bin/env bash
# Sets up a fresh machine for agenthost: a virtualenv with the package and its test tools,
# iproute2 for the test network namespace, and the pinned livekit-server built with `go install`.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,agents]'
if ! command -v ip >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
  else
    echo "setup: the 'ip' command (iproute2) is needed for the end-to-end tests" >&2
  fi
fi
bash scripts/install-livekit-server.sh >/dev/null
