#!/usr/bin/env bash
# Builds the pinned Jaeger (the all-in-one `jaeger` binary: OTLP in, query API and UI out) from source into
# a cache folder, for the tracing tests. Skips the build when that version is already there. Prints the
# binary's path on stdout. Jaeger's module has replace directives, so it is built as a tool of a scratch
# module rather than with `go install pkg@version`.
set -euo pipefail
version="${JAEGER_VERSION:-v1.75.0}"
cache="${AGENTHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost}"
dest="$cache/jaeger/$version"
bin="$dest/jaeger"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || { echo "install-jaeger: go is not installed" >&2; exit 1; }
mkdir -p "$dest"
echo "install-jaeger: building jaeger $version (go build) ..." >&2
tmp="$dest.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  go mod init agenthost.local/jaeger-build >/dev/null 2>&1
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >&2
  CGO_ENABLED=0 go build -o "$tmp/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger >&2
)
mv "$tmp/jaeger" "$bin"
echo "$bin"
