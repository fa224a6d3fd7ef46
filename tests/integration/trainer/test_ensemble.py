"""Vectorised seed ensembles (campaign_trainer.ensemble): each member is its separate trial.

Tolerance for "matches its separate trial": rtol 1e-4 per epoch on loss, val_loss, rmse and r2 (the
module's stated tolerance). Both sides are float32 on the CPU with the same init, rows, batch order
and optimiser; they differ only in rounding (the ensemble's batched matmul and float64 epoch sum vs
Lightning's): about 1e-7 relative here (24 steps), 5e-5 after the benchmark's 150 steps, while any
real difference (another seed, batch order or optimiser step) shows at 1e-2 or more. Comparisons
*between ensemble runs* (a member dropped, the same seeds twice) are exact while at least two members
train (a member left alone runs torch's unbatched kernels: its last bits may differ).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from campaign_operator.api.common import Comparison, StopRule, TrialState
from campaign_trainer.ensemble import Member, SeedEnsemble
from campaign_trainer.harness import train_fn
from campaign_trainer.stoprules import StopDecision
from campaign_trainer.tasks.base import TaskConfig

from .conftest import RecordingReporter, trial

pytestmark = pytest.mark.integration

PARAMS = {"lr": 3e-3, "hidden_dims": [16]}
PINNED = {"synthetic": {"samples": 512, "seed": 0}}
"""One dataset for every member; without its own seed each member's rows come from its seed."""
EPOCHS, BATCH, SEEDS = 3, 64, [1, 2, 3]
RTOL = 1e-4
COMPARED = ("loss", "val_loss", "rmse", "r2")
TIMING = {"epoch_time_s", "samples_per_sec"}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def config(dataset: dict[str, Any] | None = None, **params: Any) -> TaskConfig:
    return TaskConfig({**PARAMS, **params}, dataset or PINNED, BATCH, EPOCHS, 0)


