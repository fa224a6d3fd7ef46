#!/usr/bin/env bash
# Test tools beside the control plane: helm (built from Go modules, cached), Debian's packages
# below, and Grafana's dashboard schema (npm, cached). Idempotent; prints the tools' bin directory
# (helm's) on the last line, after a `grafana-schema=DIR` line.
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
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev [npm]=npm
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

# Grafana's own dashboard schema for tests/integration/charts/test_dashboard.py: the TypeScript types
# Grafana generates from its CUE schemas (@grafana/schema: the dashboard model and every panel
# plugin's options and field config; @grafana/prometheus: the Prometheus query model, whose types
# are all the test reads, so it is unpacked without its UI dependencies) and the compiler that
# type-checks the chart's dashboard against them. Pinned; installed once into its versioned dir.
GRAFANA_SCHEMA_VERSION=13.2.3
TYPESCRIPT_VERSION=5.9.3
GRAFANA="$CACHE/tools/grafana-schema-$GRAFANA_SCHEMA_VERSION"
if [ ! -e "$GRAFANA/node_modules/typescript/bin/tsc" ]; then
  echo "install-tools: installing @grafana/schema $GRAFANA_SCHEMA_VERSION and typescript $TYPESCRIPT_VERSION (once; cached in $GRAFANA)" >&2
  rm -rf "$GRAFANA.tmp" && mkdir -p "$GRAFANA.tmp"
  npm install --prefix "$GRAFANA.tmp" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
    "@grafana/schema@$GRAFANA_SCHEMA_VERSION" "typescript@$TYPESCRIPT_VERSION" >&2
  mkdir "$GRAFANA.tmp/node_modules/@grafana/prometheus"  # after npm install, which prunes what it did not install
  tarball=$(npm pack --silent --pack-destination "$GRAFANA.tmp" "@grafana/prometheus@$GRAFANA_SCHEMA_VERSION")
  tar -xzf "$GRAFANA.tmp/$tarball" -C "$GRAFANA.tmp/node_modules/@grafana/prometheus" --strip-components=1
  rm "$GRAFANA.tmp/$tarball"
  mv "$GRAFANA.tmp" "$GRAFANA"
fi
echo "grafana-schema=$GRAFANA"
echo "$BIN"
