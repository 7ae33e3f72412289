#!/usr/bin/env bash
# Sets everything up (idempotent), then runs the whole test suite. Needs root: the
# end-to-end tests move themselves into a private network namespace (see host/testing/netns.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
