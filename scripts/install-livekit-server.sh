#!/usr/bin/env bash
# Builds the pinned open-source livekit-server with `go install` into a cache folder.
# Skips the build when that version is already there. Prints the binary's path on stdout.
set -euo pipefail
version="${LIVEKIT_SERVER_VERSION:-v1.13.5}"
cache="${AGENTHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost}"
dest="$cache/livekit-server/$version"
bin="$dest/server"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "install-livekit-server: go is not installed" >&2; exit 1; }
mkdir -p "$dest"
echo "install-livekit-server: building livekit-server $version (go install) ..." >&2
tmp="$dest.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOBIN="$tmp" go install "github.com/livekit/livekit-server/cmd/server@$version" >&2
mv "$tmp/server" "$bin"
echo "$bin"
