#!/usr/bin/env bash
# Builds a local Kubernetes (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# and the node's kubelet and kube-proxy) from published Go modules with the machine's Go toolchain, and caches
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
#
# The build happens inside main(), so bash has parsed all of it before it starts: editing this file
# while a 10-minute build runs cannot derail that build.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.35.8}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${CAMPAIGN_CACHE:-$HOME/.cache/campaign-operator}"
ROOT="$CACHE_ROOT/k8s/${K8S_VERSION}-etcd${ETCD_VERSION}"
BIN="$ROOT/bin"
STAMP="$BIN/.stamp"
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
ALL_BINS=(etcd "${K8S_CMDS[@]}")
# k8s.io/kubernetes requires these 31 staging modules at v0.0.0 and replaces them with ./staging/...
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)

log() { echo "build-control-plane: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stamp_text() {
  printf 'k8s=v%s\netcd=v%s\nbinaries=%s\n' "$K8S_VERSION" "$ETCD_VERSION" "${ALL_BINS[*]}"
}

is_fresh() {
  [[ -f "$STAMP" ]] || return 1
  [[ "$(head -n 3 "$STAMP")" == "$(stamp_text)" ]] || return 1
  local b
  for b in "${ALL_BINS[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

find_go() {
  GO="${GO:-}"
  if [[ -z "$GO" ]]; then
    if command -v go >/dev/null 2>&1; then
      GO="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then
      GO=/usr/local/go/bin/go
    else
      die "no Go toolchain found (not on PATH, not at /usr/local/go/bin/go). Install Go >= 1.26, or set" \
        "KUBEBUILDER_ASSETS to a directory holding etcd and kube-apiserver (e.g. envtest's binaries)."
    fi
  fi
  [[ -x "$GO" ]] || die "GO=$GO is not an executable Go toolchain"
  GO_VERSION="$("$GO" env GOVERSION)" # e.g. go1.26.8
  local minor
  minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$GO_VERSION")"
  if ! [[ "$minor" =~ ^[0-9]+$ ]] || ((minor < 26)); then
    die "$GO is $GO_VERSION; etcd v$ETCD_VERSION needs Go >= 1.26 (GOTOOLCHAIN=local: no toolchain download)"
  fi
}

# etcd: go.etcd.io/etcd/server/v3 has replace directives, so `go install pkg@version` refuses it;
# a wrapper module that requires it builds fine (all its own dependencies are tagged modules).
build_etcd() {
  local out="$1" mod="$ROOT/src-etcd"
  rm -rf "$mod" && mkdir -p "$mod"
  cd "$mod"
  "$GO" mod init local/etcdbin 2>/dev/null
  "$GO" get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
  "$GO" build -p 2 -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3 >&2
}

# Kubernetes: the wrapper replaces each staging module with the published k8s.io/<name> v0.<minor>.<patch>.
build_kubernetes() {
  local out="$1" mod="$ROOT/src-k8s" major minor m p kgomod godebug ldflags="-s -w" pkgs=()
  major="${K8S_VERSION%%.*}"
  minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
  for m in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$m"); done
  # Without these the binaries say v0.0.0-master+$Format:%H$ (kubectl warns about skew, kwokctl
  # picks flags by version). buildDate is fixed so that rebuilds are bit-identical.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  rm -rf "$mod" && mkdir -p "$mod"
  cd "$mod"
  "$GO" mod init local/k8sbin 2>/dev/null
  for m in "${STAGING[@]}"; do
    "$GO" mod edit -replace="k8s.io/$m=k8s.io/$m@v0.${K8S_VERSION#*.}"
  done
  # Kubernetes' own `godebug default=...` line is ignored for a dependency; carry it over.
  kgomod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')"
  godebug="$(sed -nE 's/^godebug default=(go[0-9.]+)$/\1/p' "$kgomod")"
  if [[ -n "$godebug" ]]; then "$GO" mod edit -godebug="default=$godebug"; fi
  "$GO" get "k8s.io/kubernetes@v$K8S_VERSION" >&2
  "$GO" build -p 2 -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" >&2
}

main() {
  # 1. KUBEBUILDER_ASSETS wins when it has what the rig needs.
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    if [[ -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]]; then
      log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS (nothing built)"
      echo "$KUBEBUILDER_ASSETS"
      return 0
    fi
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks etcd or kube-apiserver; using the cache instead"
  fi

  # 2. Fast path (no Go needed): the stamped binaries are there.
  if is_fresh; then
    echo "$BIN"
    return 0
  fi

  # 3. Build, one builder at a time: a second caller waits on the lock, then finds the stamp.
  find_go
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"
  mkdir -p "$ROOT"
  exec 9>"$ROOT/.lock"
  log "waiting for the build lock $ROOT/.lock"
  flock 9
  if is_fresh; then
    echo "$BIN"
    return 0
  fi
  log "building etcd v$ETCD_VERSION and Kubernetes v$K8S_VERSION with $GO_VERSION (cold: 10-30 min on 2 cores)"
  local start elapsed stage="$ROOT/bin.tmp"
  start=$(date +%s)
  rm -rf "$stage" && mkdir -p "$stage"
  (build_etcd "$stage")
  log "etcd built after $(($(date +%s) - start))s"
  (build_kubernetes "$stage")
  elapsed=$(($(date +%s) - start))
  "$stage/kube-apiserver" --version >&2
  "$stage/etcd" --version >&2
  { stamp_text; printf 'go=%s\nbuild_seconds=%s\nbuilt=%s\n' "$GO_VERSION" "$elapsed" "$(date -u +%FT%TZ)"; } \
    >"$stage/.stamp"
  rm -rf "$BIN" && mv "$stage" "$BIN"
  log "built in ${elapsed}s into $BIN"
  echo "$BIN"
}

main "$@"
exit $?
