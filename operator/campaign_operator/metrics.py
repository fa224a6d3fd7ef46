"""Prometheus metrics of the operator.

Labels are bounded: namespace, campaign, phase, and small enums (state, metric name of the phase's
objective). Never a trial name: a 10,000-trial campaign must not mean 10,000 series.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from campaign_operator.api.campaign import CampaignState, PhaseState, TrainingCampaign, TrainingCampaignStatus
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial

PREFIX = "campaign"

TRIALS = Gauge(
    f"{PREFIX}_phase_trials", "Trials of a phase by state", ["namespace", "campaign", "phase", "state"]
)
FAILURE_RATE = Gauge(
    f"{PREFIX}_phase_failure_rate",
    "failed / (total - skipped) of a phase, counting only failures with no retries left",
    ["namespace", "campaign", "phase"],
)
MAX_FAILURE_RATE = Gauge(
    f"{PREFIX}_phase_max_failure_rate",
    "The phase's failurePolicy.maxFailureRate (alert before failure_rate crosses it)",
    ["namespace", "campaign", "phase"],
)
GATE = Gauge(
    f"{PREFIX}_phase_gate_passed",
    "1: the phase's gate held, 0: it did not, -1: not evaluated yet (or no gate)",
    ["namespace", "campaign", "phase"],
)
PHASE_STATE = Gauge(
    f"{PREFIX}_phase_state", "1 for the phase's current state", ["namespace", "campaign", "phase", "state"]
)
BEST = Gauge(
    f"{PREFIX}_phase_best_metric",
    "Objective value of the phase's best Succeeded trial",
    ["namespace", "campaign", "phase", "metric"],
)
CAMPAIGN_STATE = Gauge(
    f"{PREFIX}_state", "1 for the campaign's current state", ["namespace", "campaign", "state"]
)
TRIAL_SECONDS = Histogram(
    f"{PREFIX}_trial_duration_seconds",
    "Wall time of finished trial attempts (start to completion)",
    ["namespace", "campaign", "phase"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
)
RECONCILE_SECONDS = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Latency of one reconcile of one campaign (observe, plan, apply, status)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECONCILE_ERRORS = Counter(
    f"{PREFIX}_reconcile_errors", "Reconciles that ended in an unexpected error", ["namespace", "campaign"]
)
API_REQUESTS = Counter(
    f"{PREFIX}_operator_api_requests",
    "Kubernetes API requests of the operator's client by verb and resource (a reconcile that changes"
    " nothing makes reads only; the leader Lease is renewed every few seconds)",
    ["verb", "resource"],
)

_seen_finished: dict[tuple[str, str], set[str]] = {}
_phases: dict[tuple[str, str], set[tuple[str, str]]] = {}


def start(port: int, addr: str = "0.0.0.0") -> None:
    start_http_server(port, addr=addr)


def observe_campaign(
    campaign: TrainingCampaign, status: TrainingCampaignStatus, trials: Iterable[Trial]
) -> None:
    ns, name = campaign.metadata.namespace or "default", campaign.metadata.name
    for cs in CampaignState:
        CAMPAIGN_STATE.labels(ns, name, cs.value).set(1 if status.state == cs else 0)
    RECONCILE_ERRORS.labels(ns, name)  # exported as 0 from the first reconcile: no errors, not no data
    series = _phases.setdefault((ns, name), set())
    for p in status.phases:
        counts = p.counts
        for ts in TrialState:
            TRIALS.labels(ns, name, p.name, ts.value).set(getattr(counts, ts.value.lower()))
        FAILURE_RATE.labels(ns, name, p.name).set(p.failure_rate)
        MAX_FAILURE_RATE.labels(ns, name, p.name).set(p.max_failure_rate)
        gate = -1 if p.gate is None or p.gate.passed is None else int(p.gate.passed)
        GATE.labels(ns, name, p.name).set(gate)
        for ps in PhaseState:
            PHASE_STATE.labels(ns, name, p.name, ps.value).set(1 if p.state == ps else 0)
        if p.best is not None:
            BEST.labels(ns, name, p.name, p.best.metric).set(p.best.value)
            series.add((p.name, p.best.metric))
        else:
            series.add((p.name, ""))
    seen = _seen_finished.setdefault((ns, name), set())
    for t in trials:
        s = t.status
        if s.state.is_terminal and s.start_time and s.completion_time and t.name not in seen:
            seen.add(t.name)
            TRIAL_SECONDS.labels(ns, name, t.spec.phase).observe(
                max(0.0, (s.completion_time - s.start_time).total_seconds())
            )


def forget_campaign(namespace: str, name: str) -> None:
    """Drop a deleted campaign's series, so a long-lived operator's label set stays bounded."""
    _seen_finished.pop((namespace, name), None)
    for phase, metric in _phases.pop((namespace, name), set()):
        for ts in TrialState:
            _remove(TRIALS, namespace, name, phase, ts.value)
        for ps in PhaseState:
            _remove(PHASE_STATE, namespace, name, phase, ps.value)
        for g in (FAILURE_RATE, MAX_FAILURE_RATE, GATE):
            _remove(g, namespace, name, phase)
        _remove(TRIAL_SECONDS, namespace, name, phase)
        if metric:
            _remove(BEST, namespace, name, phase, metric)
    for cs in CampaignState:
        _remove(CAMPAIGN_STATE, namespace, name, cs.value)
    _remove(RECONCILE_ERRORS, namespace, name)


def _remove(metric: Gauge | Counter | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
