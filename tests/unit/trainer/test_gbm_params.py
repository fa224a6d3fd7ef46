"""Which hyperparameters the gbm task hands to LightGBM, and how boosting rounds map to epochs."""

from __future__ import annotations

import pytest

from campaign_trainer.tasks.gbm import boosting_plan, lightgbm_aliases, lightgbm_params

pytestmark = pytest.mark.unit

SEED_002_TEACHER = {
    "role": "teacher",
    "symbol": {"name": "TCS"},
    "window": {"start": "2022-01-01", "end": "2022-04-30"},
    "horizon_days": 5,
    "num_leaves": 127,
    "max_depth": 9,
    "learning_rate": 0.01,
    "n_estimators": 500,
    "min_child_samples": 20,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "gpu_use_dp": False,
    "device_type": "gpu",
}


def test_lightgbm_names_its_own_parameters_and_aliases() -> None:
    aliases = lightgbm_aliases()  # LightGBM's own table (a private helper: this pins it)
    assert aliases["n_estimators"] == aliases["num_iterations"] == "num_iterations"
    assert aliases["subsample"] == "bagging_fraction" and aliases["colsample_bytree"] == "feature_fraction"
    assert aliases["device"] == "device_type" and aliases["gpu_use_dp"] == "gpu_use_dp"


def test_seed_002_teacher_parameters_pass_through_and_labels_do_not() -> None:
    assert lightgbm_params(SEED_002_TEACHER) == {
        "num_leaves": 127,
        "max_depth": 9,
        "learning_rate": 0.01,
        "num_iterations": 500,
        "min_data_in_leaf": 20,
        "bagging_fraction": 0.8,
        "feature_fraction": 0.8,
        "gpu_use_dp": False,
        "device_type": "gpu",
    }


def test_the_lightgbm_mapping_passes_anything_lightgbm_knows() -> None:
    params = lightgbm_params(
        {"seed": 3, "lightgbm": {"lambda_l2": 1.0, "max_bin": 63}, "group_column": "date"}
    )
    assert params == {"lambda_l2": 1.0, "max_bin": 63}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"num_leave": 31}, r"hyperparameters: not LightGBM .* 'num_leave' \(did you mean 'num_leaves'\?\)"),
        ({"colsample_by_tree": 0.5}, r"'colsample_by_tree' \(did you mean 'colsample_bytree'\?\)"),
        (
            {"lightgbm": {"lambda_l3": 1, "foo": 2}},
            r"hyperparameter lightgbm: not LightGBM .* 'foo', 'lambda_l3'",
        ),
        ({"lightgbm": [1]}, "hyperparameter lightgbm: expected a mapping"),
        ({"metric": "l1"}, "hyperparameter metric: not settable for the gbm task"),
        ({"early_stopping_rounds": 5}, "early_stopping_rounds: not settable .* earlyStopping"),
        ({"loss": {"huber": 1.0}}, "the gbm task's loss is LightGBM's objective"),
    ],
)
def test_bad_names_are_clear_errors(parameters: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lightgbm_params(parameters)


@pytest.mark.parametrize(
    ("parameters", "epochs", "plan"),
    [
        ({}, 4, (100, 25)),
        ({"n_estimators": 500}, 1, (500, 500)),
        ({"n_estimators": 10}, 3, (10, 4)),  # the last epoch boosts the remaining 2
        ({"rounds_per_epoch": 7}, 3, (21, 7)),
        ({"num_boost_round": 50, "rounds_per_epoch": 20}, 3, (50, 20)),
    ],
)
def test_boosting_rounds_per_epoch(parameters: dict[str, object], epochs: int, plan: tuple[int, int]) -> None:
    assert boosting_plan(parameters, epochs) == plan


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"n_estimators": 0}, "hyperparameter n_estimators: expected an integer >= 1"),
        ({"rounds_per_epoch": 2.5}, "hyperparameter rounds_per_epoch: expected an integer >= 1"),
        ({"n_estimators": 20, "rounds_per_epoch": 10}, "reach n_estimators .* before the last epoch"),
    ],
)
def test_bad_boosting_plans(parameters: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        boosting_plan(parameters, 3)
