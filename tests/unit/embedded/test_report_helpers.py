from __future__ import annotations

import pytest

from campaign_operator.api.campaign import TrainingCampaign, TrainingCampaignStatus
from campaign_operator.api.common import Mode, TrialState
from campaign_operator.embedded.runner import default_parallelism, with_parallelism
from campaign_operator.report import html
from campaign_operator.report.results import CampaignData

from .helpers import finished

pytestmark = pytest.mark.unit


def test_checkpoint_epochs_thin_to_evenly_spaced_rows() -> None:
    assert html.checkpoint_epochs(3, 1) == [1, 2, 3]
    assert html.checkpoint_epochs(500, 100) == [100, 200, 300, 400, 500]
    assert html.checkpoint_epochs(7, 3) == [3, 6, 7]
    assert html.checkpoint_epochs(2000, 1) == [1, 500, 1000, 1500, 2000]
    assert html.checkpoint_epochs(0, 1) == []


HISTORY = [(1, {"loss": 2.0, "val_loss": 3.0}), (2, {"loss": 1.5, "val_loss": 2.0}), (3, {"val_loss": 1.5})]


def test_checkpoint_table_of_one_trial_like_the_quick_test_report() -> None:
    t = finished("a", "p", TrialState.SUCCEEDED, history=HISTORY)
    table = html.checkpoint_table([t], "val_loss", Mode.MIN, 1, "best trial a")
    assert table is not None
    assert table.metrics[:2] == ["loss", "val_loss"]
    assert table.rows[0] == ["Initial", "1", "2", "3", "Baseline"]
    assert table.rows[1][-1] == "+33.3%"
    assert table.rows[2][:3] == ["Final", "3", "1.5"]  # loss at 3 falls back to the last reported (epoch 2)
    assert table.rows[2][-1] == "+50.0%"


def test_checkpoint_table_of_an_ensemble_is_mean_and_std() -> None:
    a = finished("a", "p", TrialState.SUCCEEDED, history=[(1, {"val_loss": 1.0}), (2, {"val_loss": 0.5})])
    b = finished("b", "p", TrialState.SUCCEEDED, history=[(1, {"val_loss": 3.0}), (2, {"val_loss": 1.5})])
    table = html.checkpoint_table([a, b], "val_loss", Mode.MIN, 1, "mean ± std")
    assert table is not None
    assert table.rows[0][2] == "2 ± 1.4" and table.rows[1][2] == "1 ± 0.71"
    assert table.rows[1][-1] == "+50.0%"


def _campaign(extra_phase_cpu: float | None = None) -> TrainingCampaign:
    phases: list[dict[str, object]] = [{"name": "a"}]
    if extra_phase_cpu is not None:
        phases.append({"name": "b", "resources": {"cpu": extra_phase_cpu}})
    return TrainingCampaign.model_validate(
        {"metadata": {"name": "c"}, "spec": {"template": {"task": "regression"}, "phases": phases}}
    )


def test_default_parallelism_from_cpus_and_trial_requests() -> None:
    assert default_parallelism(_campaign(), 2) == 2
    assert default_parallelism(_campaign(0.5), 2) == 2  # the largest request decides
    assert default_parallelism(_campaign(4), 2) == 1
    capped = with_parallelism(_campaign(), 3)
    assert capped.spec.max_parallel_trials == 3
    own = _campaign().model_copy(
        update={"spec": _campaign().spec.model_copy(update={"max_parallel_trials": 1})}
    )
    assert with_parallelism(own, 3).spec.max_parallel_trials == 1


def test_report_of_an_empty_campaign_renders() -> None:
    page = html.build_report(CampaignData(_campaign(), TrainingCampaignStatus(), []))
    assert page.startswith("<!DOCTYPE html>") and 'id="timeline"' in page and "No trial has run yet" in page
