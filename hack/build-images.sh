#!/usr/bin/env bash
# Builds the local cluster's container images without a Docker engine: a Debian 12 base (mmdebstrap),
# the operator and trainer images from their Dockerfiles (buildah), and the pod sandboxes' pause image.
#
#   hack/build-images.sh [base|operator|trainer|pause|all]...   default: all = operator trainer pause
#   hack/build-images.sh run NAME [CMD...]   CMD in a throwaway container of image NAME, as its user
#
# stdout: one line per image, "NAME REF ARCHIVE" (progress goes to stderr), e.g.
#   trainer localhost/campaign-trainer:3f1c0a9b7d2e /root/.cache/campaign-operator/images/trainer-3f1c0a9b7d2e.oci.tar
# `ctr -n k8s.io images import ARCHIVE` names the image REF; pods run REF with imagePullPolicy Never
# or IfNotPresent. The pause image's REF is always localhost/campaign-pause:3.10 (containerd's
# sandbox_image names it); the other tags are the first 12 hex digits of a hash of everything that
# goes into the image: its Dockerfile, lock files, .dockerignore, pyproject.toml, README.md, both
# packages' sources and the base image's id. When the ARCHIVE of that hash exists, nothing is built.
#
# buildah keeps its own storage in $CACHE/buildah (overlay driver; never the host's /var/lib/containers)
# and builds with --layers, so a changed source file rebuilds only the code layers, and with
# --network=host, so no CNI or netavark chains are created. The newest $KEEP_ARCHIVES archives of each image are kept;
# `rm -rf $CACHE/buildah` drops the layer cache (old dependency layers pile up there).
#
# Environment:
#   CAMPAIGN_CACHE  cache root (default: $HOME/.cache/campaign-operator)
#   BUILDAH_DRIVER  buildah's storage driver (default: overlay; vfs where overlay mounts are refused)
#   UV_CACHE_DIR    the host's uv cache (default: ~/.cache/uv), overlaid on the builds with their
#                   writes dropped: wheels the host already has (torch, CUDA) are not downloaded again
#   PIP_*, UV_*     the host's index settings (and pip.conf's), like the host's CA bundle, reach the
#                   builds as build secrets: never in a layer, the image history or a file here
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CAMPAIGN_CACHE:-$HOME/.cache/campaign-operator}"
IMAGES="$CACHE/images"
STORE="$CACHE/buildah"
DRIVER="${BUILDAH_DRIVER:-overlay}"
HOST_UV_CACHE="${UV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/uv}"
HOST_CA="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
KEEP_ARCHIVES=2

# The base: Debian 12 minbase with Debian's Python 3.11 and what the pods need (KubeRay starts them
# with `bash -lc` and probes them with wget; ps; useradd; libgomp1: LightGBM's wheel links the
# system's OpenMP runtime, which torch's wheel does not provide under that name). No docs but
# copyrights, no man pages, no locales; mmdebstrap drops apt's lists and caches itself.
BASE_SUITE=bookworm
BASE_PACKAGES=(python3 python3.11 python3-venv python3.11-venv bash wget ca-certificates procps passwd adduser
  libgomp1)
BASE_MMDEBSTRAP=(--variant=minbase --format=tar
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  # The host's mirror and apt options stay on the host.
  --customize-hook='rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/* "$1"/etc/apt/apt.conf.d/99mmdebstrap'
  --customize-hook='rm -rf "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old')
BASE_CONFIG=(--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8
  --cmd /bin/bash)

PAUSE_REF=localhost/campaign-pause:3.10
PAUSE_CFLAGS=(-static -Os -s -Wall -Wextra -Werror)
PAUSE_CONFIG=(--entrypoint '["/pause"]' --user 65535:65535)

# Inputs of the operator and trainer images besides their Dockerfile and lock file.
APP_INPUTS=(.dockerignore hack/images/build.lock pyproject.toml README.md
  operator/campaign_operator trainer_image/campaign_trainer examples/data)

