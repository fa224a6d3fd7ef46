"""phase.earlyTermination (asha, median): the planner's decisions over reported histories, checked
against reference implementations written here with plain loops, and through plan()."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_operator.api import TrialState
from campaign_operator.api.campaign import EarlyTermination
from campaign_operator.api.common import MetricPoint, Objective
from campaign_operator.planner import FinishTrial, plan
from campaign_operator.planner.early_termination import EARLY_TERMINATED, decide, rungs
from campaign_operator.planner.semantics import semantic_problems

from .sim import T0, World, campaign

pytestmark = pytest.mark.unit

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATES = [TrialState.RUNNING] * 3 + [
    TrialState.SUCCEEDED,
    TrialState.FAILED,
    TrialState.STOPPED,
    TrialState.PENDING,
]


# -- references: written from the algorithms' definitions, not from the module ------------------
def ref_value(history: list[tuple[int, float | None]], epoch: int, sign: float) -> float | None:
    """The metric (as a higher-is-better score) at the latest epoch <= `epoch` with a finite value."""
    found = None
    for e, v in sorted(history, key=lambda p: p[0]):
        if e <= epoch and v is not None and not math.isnan(v):
            found = sign * v
    return found


def ref_asha(trials: list[dict[str, Any]], p: dict[str, Any], sign: float) -> set[str]:
    stopped = set()
    for t in trials:
        last = max((e for e, _ in t["history"]), default=0)
        if t["state"] != TrialState.RUNNING or last >= t["epochs"]:
            continue
        rung, current = p["min_epochs"], None
        while rung < t["epochs"]:
            if rung <= last:
                current = rung
            rung *= p["reduction_factor"]
        if current is None:
            continue
        mine = ref_value(t["history"], current, sign)
        if mine is None:
            continue
        others = []
        for o in trials:
            if o["name"] == t["name"] or max((e for e, _ in o["history"]), default=0) < current:
                continue
            v = ref_value(o["history"], current, sign)
            if v is not None:
                others.append(v)
        if len(others) < p["min_trials"]:
            continue
        # top 1/rf of the n trials at the rung: the best ceil(n/rf) (ties kept)
        n = len(others) + 1
        allowed = -(-n // p["reduction_factor"])
        if sum(1 for v in others if v > mine) >= allowed:
            stopped.add(t["name"])
    return stopped


def ref_median(trials: list[dict[str, Any]], p: dict[str, Any], sign: float) -> set[str]:
    stopped = set()
    for t in trials:
        last = max((e for e, _ in t["history"]), default=0)
        if t["state"] != TrialState.RUNNING or last >= t["epochs"] or last <= p["min_epochs"]:
            continue
        own = [sign * v for _, v in t["history"] if v is not None and not math.isnan(v)]
        if not own:
            continue
        means = []
        for o in trials:
            if o["name"] == t["name"] or max((e for e, _ in o["history"]), default=0) < last:
                continue
            window = [
                sign * v
                for e, v in o["history"]
                if p["min_epochs"] <= e <= last and v is not None and not math.isnan(v)
            ]
            if window:
                means.append(sum(window) / len(window))
        if len(means) < p["min_trials"]:
            continue
        means.sort()
        k = len(means)
        median = means[k // 2] if k % 2 else (means[k // 2 - 1] + means[k // 2]) / 2
        if max(own) < median:
            stopped.add(t["name"])
    return stopped


# -- generated phases ------------------------------------------------------------------------
@st.composite
def phases(draw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    epochs = draw(st.integers(2, 9))
    policy = {
        "algorithm": draw(st.sampled_from(["asha", "median"])),
        "min_epochs": draw(st.integers(1, epochs - 1)),
        "reduction_factor": draw(st.integers(2, 4)),
        "min_trials": draw(st.sampled_from([1, 1, 2, 3])),
        "mode": draw(st.sampled_from(["min", "max"])),
    }
    n = draw(st.integers(2, 10))
    noise = st.one_of(st.integers(-20, 20).map(lambda x: x / 100), st.just(0.0))  # ties too
    trials = []
    for i in range(n):
        state = draw(st.sampled_from(STATES))
        if state == TrialState.PENDING:
            reached = 0
        elif state == TrialState.RUNNING:
            reached = draw(st.integers(0, epochs))
        else:
            reached = draw(st.sampled_from([epochs, epochs, draw(st.integers(0, epochs))]))
        thinned = draw(st.booleans())  # a thinned history lacks some epochs (lifecycle.bounds)
        kept = [e for e in range(1, reached + 1) if e == reached or not thinned or draw(st.booleans())]
        level = draw(st.integers(-3, 3))  # a trial's curve: its level plus noise
        number = noise.map(lambda x, level=level: level + x)
        value = st.one_of(number, st.none(), st.just(math.nan)) if draw(st.integers(0, 3)) == 0 else number
        trials.append(
            {"lr": i, "state": state, "epochs": epochs, "history": [(e, draw(value)) for e in kept]}
        )
    return policy, trials


def world_of(policy: dict[str, Any], trials: list[dict[str, Any]], terminate: bool = True) -> World:
    phase: dict[str, Any] = {
        "name": "p",
        "epochs": trials[0]["epochs"],
        "sweep": {"grid": {"lr": [t["lr"] for t in trials]}},
        "failurePolicy": {"maxFailureRate": 1.0},
    }
    if terminate:
        phase["earlyTermination"] = {
            "algorithm": policy["algorithm"],
            "minEpochs": policy["min_epochs"],
            "reductionFactor": policy["reduction_factor"],
            "minTrials": policy["min_trials"],
            "mode": policy["mode"],
        }
    w = World(campaign({"objective": {"metric": "val_loss"}, "phases": [phase]}))
    w.step()  # creates the trials (and launches some: their states are set below)
    by_lr = {t.spec.parameters["lr"]: t for t in w.trials.values()}
    for t in trials:
        trial = by_lr[t["lr"]]
        t["name"] = trial.name
        trial.status.state = t["state"]
        trial.status.attempt = 0 if t["state"] == TrialState.PENDING else 1
        trial.status.reason = None
        trial.status.history = [
            MetricPoint(epoch=e, metrics={} if v is None else {"val_loss": v}) for e, v in t["history"]
        ]
        trial.status.epoch = max((e for e, _ in t["history"]), default=None)
    w.launched.clear()
    return w


def reference(policy: dict[str, Any], trials: list[dict[str, Any]]) -> set[str]:
    sign = 1.0 if policy["mode"] == "max" else -1.0
    return (ref_asha if policy["algorithm"] == "asha" else ref_median)(trials, policy, sign)


def terminated(p: Any) -> dict[str, FinishTrial]:
    return {a.name: a for a in p.actions if isinstance(a, FinishTrial) and a.reason == EARLY_TERMINATED}


@MANY
@given(phases())
def test_decisions_match_the_reference_and_are_deterministic(case):
    policy, trials = case
    w = world_of(policy, trials)
    et = w.campaign.spec.phases[0].early_termination
    assert et is not None
    observed = list(w.trials.values())
    objective = Objective(metric="val_loss")
    first = decide(et, objective, observed)
    assert set(first) == reference(policy, trials)
    assert decide(et, objective, list(reversed(observed))) == first
    assert decide(et, objective, [t.model_copy(deep=True) for t in observed]) == first
    for d in first.values():
        assert d.state == TrialState.STOPPED and d.reason == EARLY_TERMINATED and d.message


@FAST
@given(phases())
def test_plan_stops_only_running_trials_once_and_counts_them_stopped(case):
    policy, trials = case
    w = world_of(policy, trials)
    before = {t.name: t.status.state for t in w.trials.values()}
    p1 = plan(w.campaign, list(w.trials.values()), T0)
    stops = terminated(p1)
    assert set(stops) == reference(policy, trials)
    assert all(before[name] == TrialState.RUNNING and a.stop_executor for name, a in stops.items())
    # the same statuses again: the same decision
    assert terminated(plan(w.campaign, list(w.trials.values()), T0)) == stops
    # without earlyTermination: the same failure rate; the stopped trials are the only difference
    plain = world_of(policy, [dict(t) for t in trials], terminate=False)
    p0 = plan(plain.campaign, list(plain.trials.values()), T0)
    s0, s1 = p0.status.phases[0], p1.status.phases[0]
    assert s1.failure_rate == s0.failure_rate
    assert s1.counts.failed == s0.counts.failed
    assert s1.counts.stopped == s0.counts.stopped + len(stops)
    # applied (by the sim shell, as the real shells do), deciding again stops nothing new
    w.apply(p1)
    for name in stops:
        assert w.trials[name].status.state == TrialState.STOPPED
    p2 = plan(w.campaign, list(w.trials.values()), T0)
    assert terminated(p2) == {}
    assert p2.status.phases[0].counts.stopped == s1.counts.stopped
    assert p2.status.phases[0].failure_rate == s1.failure_rate


def test_rungs():
    assert rungs(1, 2, 6) == [1, 2, 4]
    assert rungs(1, 3, 10) == [1, 3, 9]
    assert rungs(2, 2, 8) == [2, 4]
    assert rungs(5, 2, 5) == []


def _trial_case(histories: list[list[float]], running: list[bool], epochs: int) -> list[dict[str, Any]]:
    return [
        {
            "lr": i,
            "state": TrialState.RUNNING if r else TrialState.SUCCEEDED,
            "epochs": epochs,
            "history": [(e + 1, v) for e, v in enumerate(h)],
        }
        for i, (h, r) in enumerate(zip(histories, running, strict=True))
    ]


def test_asha_stops_the_worst_at_a_rung_with_a_readable_message():
    policy = {"algorithm": "asha", "min_epochs": 1, "reduction_factor": 2, "min_trials": 1, "mode": "min"}
    trials = _trial_case([[1.0, 0.5, 0.3, 0.2, 0.1, 0.05], [2.0, 1.9]], [False, True], 6)
    w = world_of(policy, trials)
    stops = terminated(plan(w.campaign, list(w.trials.values()), T0))
    assert list(stops) == [trials[1]["name"]]
    message = stops[trials[1]["name"]].message
    assert "asha" in message and "val_loss=1.9" in message and "rung epoch 2" in message, message


def test_median_needs_min_trials_peers():
    policy = {"algorithm": "median", "min_epochs": 1, "reduction_factor": 2, "min_trials": 3, "mode": "min"}
    good = [1.0, 0.5, 0.4, 0.3]
    two = _trial_case([good, good, [3.0, 3.0, 3.0]], [False, False, True], 6)
    assert terminated(plan((w := world_of(policy, two)).campaign, list(w.trials.values()), T0)) == {}
    three = _trial_case([good, good, good, [3.0, 3.0, 3.0]], [False, False, False, True], 6)
    w = world_of(policy, three)
    assert list(terminated(plan(w.campaign, list(w.trials.values()), T0))) == [three[3]["name"]]


def test_a_trial_at_its_last_epoch_is_not_stopped():
    policy = {"algorithm": "asha", "min_epochs": 1, "reduction_factor": 2, "min_trials": 1, "mode": "min"}
    trials = _trial_case([[0.1] * 4, [9.0] * 4], [False, True], 4)
    w = world_of(policy, trials)
    assert terminated(plan(w.campaign, list(w.trials.values()), T0)) == {}


def _spec(early: dict[str, Any], epochs: int = 6) -> Any:
    return campaign(
        {
            "phases": [
                {"name": "a"},
                {"name": "b", "epochs": epochs, "dependsOn": ["a"], "earlyTermination": early},
            ]
        }
    )


def test_validation_names_the_field():
    problems = semantic_problems(_spec({"algorithm": "asha", "minEpochs": 6}))
    assert any(p.startswith("spec.phases[1].earlyTermination.minEpochs: must be below") for p in problems)
    problems = semantic_problems(_spec({"algorithm": "median", "metric": "r22"}))
    assert any(p.startswith("spec.phases[1].earlyTermination.metric:") for p in problems), problems
    assert (
        semantic_problems(_spec({"algorithm": "median", "metric": "r2", "mode": "max", "minEpochs": 2})) == []
    )


def test_reduction_factor_below_two_is_rejected_by_the_schema():
    with pytest.raises(Exception, match="reductionFactor"):
        _spec({"algorithm": "asha", "reductionFactor": 1})
    assert EarlyTermination(algorithm="asha").reduction_factor == 3
