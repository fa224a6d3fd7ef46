"""Properties of plan() over random campaigns and random trial outcomes."""

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign_operator.api import CampaignState, PhaseState, TrialState
from campaign_operator.planner import CreateTrial, LaunchTrial, accounting

from .sim import World, campaign

pytestmark = pytest.mark.unit

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def campaigns(draw):
    n = draw(st.integers(1, 3))
    phases = []
    for i in range(n):
        phase = {
            "name": f"p{i}",
            "priority": draw(st.integers(0, 3)),
            "sweep": {"seeds": {"count": draw(st.integers(1, 8))}},
            "failurePolicy": {
                "maxFailureRate": draw(st.sampled_from([0.0, 0.2, 0.5, 1.0])),
                "retries": draw(st.integers(0, 2)),
                "backoffSeconds": draw(st.sampled_from([0, 30])),
                "failFast": draw(st.booleans()),
            },
        }
        if draw(st.booleans()):
            phase["maxParallelTrials"] = draw(st.integers(1, 3))
        if i and draw(st.booleans()):
            phase["dependsOn"] = [f"p{draw(st.integers(0, i - 1))}"]
        phases.append(phase)
    spec = {"phases": phases}
    if draw(st.booleans()):
        spec["maxParallelTrials"] = draw(st.integers(1, 4))
    return spec


def outcome_for(seed: int, fail_p: float):
    def outcome(t):
        r = random.Random(f"{seed}:{t.name}:{t.status.attempt}").random()
        return (TrialState.FAILED, {}) if r < fail_p else (TrialState.SUCCEEDED, {"val_loss": r})

    return outcome


@FAST
@given(campaigns(), st.integers(0, 10_000), st.sampled_from([0.0, 0.2, 0.6]))
def test_parallelism_limits_are_never_exceeded_and_counts_are_exact(spec, seed, fail_p):
    w = World(campaign(spec))
    limit = spec.get("maxParallelTrials")
    phase_limits = {p["name"]: p.get("maxParallelTrials") for p in spec["phases"]}
    outcome = outcome_for(seed, fail_p)
    rng = random.Random(seed)
    p = w.step()
    for _ in range(400):
        assert limit is None or len(w.running()) <= limit
        for name, lim in phase_limits.items():
            assert lim is None or len(w.running(name)) <= lim
        if p.status.state in (CampaignState.SUCCEEDED, CampaignState.FAILED):
            break
        for t in w.running():
            if rng.random() < 0.6:
                w.finish(t, *outcome(t))
        w.now += timedelta(seconds=45)
        p = w.step()
    else:
        raise AssertionError("did not finish")
    # Exact counts: every created trial is counted once, in the state it ended in.
    for ph in p.status.phases:
        mine = [t for t in w.trials.values() if t.spec.phase == ph.name]
        if ph.state == PhaseState.SKIPPED:
            assert not mine
            continue
        c = ph.counts
        assert c.total == len(mine) == c.pending + c.running + c.succeeded + c.failed + c.stopped + c.skipped
        assert c.succeeded == sum(t.status.state == TrialState.SUCCEEDED for t in mine)
        assert c.running == 0


@FAST
@given(campaigns(), st.integers(0, 10_000), st.sampled_from([0.0, 0.3, 0.7]))
def test_replanning_after_applying_a_plan_creates_and_launches_nothing_twice(spec, seed, fail_p):
    w = World(campaign(spec))  # World.apply asserts no duplicate create / (trial, attempt) launch
    outcome = outcome_for(seed, fail_p)
    rng = random.Random(seed)
    p = w.step()
    for _ in range(400):
        again = w.step()  # same instant, same observations: a restarted shell's view
        assert not any(isinstance(a, CreateTrial | LaunchTrial) for a in again.actions)
        assert again.status == p.status
        if p.status.state in (CampaignState.SUCCEEDED, CampaignState.FAILED):
            break
        for t in w.running():
            if rng.random() < 0.6:
                w.finish(t, *outcome(t))
        w.now += timedelta(seconds=45)
        p = w.step()
    assert len(w.created) == len(set(w.created))


@FAST
@given(st.integers(2, 12), st.sampled_from([0.0, 0.1, 0.25, 0.5]), st.integers(0, 10_000))
def test_fail_fast_agrees_with_the_final_rate_rule(count, rate, seed):
    """With and without failFast, a phase fails exactly when the final-rate rule says so."""
    results = {}
    for fail_fast in (True, False):
        spec = {
            "phases": [
                {
                    "name": "a",
                    "sweep": {"seeds": {"count": count}},
                    "failurePolicy": {"maxFailureRate": rate, "failFast": fail_fast},
                }
            ]
        }
        w = World(campaign(spec))
        p = w.run(outcome_for(seed, 0.3), rng=random.Random(seed))
        results[fail_fast] = p.status.phases[0].state
        if not fail_fast:
            c = p.status.phases[0].counts
            expected = accounting.exceeds(c.failed, c.total, c.skipped, rate)
            assert (results[False] == PhaseState.FAILED) == expected
    assert results[True] == results[False]
