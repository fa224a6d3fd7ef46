#!/usr/bin/env bash
# The local single-node cluster (tests/rig/cluster.py) for people: `make cluster-up` starts it in
# the background and returns once the node is Ready, KubeRay runs, our images are in its containerd
# and our chart is installed (release `co` in campaign-system); `make cluster-down` stops it and
# leaves the host as it was. Docs: docs/local-cluster.md.
#
#   hack/cluster.sh up [--bare]|down|status      --bare: without our images and chart
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${CAMPAIGN_CACHE:-$HOME/.cache/campaign-operator}"
RIG="$CACHE/rig"
READY="$RIG/ready.json"
LOG="$RIG/serve.log"
PY=.venv/bin/python
export PYTHONPATH=tests

up() {
  if [[ -f "$READY" ]] && kill -0 "$(sed -E 's/.*"pid": ([0-9]+).*/\1/' "$READY")" 2>/dev/null; then
    echo "cluster: already up; export KUBECONFIG=$RIG/admin.kubeconfig" >&2
    return 0
  fi
  mkdir -p "$RIG"
  # setsid: the rig outlives this shell; it tears itself down on SIGTERM (cluster-down).
  setsid "$PY" -m rig.cluster serve "$@" >"$LOG" 2>&1 < /dev/null &
  local pid=$! start=$SECONDS
  echo "cluster: starting (pid $pid, log $LOG; cold: builds CoreDNS, KubeRay and the images first)" >&2
  until [[ -f "$READY" ]]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 60 "$LOG" >&2
      echo "cluster: failed to start; log above ($LOG)" >&2
      return 1
    fi
    sleep 2
  done
  echo "cluster: up in $((SECONDS - start))s" >&2
  echo "export KUBECONFIG=$RIG/admin.kubeconfig"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) "$PY" -m rig.cluster down ;;
  status) [[ -f "$READY" ]] && cat "$READY" || { echo "cluster: down" >&2; exit 1; } ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
