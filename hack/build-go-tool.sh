#!/usr/bin/env bash
# Builds one Go program with `go install MODULE@VERSION` (static, -trimpath) and caches it under
# ${CAMPAIGN_CACHE:-~/.cache/campaign-operator}/go-tools/NAME-VERSION/bin. The local cluster rig
# uses it for CoreDNS, the KubeRay operator and Kueue (pins: hack/versions.env).
#
#   hack/build-go-tool.sh NAME PACKAGE VERSION
#
# stdout: exactly one line, the path of the built binary (progress goes to stderr). A second caller
# waits on the build lock, then finds the binary.
set -euo pipefail

[[ $# -eq 3 ]] || { echo "usage: $0 NAME PACKAGE VERSION" >&2; exit 2; }
NAME="$1" PACKAGE="$2" VERSION="$3"
CACHE_ROOT="${CAMPAIGN_CACHE:-$HOME/.cache/campaign-operator}"
DIR="$CACHE_ROOT/go-tools/$NAME-$VERSION"
BIN="$DIR/bin/$(basename "${PACKAGE%%@*}")"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

main() {
  if [[ -x "$BIN" ]]; then echo "$BIN"; return 0; fi
  [[ -x "$GO" ]] || { echo "build-go-tool: Go is needed to build $NAME (looked for $GO)" >&2; exit 1; }
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
  if [[ -x "$BIN" ]]; then echo "$BIN"; return 0; fi
  echo "build-go-tool: building $NAME $VERSION ($PACKAGE) from Go modules (once; cached in $DIR)" >&2
  local start=$SECONDS
  rm -rf "$DIR/bin.tmp" && mkdir -p "$DIR/bin.tmp"
  GOBIN="$DIR/bin.tmp" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-p=2" \
    "$GO" install -trimpath -ldflags "-s -w" "$PACKAGE@$VERSION" >&2
  rm -rf "$DIR/bin" && mv "$DIR/bin.tmp" "$DIR/bin"
  echo "build-go-tool: $NAME built in $((SECONDS - start))s" >&2
  echo "$BIN"
}

main "$@"
exit $?
