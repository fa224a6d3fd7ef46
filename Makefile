# Two commands matter on a fresh machine: `make demo` and `make test`.
# Everything else here is what those two stand on.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PY := .venv/bin/python
CACHE ?= $(HOME)/.cache/campaign-operator
PYTEST_ARGS ?=

.PHONY: tools setup uv test unit lint typecheck crds crds-check demo plan-demo clean cluster-binaries bench-operator

uv:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv

# Installs the locked environment (no resolution: uv.lock is the truth).
setup: uv .venv/.synced
.venv/.synced: pyproject.toml uv.lock
	$(UV) sync --all-extras --frozen
	@touch $@

LINT_DIRS := $(wildcard operator trainer_image tests bench)

lint: setup
	$(UV) run --frozen ruff check $(LINT_DIRS)
	$(UV) run --frozen ruff format --check $(LINT_DIRS)

typecheck: setup
	$(UV) run --frozen mypy --strict operator/campaign_operator/api operator/campaign_operator/planner \
	  operator/campaign_operator/k8s operator/campaign_operator/executors operator/campaign_operator/metrics.py

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl for the integration tests:
# built once from Go modules (10-30 min cold) and cached in ${CAMPAIGN_CACHE:-~/.cache/campaign-operator}/k8s.
# KUBEBUILDER_ASSETS (a directory with etcd and kube-apiserver) is used instead when set.
cluster-binaries:
	./hack/build-control-plane.sh

# The chart ships the same generated CRDs (Helm installs crds/ before templates).
crds: setup
	$(PY) -m campaign_operator.api.crdgen crds/
	cp crds/*.yaml charts/campaign-operator/crds/

# helm (from Go modules) and promtool (Debian) for the chart and alert-rule tests.
tools:
	./hack/install-tools.sh

test: setup cluster-binaries tools lint typecheck
	$(UV) run --frozen pytest $(PYTEST_ARGS)

unit: setup
	$(UV) run --frozen pytest -m unit $(PYTEST_ARGS)

# Operator vs a plain client loop creating a 2,000-trial campaign (ratio), and the operator's peak
# RSS holding a 10,000-trial campaign, on the rig's real apiserver. Figures: bench/README.md.
bench-operator: setup cluster-binaries
	$(UV) run --frozen python bench/operator_create.py $(BENCH_ARGS)

demo: setup
	$(UV) run --frozen campaign plan examples/demo.yaml

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
