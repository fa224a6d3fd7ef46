# Two commands matter on a fresh machine: `make demo` and `make test`.
# Everything else here is what those two stand on.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY := .venv/bin/python
CACHE ?= $(HOME)/.cache/campaign-operator
PYTEST_ARGS ?=

.PHONY: tools setup lock uv test unit lint typecheck crds krew demo plan-demo bench bench-operator clean cluster-binaries cluster-up cluster-down bench-cluster images kind-up kind-demo kind-down

uv:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv

# Installs the locked environment: exact versions and hashes from requirements/dev.lock (no resolution),
# then this project itself (editable). `make lock` re-resolves after a pyproject.toml change.
VENV_BIN := .venv/bin
setup: uv .venv/.synced
.venv/.synced: pyproject.toml requirements/dev.lock
	@test -x $(PY) || $(UV) venv --quiet --python 3.11 .venv
	$(UV) pip sync --quiet --python $(PY) requirements/dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $@

LOCK := $(UV) pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--generate-hashes --no-header --no-annotate --quiet
lock: uv
	$(LOCK) --all-extras --group dev -o requirements/dev.lock
	$(LOCK) --extra operator -c requirements/dev.lock -o requirements/operator.lock
	$(LOCK) --extra trainer -c requirements/dev.lock -o requirements/trainer.lock

LINT_DIRS := $(wildcard operator trainer_image tests bench)

lint: setup
	$(VENV_BIN)/ruff check $(LINT_DIRS)
	$(VENV_BIN)/ruff format --check $(LINT_DIRS)
	$(VENV_BIN)/lint-imports --no-cache

typecheck: setup
	$(VENV_BIN)/mypy --strict operator/campaign_operator trainer_image/campaign_trainer

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl for the integration tests:
# built once from Go modules (10-30 min cold) and cached in ${CAMPAIGN_CACHE:-~/.cache/campaign-operator}/k8s.
# KUBEBUILDER_ASSETS (a directory with etcd and kube-apiserver) is used instead when set.
cluster-binaries:
	./hack/build-control-plane.sh

# A real single-node cluster on this host (kubelet, containerd, CoreDNS, the KubeRay operator; fake
# GPUs): `make cluster-up` returns once it is Ready and prints the KUBECONFIG line; `make cluster-down`
# stops it and restores the host. Cold: ~15 min of Go builds. docs/local-cluster.md.
cluster-up: setup cluster-binaries tools
	./hack/cluster.sh up

cluster-down: setup
	./hack/cluster.sh down

# The same flow on kind, for users with Docker (docs/kind.md): `make kind-up` creates the cluster
# (hack/kind.yaml: a CPU worker and a GPU-pool worker), installs KubeRay from its chart, builds our
# images with Docker and `kind load`s them, and installs our chart with the rig's values
# (hack/local-values.yaml); `make kind-demo` runs the rig's demo campaign to Succeeded.
kind-up:
	./hack/kind.sh up

kind-demo:
	./hack/kind.sh demo

kind-down:
	./hack/kind.sh down

# The local cluster's images (operator, trainer, pause), built with buildah on a Debian 12 base and
# saved as OCI archives named by a hash of their inputs; prints "NAME REF ARCHIVE" per image.
images:
	./hack/build-images.sh

# The chart ships the same generated CRDs (Helm installs crds/ before templates).
crds: setup
	$(PY) -m campaign_operator.api.crdgen crds/
	cp crds/*.yaml charts/campaign-operator/crds/

# The krew plugin: dist/kubectl-campaign-<version>.tar.gz (the shim and LICENSE, byte-for-byte
# reproducible) and plugins/krew/campaign.yaml with its sha256; rerun after a version or shim change.
krew:
	./hack/krew.sh

# helm (from Go modules) and promtool (Debian) for the chart and alert-rule tests.
tools:
	./hack/install-tools.sh

test: setup cluster-binaries tools lint typecheck
	$(VENV_BIN)/pytest $(PYTEST_ARGS)

unit: setup
	$(VENV_BIN)/pytest -m unit $(PYTEST_ARGS)

# Operator vs a plain client loop creating a 2,000-trial campaign (ratio), and the operator's peak
# RSS holding a 10,000-trial campaign, on the rig's real apiserver. Figures: bench/README.md.
bench-operator: setup cluster-binaries
	$(PY) bench/operator_create.py $(BENCH_ARGS)

# The demo campaign on the local cluster rig (Trial -> RayJob Running -> first metric p50/p90, operator
# pod peak RSS) against `campaign run` of the same manifest; figures: bench/README.md.
bench-cluster: setup cluster-binaries tools
	$(PY) bench/cluster_demo.py

# The demo runs from scratch every time (its state dir is reset): a 3-phase campaign on an
# embedded local Ray, then the HTML report. `campaign status --state $(DEMO_STATE)` watches it
# from another terminal; re-running the `campaign run` line after Ctrl-C resumes it.
DEMO_STATE ?= .campaign/demo
demo: setup
	rm -rf $(DEMO_STATE)
	$(VENV_BIN)/campaign run examples/demo.yaml --state $(DEMO_STATE)
	$(VENV_BIN)/campaign report --state $(DEMO_STATE) -o $(DEMO_STATE)/report.html
	@echo "demo report: $$(cd $(DEMO_STATE) && pwd)/report.html (results: campaign results --state $(DEMO_STATE))"

plan-demo: setup
	$(VENV_BIN)/campaign plan examples/demo.yaml

# Embedded campaign vs Ray Tune on the same 24 trials; prints the wall-time ratio (target <= 1.10).
bench: setup
	$(PY) bench/embedded_vs_tune.py --repeat 2

# Search (tpe/random/cmaes/qmc, best after N trials) and ASHA (epochs saved) through plan(), then the
# same tpe + asha search as `campaign run` vs Ray Tune (OptunaSearch + ASHAScheduler); bench/README.md.
.PHONY: bench-search
bench-search: setup
	$(PY) bench/search_vs_tune.py --control

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