log() { echo "build-images: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
# buildah on our storage, in a mount namespace of its own over a scratch /var/lib (commit and push
# keep a blob-info cache in /var/lib/containers whatever --root says; the host's stays untouched).
# TMPDIR: where it stages archives and keeps the RUN --mount=type=cache directories.
bah() {
  TMPDIR="$STORE/tmp" unshare --mount -- sh -c 'mount -t tmpfs -o mode=0755 campaign-buildah /var/lib && exec "$@"' \
    sh buildah --root "$STORE/root" --runroot "$STORE/runroot" --storage-driver "$DRIVER" "$@"
}

WORK=""       # this run's scratch directory
CONTAINERS=() # this run's working containers
cleanup() {
  local c
  for c in "${CONTAINERS[@]}"; do bah rm "$c" >/dev/null 2>&1 || true; done
  if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi
}

# "sha256  path" for every file under PATHs (relative to the repo, bytecode excluded), in a stable order.
files_listing() {
  (cd "$REPO" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum)
}
hash12() { sha256sum | cut -c1-12; }
has_image() { bah inspect --type image "$1" >/dev/null 2>&1; }
image_id() { bah inspect --type image --format '{{.FromImageID}}' "$1"; }

# Writes REF to ARCHIVE through a temporary name, so a half-written archive never counts as built.
save() {
  local name="$1" ref="$2" archive="$3" start=$SECONDS
  rm -f "$archive.tmp"
  bah push --quiet "$ref" "oci-archive:$archive.tmp:$ref" >&2
  mv "$archive.tmp" "$archive"
  log "$ref saved to $archive ($(du -h "$archive" | cut -f1), $((SECONDS - start))s)"
  # shellcheck disable=SC2012 # names are ours: no spaces or newlines
  ls -1t "$IMAGES/$name"-*.oci.tar | tail -n +$((KEEP_ARCHIVES + 1)) | xargs -r rm -f
}

# Puts REF into buildah's storage from ARCHIVE (storage was reset, the archive survived).
load() {
  local ref="$1" archive="$2" id
  id="$(bah pull --quiet "oci-archive:$archive")"
  bah tag "$id" "$ref"
}

# The host's apt source files for $BASE_SUITE: mmdebstrap pastes them into the chroot (and the hook
# removes them again), so the mirror is read from the host's configuration, never written down here.
host_apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    if [[ -f "$f" ]] && grep -qE "^[^#]*\\b$BASE_SUITE\\b" "$f"; then echo "$f"; fi
  done
}

# apt options the host's mirror needs (a snapshot's old Release files, a proxy), one per line.
host_apt_options() {
  apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy)' || true
}

