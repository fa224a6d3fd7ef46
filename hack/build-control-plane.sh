#!/usr/bin/env bash
# Builds a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) from published Go modules with the machine's Go toolchain, and caches
# the binaries outside the repo. See docs/control-plane.md for the recipe and the gotchas.
#
# stdout: exactly one line, the directory holding the binaries (progress goes to stderr).
#
# Environment:
#   KUBEBUILDER_ASSETS  if it holds etcd and kube-apiserver, it is used as is and nothing is built
#   CAMPAIGN_CACHE      cache root (default: $HOME/.cache/campaign-operator)
#   K8S_VERSION         Kubernetes version (default below)
#   ETCD_VERSION        etcd version (default below)
#   GO                  the go binary (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.35.8}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${CAMPAIGN_CACHE:-$HOME/.cache/campaign-operator}"
ROOT="$CACHE_ROOT/k8s/${K8S_VERSION}-etcd${ETCD_VERSION}"
BIN="$ROOT/bin"
STAMP="$BIN/.stamp"
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ALL_BINS=(etcd "${K8S_CMDS[@]}")

log() { echo "build-control-plane: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# 1. KUBEBUILDER_ASSETS wins when it has what the rig needs.
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if [[ -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]]; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS (nothing built)"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks etcd or kube-apiserver; using the cache instead"
fi

stamp_text() {
  printf 'k8s=v%s\netcd=v%s\nbinaries=%s\n' "$K8S_VERSION" "$ETCD_VERSION" "${ALL_BINS[*]}"
}

is_fresh() {
  [[ -f "$STAMP" ]] || return 1
  [[ "$(head -n 3 "$STAMP")" == "$(stamp_text)" ]] || return 1
  local b
  for b in "${ALL_BINS[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

# 2. Fast path: stamped binaries are there.
if is_fresh; then
  echo "$BIN"
  exit 0
fi

# 3. Find Go.
GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then
    GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
  else
    die "no Go toolchain found (not on PATH, not at /usr/local/go/bin/go). Install Go >= 1.26, or set
KUBEBUILDER_ASSETS to a directory holding etcd and kube-apiserver (e.g. envtest's binaries)."
  fi
fi
GO_VERSION="$("$GO" env GOVERSION)"   # e.g. go1.26.8
go_minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$GO_VERSION")"
if ! [[ "$go_minor" =~ ^[0-9]+$ ]] || (( go_minor < 26 )); then
  die "$GO is $GO_VERSION; etcd v$ETCD_VERSION needs Go >= 1.26 (GOTOOLCHAIN=local: no toolchain download)"
fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"

mkdir -p "$ROOT"
# One builder at a time; a second caller waits, then finds the stamp.
exec 9>"$ROOT/.lock"
log "waiting for the build lock $ROOT/.lock" && flock 9
if is_fresh; then
  echo "$BIN"
  exit 0
fi

log "building etcd v$ETCD_VERSION and Kubernetes v$K8S_VERSION with $GO_VERSION (cold: 10-30 min on 2 cores)"
start=$(date +%s)
STAGE="$ROOT/bin.tmp"
rm -rf "$STAGE" && mkdir -p "$STAGE"

# 3a. etcd: go.etcd.io/etcd/server/v3 has replace directives, so `go install pkg@v` refuses it;
#     a wrapper module that requires it builds fine (its own deps are all tagged modules).
ETCD_MOD="$ROOT/src-etcd"
rm -rf "$ETCD_MOD" && mkdir -p "$ETCD_MOD"
(
  cd "$ETCD_MOD"
  "$GO" mod init local/etcdbin >/dev/null 2>&1
  "$GO" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  "$GO" build -p 2 -trimpath -ldflags "-s -w" -o "$STAGE/etcd" go.etcd.io/etcd/server/v3 >&2
)
log "etcd built after $(( $(date +%s) - start ))s"

# 3b. Kubernetes: k8s.io/kubernetes requires its 31 staging modules at v0.0.0 and replaces them with
#     ./staging/...; the wrapper replaces each with the published k8s.io/<name> v0.<minor>.<patch>.
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)
K8S_MOD="$ROOT/src-k8s"
rm -rf "$K8S_MOD" && mkdir -p "$K8S_MOD"
major="${K8S_VERSION%%.*}"
minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
pkgs=()
for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
(
  cd "$K8S_MOD"
  "$GO" mod init local/k8sbin >/dev/null 2>&1
  for m in "${STAGING[@]}"; do
    "$GO" mod edit -replace="k8s.io/$m=k8s.io/$m@v0.${K8S_VERSION#*.}"
  done
  # Kubernetes' own `godebug default=...` is ignored for a dependency; match it here.
  kgomod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')"
  godebug="$(sed -nE 's/^godebug default=(go[0-9.]+)$/\1/p' "$kgomod")"
  [[ -n "$godebug" ]] && "$GO" mod edit -godebug="default=$godebug"
  "$GO" get "k8s.io/kubernetes@v$K8S_VERSION" >&2
  "$GO" build -p 2 -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$STAGE/" "${pkgs[@]}" >&2
)
elapsed=$(( $(date +%s) - start ))

"$STAGE/kube-apiserver" --version >&2
"$STAGE/etcd" --version >&2
{ stamp_text; printf 'go=%s\nbuild_seconds=%s\nbuilt=%s\n' "$GO_VERSION" "$elapsed" "$(date -u +%FT%TZ)"; } \
  >"$STAGE/.stamp"
rm -rf "$BIN" && mv "$STAGE" "$BIN"
log "built in ${elapsed}s into $BIN"
echo "$BIN"
