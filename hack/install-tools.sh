#!/usr/bin/env bash
# Test tools beside the control plane: helm (built from Go modules, cached) and Debian's packages
# below. Idempotent; prints the tools' bin directory on the last line.
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

# Debian packages: promtool and Prometheus (alert-rule and scrape tests), and the local cluster
# rig's node pieces (containerd, runc, CNI plugins, iptables, conntrack) and image builders
# (buildah, mmdebstrap; gcc and libc6-dev for the static pause binary).
declare -A NEEDS=(
  [promtool]=prometheus [containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
  [buildah]=buildah [mmdebstrap]=mmdebstrap [iptables]=iptables [conntrack]=conntrack [gcc]=gcc
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
)
missing=()
for tool in "${!NEEDS[@]}"; do
  if [[ "$tool" == /* ]]; then [ -e "$tool" ] || missing+=("${NEEDS[$tool]}")
  else command -v "$tool" >/dev/null 2>&1 || missing+=("${NEEDS[$tool]}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    echo "install-tools: missing Debian packages: ${missing[*]} (install them as root)" >&2
    exit 1
  fi
fi
echo "$BIN"
