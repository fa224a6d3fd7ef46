#!/usr/bin/env bash
# The local cluster rig's flow on kind, for users with Docker (docs/kind.md): the same KubeRay
# release, the same prometheus-operator CRDs, our two images from our Dockerfiles, our chart installed
# as release `co` in campaign-system with the rig's values file (hack/local-values.yaml), and the
# campaign the rig's demo test proves (tests/cluster/test_campaigns_in_pods.py).
#
#   hack/kind.sh up            cluster (hack/kind.yaml), fake GPUs on the GPU pool, KubeRay from its
#                              Helm chart, prometheus-operator's CRDs, images built and loaded, our chart
#   hack/kind.sh demo          the demo campaign in namespace demo, until Succeeded with the rig's counts
#   hack/kind.sh down          deletes the cluster
#   hack/kind.sh manifest      prints the demo campaign (needs only kubectl, no cluster)
#   hack/kind.sh check-config  hack/kind.yaml through kind's own loader, validation and kubeadm patches
#                              (builds hack/kind-config-check.go against kind's Go module; Go, no Docker)
#
# Every kubectl and helm call names the context kind-$KIND_CLUSTER: no other cluster is touched.
#
# Environment:
#   KIND_CLUSTER     cluster name (default: campaign-operator)
#   KIND_CONFIG      the kind config (default: hack/kind.yaml; e.g. a copy with GPUs mounted, docs/kind.md)
#   KIND_NODE_IMAGE  the nodes' image (default: the kind release's own)
#   KIND_FAKE_GPUS   nvidia.com/gpu the GPU pool's node advertises (default: the rig's 4; 0: none, for
#                    nodes with real GPUs and NVIDIA's device plugin, docs/kind.md)
#   KIND_IMAGES      docker (default): `docker build` of Dockerfile and trainer_image/Dockerfile, then
#                    `kind load docker-image`; archives: hack/build-images.sh's OCI archives, the rig's
#                    very images (buildah on a Debian 12 host), then `kind load image-archive`
#   BASE_IMAGE       docker: the Dockerfiles' base image (default: theirs, Python 3.11 on Debian 12)
#   KUBERAY_VERSION  the KubeRay release (default: the rig's, the first of KUBERAY_VERSIONS in
#                    hack/versions.env)
#   DEMO_TIMEOUT     seconds the demo may take (default: 1500, as the rig's test)
#   DRY_RUN=1        print the commands that would change something, one per line, instead of running
#                    them (tests/integration/test_kind_workflow.py holds them to the rig's)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/versions.env
source hack/versions.env
CACHE="${CAMPAIGN_CACHE:-$HOME/.cache/campaign-operator}"

CLUSTER="${KIND_CLUSTER:-campaign-operator}"
CONTEXT="kind-$CLUSTER"
KIND_VERSION=v0.33.0 # the kind release hack/kind.yaml is checked against (check-config)
KIND_CONFIG="${KIND_CONFIG:-hack/kind.yaml}"
IMAGES_MODE="${KIND_IMAGES:-docker}"
KUBERAY="${KUBERAY_VERSION:-${KUBERAY_VERSIONS%% *}}"
KUBERAY_CHART_REPO=https://ray-project.github.io/kuberay-helm/ # KubeRay's documented Helm repository
KUBERAY_NS=kuberay-system
# The rig's ServiceMonitor/PrometheusRule CRDs (../shared/crds): prometheus-operator 0.93.0's.
PROMETHEUS_OPERATOR_VERSION=v0.93.0
PROMETHEUS_OPERATOR_CRDS=(podmonitors prometheusrules servicemonitors)
# As tests/rig: the release, its namespace (restricted Pod Security), the chart's values file, the
# images' names (hack/build-images.sh: localhost/campaign-NAME:TAG), the GPU pool and its fake GPUs.
RELEASE=co
RELEASE_NS=campaign-system
CHART=charts/campaign-operator
LOCAL_VALUES=hack/local-values.yaml
IMAGE_PREFIX=localhost/campaign-
GPU_POOL_LABEL=campaign-operator.io/pool
GPU_POOL=gpu
GPU_CAPACITY=4
FAKE_GPUS="${KIND_FAKE_GPUS:-$GPU_CAPACITY}"
DEMO_NS=demo
DEMO_TIMEOUT="${DEMO_TIMEOUT:-1500}"
# What the rig's demo test asserts: per phase total/succeeded/failed/skipped ("-": not asserted).
DEMO_COUNTS="smoke:1/1/-/- explore:8/6/1/1 ensemble:4/4/-/-"

