#!/usr/bin/env bash
# Prints the directory of one KubeRay release's own CRDs (RayCluster, RayJob, RayService), as the
# release ships them in its Go module: `go mod download` fetches the module into the Go module cache
# (through the proxy the environment configures) and nothing else is kept.
#
#   hack/kuberay-crds.sh VERSION        # e.g. v1.5.0; supported releases: KUBERAY_VERSIONS in versions.env
#
# stdout: exactly one line, the directory (progress and errors go to stderr).
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 VERSION" >&2; exit 2; }
VERSION="$1"
MODULE=github.com/ray-project/kuberay/ray-operator
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || { echo "kuberay-crds: Go is needed to download $MODULE (looked for $GO)" >&2; exit 1; }

# Outside any module, so a go.mod in the caller's directory cannot pin or rewrite the download.
cd "${TMPDIR:-/tmp}"
INFO="$(GOTOOLCHAIN=local "$GO" mod download -json "$MODULE@$VERSION")" || {
  echo "kuberay-crds: go mod download $MODULE@$VERSION failed:" >&2
  echo "$INFO" >&2
  exit 1
}
DIR="$(printf '%s\n' "$INFO" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
CRDS="$DIR/config/crd/bases"
[[ -n "$DIR" && -f "$CRDS/ray.io_rayjobs.yaml" ]] || {
  echo "kuberay-crds: no CRDs in $MODULE@$VERSION (looked in '$CRDS')" >&2
  exit 1
}
echo "$CRDS"
