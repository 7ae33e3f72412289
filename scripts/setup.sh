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
.venv/bin/python -m pip install --quiet -e '.[test,agents,voice,tracing,docs]'
# A wheelhouse of agenthost's declared (core) dependencies and its build backend: the packaging test installs
# the package into a clean virtualenv from it alone, offline (tests reach no index).
wheels="${AGENTHOST_WHEELHOUSE:-$HOME/.cache/agenthost/wheels}"
mkdir -p "$wheels"
.venv/bin/python -m pip wheel --quiet --wheel-dir "$wheels" . hatchling >/dev/null
# Debian packages the tests use: iproute2 (the test network namespace), promtool (the Prometheus rules),
# redis-server (multi-node LiveKit), systemd-analyze (the systemd unit), flite (local speech: the voice
# agent's and `agenthost call`'s voice), tmux (a real terminal for `agenthost top`). None is started as a
# service.
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v flite >/dev/null 2>&1 || missing+=(flite)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    echo "setup: the tests need these Debian packages: ${missing[*]}" >&2
  fi
fi
bash scripts/install-livekit-server.sh >/dev/null
bash scripts/install-jaeger.sh >/dev/null
