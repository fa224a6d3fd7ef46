"""The payload bounds the lifecycle applies are stated by the CRDs: in their schemas where the
apiserver can check them (so another writer cannot grow a Trial past them either) and in the
descriptions `kubectl explain` shows, from the same constants."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_operator.api import crdgen
from campaign_operator.lifecycle.bounds import (
    BEST_METRICS_LIMIT,
    METRIC_NAME_MAX_LENGTH,
    METRICS_LIMIT,
    STATUS_BYTES_LIMIT,
    WARNINGS_LIMIT,
)

pytestmark = pytest.mark.unit


def node(crd: dict[str, Any], *path: str) -> dict[str, Any]:
    at: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for key in path:
        at = at["items"] if key == "[]" else at["properties"][key]
    return at


def test_the_trial_crd_states_the_bounds_on_metrics_history_and_warnings() -> None:
    trial = crdgen.trial_crd()
    for path in (("metrics",), ("best", "metrics"), ("history", "[]", "metrics")):
        metrics = node(trial, "status", *path)
        assert metrics["maxProperties"] == METRICS_LIMIT, path
        assert f"At most {METRICS_LIMIT} entries." in metrics["description"]
    latest = node(trial, "status", "metrics")["description"]
    assert f"names of at most {METRIC_NAME_MAX_LENGTH} characters" in latest and "warnings" in latest
    history = node(trial, "status", "history")["description"]
    assert f"more than {STATUS_BYTES_LIMIT // 1024} KiB as JSON" in history
    warnings = node(trial, "status", "warnings")
    assert warnings["maxItems"] == WARNINGS_LIMIT and "MetricsDropped" in warnings["description"]
    objective = node(trial, "spec", "objective", "metric")
    assert (
        objective["maxLength"] == METRIC_NAME_MAX_LENGTH and "MetricsUnavailable" in objective["description"]
    )
    assert node(trial, "spec", "stopRules", "[]", "metric")["maxLength"] == METRIC_NAME_MAX_LENGTH


def test_the_campaign_crd_bounds_what_a_phases_best_keeps() -> None:
    best = node(crdgen.campaign_crd(), "status", "phases", "[]", "best", "metrics")
    assert best["maxProperties"] == BEST_METRICS_LIMIT
    assert f"At most {BEST_METRICS_LIMIT} of the trial's metrics" in best["description"]