def assert_close(mine: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        for key in COMPARED:
            np.testing.assert_allclose(a["metrics"][key], b["metrics"][key], rtol=RTOL, err_msg=key)


def untimed(member: Member) -> list[tuple[int, dict[str, float]]]:
    return [(h["epoch"], {k: v for k, v in h["metrics"].items() if k not in TIMING}) for h in member.history]


VARIANTS = {
    "adamw": {},
    "sgd-huber-variance": {
        "optimizer": "sgd",
        "lr": 1e-2,
        "momentum": 0.9,
        "weight_decay": 1e-3,
        "loss": {"huber": 1.0, "mse": 0.5},
        "variance_lambda": 0.5,
        "hidden_dims": [16, 8],
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_members_match_their_separate_trials(variant: str) -> None:
    params = {**PARAMS, **VARIANTS[variant]}
    members = SeedEnsemble(config(**params), SEEDS).fit()
    for member in members:
        spec = {"parameters": {**params, "seed": member.seed}, "epochs": EPOCHS, "batchSize": BATCH}
        alone = train_fn(
            trial(f"seed-{member.seed}", "regression", dataset=PINNED, **spec), RecordingReporter()
        )
        assert (alone.state, member.outcome_fields(EPOCHS)[0]) == ("Succeeded", "Succeeded")
        assert [h["epoch"] for h in member.history] == [h["epoch"] for h in alone.history] == [1, 2, 3]
        assert_close(member.history, alone.history)
        assert set(alone.history[-1]["metrics"]) <= set(member.history[-1]["metrics"])
    # Different seeds really are different members (the comparison above is not vacuous).
    assert len({m.history[-1]["metrics"]["val_loss"] for m in members}) == len(SEEDS)


def test_rows_drawn_from_each_seed_stay_the_members_own() -> None:
    """A dataset without its own seed (possible in a TaskConfig; a Trial's defaults to 0) is drawn
    from each member's seed: each member then trains on its own rows, as one trained alone does."""
    unpinned = {"synthetic": {"samples": 512}}
    members = SeedEnsemble(config(unpinned), SEEDS).fit()
    for member in members:
        (alone,) = SeedEnsemble(config(unpinned), [member.seed]).fit()
        assert_close(member.history, alone.history)


def test_a_diverging_member_fails_alone_and_the_others_run_as_without_it() -> None:
    def poison(epoch: int, step: int, seeds: tuple[int, ...], x: torch.Tensor, y: torch.Tensor) -> Any:
        if epoch == 2 and step == 3 and 2 in seeds:
            x = x.clone()
            x[seeds.index(2)] = float("nan")  # one member's batch: its weights turn NaN from here
        return x, y

    ensemble = SeedEnsemble(config(), SEEDS, transform_batch=poison)
    members = ensemble.fit()
    bad = members[1]
    assert bad.outcome_fields(EPOCHS)[:2] == ("Failed", "NonFiniteLoss")
    assert bad.epoch == 2 and not np.isfinite(bad.history[-1]["metrics"]["loss"])
    assert ensemble.active == [True, False, True]
    assert all(torch.isnan(v).any() for v in bad.state_dict.values())  # frozen where it failed
    without = SeedEnsemble(config(), [1, 3]).fit()
    for member, reference in zip((members[0], members[2]), without, strict=True):
        assert member.decision is None and member.epoch == EPOCHS
        assert untimed(member) == untimed(reference)  # identical, not just close
        assert all(torch.equal(member.state_dict[k], reference.state_dict[k]) for k in reference.state_dict)


def test_a_stop_rule_stops_members_alone() -> None:
    free = SeedEnsemble(config(), SEEDS).fit()
    at_2 = sorted(m.history[1]["metrics"]["val_loss"] for m in free)
    threshold = (at_2[1] + at_2[2]) / 2  # below the worst member's val_loss at epoch 2, above the others'
    rule = StopRule(
        metric="val_loss", comparison=Comparison.GT, threshold=threshold, after_epoch=1, reason="NotLearning"
    )
    members = SeedEnsemble(config(), SEEDS, stop_rules=[rule]).fit()
    for member, reference in zip(members, free, strict=True):
        if reference.history[1]["metrics"]["val_loss"] > threshold:
            assert member.decision is not None and member.epoch == 2
            assert member.outcome_fields(EPOCHS)[:2] == ("Stopped", "NotLearning")
            assert untimed(member) == untimed(reference)[:2]
        else:
            assert member.decision is None and untimed(member) == untimed(reference)
    assert sum(m.decision is None for m in members) == 2


def test_a_decide_hook_stops_one_member_and_reports_reach_each_member() -> None:
    def decide(member: Member) -> StopDecision | None:
        if member.seed == 3 and member.epoch == 1:
            return StopDecision(TrialState.STOPPED, "Enough", "seed 3 is enough at epoch 1", 1)
        return None

    reported: list[tuple[int, int]] = []
    ensemble = SeedEnsemble(config(), SEEDS, decide=decide, report=lambda s, e, m: reported.append((s, e)))
    members = ensemble.fit()
    assert [m.epoch for m in members] == [3, 3, 1] and ensemble.active == [True, True, False]
    assert members[2].outcome_fields(EPOCHS) == ("Stopped", "Enough", "seed 3 is enough at epoch 1")
    assert members[0].outcome_fields(EPOCHS) == ("Succeeded", "Completed", "trained 3 of 3 epochs")
    assert sorted(reported) == sorted((m.seed, h["epoch"]) for m in members for h in m.history)


def test_same_seeds_same_results() -> None:
    first, second = SeedEnsemble(config(), SEEDS).fit(), SeedEnsemble(config(), SEEDS).fit()
    for a, b in zip(first, second, strict=True):
        assert untimed(a) == untimed(b)
        assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


@pytest.mark.parametrize(
    ("params", "message"), [({"dropout": 0.1}, "dropout"), ({"group_column": "day"}, "group_column")]
)
def test_configurations_that_cannot_match_their_trials_are_refused(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SeedEnsemble(config(**params), SEEDS)
    with pytest.raises(ValueError, match="distinct seeds"):
        SeedEnsemble(config(), [1, 1])