build_base() {
  local ref="$1" c sources=() aptopts=()
  mapfile -t sources < <(host_apt_sources)
  ((${#sources[@]})) || die "no $BASE_SUITE sources in /etc/apt/sources.list*: the base needs the host's mirror"
  mapfile -t aptopts < <(host_apt_options)
  log "building $ref: mmdebstrap $BASE_SUITE minbase + ${BASE_PACKAGES[*]}"
  mmdebstrap "${BASE_MMDEBSTRAP[@]}" "${aptopts[@]/#/--aptopt=}" \
    --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" "$BASE_SUITE" "$WORK/rootfs.tar" "${sources[@]}" >&2
  c="$(bah from scratch)"
  CONTAINERS+=("$c")
  bah add "$c" "$WORK/rootfs.tar" / >&2
  bah config "${BASE_CONFIG[@]}" "$c"
  bah commit --quiet "$c" "$ref" >/dev/null
}

# Sets REF and ARCHIVE of the base, building or loading it into buildah's storage when missing.
ensure_base() {
  local tag
  tag="$(printf '%s\n' "$BASE_SUITE" "${BASE_PACKAGES[@]}" "${BASE_MMDEBSTRAP[@]}" "${BASE_CONFIG[@]}" | hash12)"
  REF="localhost/campaign-base:$tag" ARCHIVE="$IMAGES/base-$tag.oci.tar"
  if [[ -f "$ARCHIVE" ]]; then
    has_image "$REF" || load "$REF" "$ARCHIVE"
  else
    has_image "$REF" || build_base "$REF"
    save base "$REF" "$ARCHIVE"
  fi
}

build_pause() {
  local c
  log "building $PAUSE_REF from hack/images/pause.c"
  gcc "${PAUSE_CFLAGS[@]}" -o "$WORK/pause" "$REPO/hack/images/pause.c"
  c="$(bah from scratch)"
  CONTAINERS+=("$c")
  bah copy --chmod 0755 "$c" "$WORK/pause" /pause >/dev/null
  bah config "${PAUSE_CONFIG[@]}" "$c"
  bah commit --quiet "$c" "$PAUSE_REF" >/dev/null
}

ensure_pause() {
  local tag
  tag="$({ files_listing hack/images/pause.c; printf '%s\n' "${PAUSE_CFLAGS[@]}" "${PAUSE_CONFIG[@]}"
    gcc --version | head -n 1; } | hash12)"
  REF="$PAUSE_REF" ARCHIVE="$IMAGES/pause-$tag.oci.tar"
  if [[ ! -f "$ARCHIVE" ]]; then
    build_pause
    save pause "$REF" "$ARCHIVE"
  fi
}

# A pip setting: the environment's PIP_NAME, else pip.conf's global/install value of name.
PIP_CONFIG=""
pip_setting() {
  local key
  if [[ -n "${!1:-}" ]]; then echo "${!1}" && return; fi
  key="$(tr 'A-Z_' 'a-z-' <<<"${1#PIP_}")"
  sed -nE "s/^(global|install)\\.$key='(.*)'\$/\\2/p" <<<"$PIP_CONFIG" | head -n 1
}

# What a build gets from the host: BUILD_ENV, the build-env secret (sh lines, sourced by the RUN
# steps that install), and BUILD_ARGS, buildah's arguments for the mounts and secrets it names.
BUILD_ENV=""
BUILD_ARGS=()
export_to_build() { BUILD_ENV+="export $1='${2//\'/\'\\\'\'}'"$'\n'; }

# The host's index settings for pip and uv (uv reads neither pip's variables nor pip.conf, so pip's
# index reaches uv as well), its CA bundle, its local find-links directories and its uv cache.
collect_build_env() {
  local name value entries=() links=() dir n=0
  PIP_CONFIG="$(python3 -m pip config list 2>/dev/null || true)"
  BUILD_ENV="# the host's settings for pip and uv"$'\n'
  BUILD_ARGS=()
  for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT; do
    value="$(pip_setting "$name")"
    if [[ -n "$value" ]]; then export_to_build "$name" "$value"; fi
  done
  for name in UV_DEFAULT_INDEX UV_INDEX UV_INDEX_URL UV_EXTRA_INDEX_URL UV_INSECURE_HOST UV_HTTP_TIMEOUT; do
    if [[ -n "${!name:-}" ]]; then export_to_build "$name" "${!name}"; fi
  done
  if [[ -z "${UV_DEFAULT_INDEX:-}${UV_INDEX_URL:-}" && -n "$(pip_setting PIP_INDEX_URL)" ]]; then
    export_to_build UV_DEFAULT_INDEX "$(pip_setting PIP_INDEX_URL)"
  fi
  if [[ -z "${UV_INDEX:-}${UV_EXTRA_INDEX_URL:-}" && -n "$(pip_setting PIP_EXTRA_INDEX_URL)" ]]; then
    export_to_build UV_INDEX "$(pip_setting PIP_EXTRA_INDEX_URL)"
  fi
  if [[ -z "${UV_INSECURE_HOST:-}" && -n "$(pip_setting PIP_TRUSTED_HOST)" ]]; then
    export_to_build UV_INSECURE_HOST "$(pip_setting PIP_TRUSTED_HOST)"
  fi
  read -ra entries <<<"$(pip_setting PIP_FIND_LINKS)"
  for dir in "${entries[@]}"; do
    if [[ "$dir" == *://* ]]; then
      links+=("$dir")
    elif [[ -d "$dir" ]]; then # a local directory: mounted read-only
      links+=("/run/host-find-links/$n")
      BUILD_ARGS+=(-v "$dir:/run/host-find-links/$n:ro")
      n=$((n + 1))
    fi
  done
  if ((${#links[@]})); then
    export_to_build PIP_FIND_LINKS "${links[*]}"
    export_to_build UV_FIND_LINKS "$(IFS=,; echo "${links[*]}")"
  fi
  if [[ -f "$HOST_CA" ]]; then
    BUILD_ARGS+=(--secret "id=host-ca,src=$HOST_CA")
    export_to_build PIP_CERT /run/secrets/host-ca
    export_to_build SSL_CERT_FILE /run/secrets/host-ca
  fi
  if [[ -d "$HOST_UV_CACHE" ]]; then # :O = an overlay: the build's writes never reach the host's cache
    BUILD_ARGS+=(-v "$HOST_UV_CACHE:/run/host-uv-cache:O")
    export_to_build UV_CACHE_DIR /run/host-uv-cache
  fi
}

build_app() {
  local ref="$1" dockerfile="$2" base_ref="$3"
  collect_build_env
  log "building $ref from $dockerfile on $base_ref"
  CAMPAIGN_BUILD_ENV="$BUILD_ENV" bah bud --layers --force-rm --pull-never --network=host \
    --secret id=build-env,env=CAMPAIGN_BUILD_ENV "${BUILD_ARGS[@]}" \
    --build-arg BASE_IMAGE="$base_ref" -f "$REPO/$dockerfile" -t "$ref" "$REPO" >&2
}

ensure_app() {
  local name="$1" dockerfile="$2" lock="$3" base_ref tag
  ensure_base
  base_ref="$REF"
  tag="$({ files_listing "$dockerfile" "$lock" "${APP_INPUTS[@]}"; echo "base $(image_id "$base_ref")"; } | hash12)"
  REF="localhost/campaign-$name:$tag" ARCHIVE="$IMAGES/$name-$tag.oci.tar"
  if [[ ! -f "$ARCHIVE" ]]; then
    build_app "$REF" "$dockerfile" "$base_ref"
    save "$name" "$REF" "$ARCHIVE"
  fi
}

# Sets REF and ARCHIVE of image NAME, building whatever is missing.
ensure() {
  local start=$SECONDS
  case "$1" in
  base) ensure_base ;;
  pause) ensure_pause ;;
  operator) ensure_app operator Dockerfile requirements/operator.lock ;;
  trainer) ensure_app trainer trainer_image/Dockerfile requirements/trainer.lock ;;
  *) die "unknown image '$1' (base, operator, trainer, pause or all)" ;;
  esac
  log "$1: $REF ready after $((SECONDS - start))s"
}

# CMD in a throwaway container of image NAME, with the image's user and environment, and a network
# of its own with only loopback (no chains, no clash with the host's ports). Builds may go on meanwhile.
run_in() {
  local name="$1" c
  shift
  ensure "$name"
  has_image "$REF" || load "$REF" "$ARCHIVE"
  c="$(bah from --pull-never --quiet "$REF")"
  CONTAINERS+=("$c")
  exec 9>&-
  bah run --network=none "$c" -- "$@"
}

main() {
  local names=() name
  mkdir -p "$IMAGES" "$STORE/tmp"
  # One build at a time: a second caller waits, then finds the archives.
  exec 9>"$STORE/.lock"
  flock 9
  # What a killed run left behind (a push stages whole layers in buildah's TMPDIR); the cache mounts stay.
  find "$STORE/tmp" -mindepth 1 -maxdepth 1 ! -name buildah-cache -exec rm -rf {} +
  rm -rf "$IMAGES"/*.tmp "$CACHE"/build-images.*
  WORK="$(mktemp -d "$CACHE/build-images.XXXXXX")"
  trap cleanup EXIT
  if [[ "${1:-}" == run ]]; then
    (($# >= 3)) || die "usage: $0 run NAME CMD..."
    shift
    run_in "$@"
    return
  fi
  for name in "${@:-all}"; do
    if [[ "$name" == all ]]; then names+=(operator trainer pause); else names+=("$name"); fi
  done
  for name in "${names[@]}"; do
    ensure "$name"
    echo "$name $REF $ARCHIVE"
  done
}

main "$@"
exit $?