DRY="${DRY_RUN:-}"
log() { echo "kind: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
# A command that changes something: printed (shell-quoted, one line) under DRY_RUN, else run.
run() {
  if [[ -n "$DRY" ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}
kc() { kubectl --context "$CONTEXT" "$@"; }
need() {
  local tool missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  ((${#missing[@]} == 0)) || die "missing on PATH: ${missing[*]} (docs/kind.md, Prerequisites)"
}

# ---- up

create_cluster() {
  if [[ -z "$DRY" ]]; then
    local have
    have="$(kind version 2>/dev/null | awk '{print $2}')"
    [[ "$have" == "$KIND_VERSION" ]] || log "kind $have here; hack/kind.yaml is checked against $KIND_VERSION"
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
      log "cluster $CLUSTER exists: reusing it (hack/kind.sh down deletes it)"
      return
    fi
  fi
  run kind create cluster --config "$KIND_CONFIG" --name "$CLUSTER" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} \
    --wait 180s
}

# The GPU pool's nodes (kind names the third node of hack/kind.yaml $CLUSTER-worker2).
gpu_nodes() {
  if [[ -n "$DRY" ]]; then echo "$CLUSTER-worker2"; return; fi
  kc get nodes -l "$GPU_POOL_LABEL=$GPU_POOL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}

# As the rig: nvidia.com/gpu capacity in the node's status (kept across kubelet syncs), so GPU node
# pools schedule; a node that already reports GPUs (a real device plugin) is left alone.
fake_gpus() {
  local node have nodes=()
  if [[ "$FAKE_GPUS" == 0 ]]; then
    log "KIND_FAKE_GPUS=0: no fake GPUs (a device plugin advertises the real ones)"
    return
  fi
  mapfile -t nodes < <(gpu_nodes)
  ((${#nodes[@]})) || die "no node labelled $GPU_POOL_LABEL=$GPU_POOL (is $KIND_CONFIG the config of $CLUSTER?)"
  for node in "${nodes[@]}"; do
    have=""
    [[ -n "$DRY" ]] || have="$(kc get node "$node" -o jsonpath='{.status.capacity.nvidia\.com/gpu}')"
    if [[ -n "$have" ]]; then
      log "$node already advertises nvidia.com/gpu: $have"
      continue
    fi
    run kubectl --context "$CONTEXT" patch node "$node" --subresource=status --type=json \
      -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$FAKE_GPUS\"}]"
  done
}

# KubeRay's operator from its own chart, which installs that release's CRDs (RayCluster, RayJob,
# RayService) as the rig installs them from the release's Go module.
install_kuberay() {
  log "KubeRay $KUBERAY from its Helm chart"
  run helm --kube-context "$CONTEXT" upgrade --install kuberay-operator kuberay-operator \
    --repo "$KUBERAY_CHART_REPO" --version "${KUBERAY#v}" --namespace "$KUBERAY_NS" --create-namespace \
    --wait --timeout 5m
}

install_monitoring_crds() {
  local crd base="https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/$PROMETHEUS_OPERATOR_VERSION/example/prometheus-operator-crd"
  for crd in "${PROMETHEUS_OPERATOR_CRDS[@]}"; do
    run kubectl --context "$CONTEXT" apply --server-side -f "$base/monitoring.coreos.com_$crd.yaml"
  done
  for crd in "${PROMETHEUS_OPERATOR_CRDS[@]}"; do
    run kubectl --context "$CONTEXT" wait --for condition=established --timeout=60s "crd/$crd.monitoring.coreos.com"
  done
}

# The worker nodes (the control plane's NoSchedule taint keeps our pods off it: no copy there).
workers() {
  if [[ -n "$DRY" ]]; then echo "$CLUSTER-worker,$CLUSTER-worker2"; return; fi
  kind get nodes --name "$CLUSTER" | grep -v -- '-control-plane$' | paste -sd, -
}

# Sets OPERATOR_REF and TRAINER_REF: our two images, in every worker's containerd.
declare -A REFS=()
load_images() {
  local name dockerfile iid id ref archive line nodes
  nodes="$(workers)"
  case "$IMAGES_MODE" in
  docker)
    # The tag names the built image (the first 12 hex digits of its id), as the rig's tags name their
    # inputs: a changed source is a new tag, and pull policy Never cannot run a stale image.
    for name in operator trainer; do
      dockerfile=Dockerfile
      [[ "$name" == trainer ]] && dockerfile=trainer_image/Dockerfile
      iid=IIDFILE
      [[ -n "$DRY" ]] || iid="$(mktemp)"
      log "docker build of $dockerfile (the trainer's first build downloads Ray and torch: minutes)"
      run docker build -f "$dockerfile" ${BASE_IMAGE:+--build-arg "BASE_IMAGE=$BASE_IMAGE"} --iidfile "$iid" .
      id=IMAGE_ID ref="$IMAGE_PREFIX$name:dry-run"
      if [[ -z "$DRY" ]]; then
        id="$(cat "$iid")"
        ref="$IMAGE_PREFIX$name:$(cut -c1-12 <<<"${id#sha256:}")"
      fi
      [[ -n "$DRY" ]] || rm -f "$iid"
      run docker tag "$id" "$ref"
      run kind load docker-image --name "$CLUSTER" --nodes "$nodes" "$ref"
      REFS[$name]="$ref"
    done
    ;;
  archives)
    local lines=() built
    if [[ -n "$DRY" ]]; then
      run hack/build-images.sh operator trainer
      lines=("operator ${IMAGE_PREFIX}operator:dry-run ARCHIVE" "trainer ${IMAGE_PREFIX}trainer:dry-run ARCHIVE")
    else
      built="$(hack/build-images.sh operator trainer)" || die "hack/build-images.sh failed (its log is above)"
      mapfile -t lines <<<"$built"
    fi
    for line in "${lines[@]}"; do
      read -r name ref archive <<<"$line"
      run kind load image-archive --name "$CLUSTER" --nodes "$nodes" "$archive"
      REFS[$name]="$ref"
    done
    ;;
  *) die "KIND_IMAGES=$IMAGES_MODE: docker or archives" ;;
  esac
  OPERATOR_REF="${REFS[operator]}" TRAINER_REF="${REFS[trainer]}"
}

# As rig.product.install_operator: the namespace under restricted Pod Security, then our chart with
# the shared values file and the images' refs (upgrade --install: `make kind-up` may run again).
install_chart() {
  if [[ -n "$DRY" ]] || ! kc get namespace "$RELEASE_NS" >/dev/null 2>&1; then
    run kubectl --context "$CONTEXT" create namespace "$RELEASE_NS"
  fi
  run kubectl --context "$CONTEXT" label namespace "$RELEASE_NS" --overwrite \
    pod-security.kubernetes.io/enforce=restricted
  run helm --kube-context "$CONTEXT" upgrade --install "$RELEASE" "$CHART" --namespace "$RELEASE_NS" \
    --values "$LOCAL_VALUES" --set "image.repository=${OPERATOR_REF%:*}" --set "image.tag=${OPERATOR_REF##*:}" \
    --set "trainer.image.repository=${TRAINER_REF%:*}" --set "trainer.image.tag=${TRAINER_REF##*:}" \
    --wait --timeout 5m
}

up() {
  [[ -n "$DRY" ]] || need docker kind kubectl helm
  local start=$SECONDS
  create_cluster
  fake_gpus
  install_kuberay
  install_monitoring_crds
  load_images
  install_chart
  log "up in $((SECONDS - start))s: operator $OPERATOR_REF, trainer $TRAINER_REF; kubectl context $CONTEXT"
  log "next: make kind-demo"
}

# ---- demo

# The campaign of the rig's demo test: examples/demo.yaml sized by rig.product.fit_to_node (half a
# CPU and 2Gi per trial, two at a time, no storage) with 2 epochs per trial.
manifest() {
  kubectl patch --local -f examples/demo.yaml --type=merge -o yaml \
    -p '{"spec":{"maxParallelTrials":2,"storage":null,"template":{"epochs":2,"resources":{"cpu":0.5,"memory":"2Gi"}}}}'
}

demo() {
  need kubectl
  local file state="" last="" deadline=$((SECONDS + DEMO_TIMEOUT))
  file="$(mktemp)"
  manifest >"$file"
  if [[ -n "$DRY" ]] || ! kc get namespace "$DEMO_NS" >/dev/null 2>&1; then
    run kubectl --context "$CONTEXT" create namespace "$DEMO_NS"
  fi
  run kubectl --context "$CONTEXT" label namespace "$DEMO_NS" --overwrite pod-security.kubernetes.io/enforce=restricted
  # A fresh run each time, as the rig's test gets: a finished campaign would be Succeeded at once.
  run kubectl --context "$CONTEXT" delete trainingcampaign demo -n "$DEMO_NS" --ignore-not-found --wait=true
  run kubectl --context "$CONTEXT" apply -n "$DEMO_NS" -f "$file"
  rm -f "$file"
  [[ -z "$DRY" ]] || return 0
  log "waiting for campaign demo (up to ${DEMO_TIMEOUT}s; kubectl --context $CONTEXT get campaign-operator,rayjobs,pods -n $DEMO_NS)"
  while :; do
    state="$(kc get trainingcampaign demo -n "$DEMO_NS" -o jsonpath='{.status.state} {.status.currentPhase} {.status.progress}')" ||
      state="(not readable just now)"
    [[ "$state" == "$last" ]] || log "demo: $state"
    last="$state"
    case "$state" in
    Succeeded*) break ;;
    Failed*) die "demo Failed: $(kc get trainingcampaign demo -n "$DEMO_NS" -o jsonpath='{.status.message}')" ;;
    esac
    ((SECONDS < deadline)) || die "demo not done after ${DEMO_TIMEOUT}s: kubectl --context $CONTEXT describe trainingcampaign demo -n $DEMO_NS"
    sleep 5
  done
  check_counts
}

check_counts() {
  local want name total ok failed skipped got field i bad=0 gate
  declare -A have=()
  while IFS=/ read -r name total ok failed skipped; do
    [[ -n "$name" ]] && have[$name]="${total:-0}/${ok:-0}/${failed:-0}/${skipped:-0}"
  done < <(kc get trainingcampaign demo -n "$DEMO_NS" -o jsonpath='{range .status.phases[*]}{.name}/{.counts.total}/{.counts.succeeded}/{.counts.failed}/{.counts.skipped}{"\n"}{end}')
  for want in $DEMO_COUNTS; do
    name="${want%%:*}"
    IFS=/ read -ra field <<<"${want#*:}"
    IFS=/ read -ra got <<<"${have[$name]:-?/?/?/?}"
    for i in 0 1 2 3; do
      [[ "${field[$i]}" == - || "${field[$i]}" == "${got[$i]}" ]] || bad=1
    done
    log "demo: $name total/succeeded/failed/skipped ${have[$name]:-missing} (the rig's test: ${want#*:})"
  done
  gate="$(kc get trainingcampaign demo -n "$DEMO_NS" -o jsonpath='{.status.phases[?(@.name=="explore")].gate.passed}')"
  [[ "$gate" == true ]] || { log "demo: explore's gate did not pass ($gate)"; bad=1; }
  ((bad == 0)) || die "demo Succeeded with other counts than the rig's demo test asserts"
  log "demo: Succeeded with the counts the rig's demo test asserts"
}

# ---- check-config

# kind's config code is internal to its module: the checker is built inside a scratch copy of the
# module (downloaded through the Go module proxy the environment configures) and cached by version
# and source. ~10 s cold.
check_config() {
  local go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}" key dir bin mod
  [[ -x "$go" ]] || die "Go is needed to build the kind config check (looked for $go)"
  key="$(sha256sum hack/kind-config-check.go | cut -c1-12)"
  dir="$CACHE/go-tools/kind-config-check-$KIND_VERSION-$key"
  bin="$dir/bin/kind-config-check"
  if [[ ! -x "$bin" ]]; then
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock 9
    if [[ ! -x "$bin" ]]; then
      mod="$(cd "${TMPDIR:-/tmp}" && GOTOOLCHAIN=local "$go" mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
      [[ -n "$mod" && -d "$mod" ]] || die "go mod download sigs.k8s.io/kind@$KIND_VERSION failed"
      rm -rf "$dir/src" "$dir/bin.tmp"
      cp -r "$mod" "$dir/src"
      chmod -R u+w "$dir/src"
      mkdir -p "$dir/src/pkg/cluster/campaignconfigcheck"
      cp hack/kind-config-check.go "$dir/src/pkg/cluster/campaignconfigcheck/main.go"
      (cd "$dir/src" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod \
        "$go" build -trimpath -o "$dir/bin.tmp/kind-config-check" ./pkg/cluster/campaignconfigcheck) >&2
      rm -rf "${dir:?}/bin" "$dir/src" && mv "$dir/bin.tmp" "$dir/bin"
    fi
    exec 9>&-
  fi
  "$bin" "$KIND_CONFIG" "$CLUSTER" "$@"
}

case "${1:-}" in
up) up ;;
demo) demo ;;
down) if [[ -n "$DRY" ]]; then run kind delete cluster --name "$CLUSTER"; else need kind && kind delete cluster --name "$CLUSTER"; fi ;;
manifest) manifest ;;
check-config) shift && check_config "$@" ;;
*)
  echo "usage: $0 up|demo|down|manifest|check-config [KUBERNETES_VERSION]" >&2
  exit 2
  ;;
esac
