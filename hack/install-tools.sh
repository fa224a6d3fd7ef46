#!/usr/bin/env bash
# Test tools beside the control plane: helm (built from Go modules, cached) and promtool (Debian's
# `prometheus` package). Idempotent; prints the tools' bin directory on the last line.
set -euo pipefail
HELM_VERSION=v3.21.4
CACHE="${CAMPAIGN_CACHE:-$HOME/.cache/campaign-operator}"
BIN="$CACHE/tools/helm-$HELM_VERSION/bin"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [ ! -x "$BIN/helm" ]; then
  [ -x "$GO" ] || { echo "install-tools: Go is needed to build helm (looked for $GO)" >&2; exit 1; }
  echo "install-tools: building helm $HELM_VERSION from Go modules (once; cached in $BIN)" >&2
  mkdir -p "$BIN.tmp"
  GOBIN="$BIN.tmp" CGO_ENABLED=0 "$GO" install -trimpath "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  mv "$BIN.tmp" "$BIN"
fi

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: installing promtool (Debian package prometheus)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
  else
    echo "install-tools: promtool is missing; install Debian's 'prometheus' package" >&2
    exit 1
  fi
fi
echo "$BIN"
