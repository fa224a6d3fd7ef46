"""Every seed workflow's manifest (examples/, one per field report in ../shared/seeds) runs as its team
would try it first on this machine: `campaign run --smoke examples/<seed>.yaml`, unedited. Real Ray,
real training (the examples' shipped sample data or synthetic generators), built-in tasks only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from campaign_operator.api.campaign import CampaignState, PhaseState, RunKind, TrainingCampaignStatus
from campaign_operator.embedded.store import Store

from .conftest import REPO, campaign_cmd, trial_docs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES = REPO / "examples"


def smoke_run(example: str, cwd: Path) -> tuple[Path, TrainingCampaignStatus, str]:
    """`campaign run --smoke` from a directory of its own (its state dir lands there); the campaign's
    final status and the run's output."""
    proc = subprocess.run(
        campaign_cmd("run", "--smoke", "-q", str(EXAMPLES / example)),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    (state,) = (cwd / ".campaign").iterdir()
    with Store(state, readonly=True) as store:
        status = store.status()
    assert status is not None, out
    assert status.run == RunKind.SMOKE and status.state == CampaignState.SUCCEEDED, out
    return state, status, out


def phases(status: TrainingCampaignStatus) -> dict[str, PhaseState]:
    return {p.name: p.state for p in status.phases}


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        # seed 000: the smoke phase's gate is reported (not enforced), then the full run starts by itself
        ("smoke-then-full.yaml", {"smoke": PhaseState.SUCCEEDED, "full": PhaseState.SUCCEEDED}),
        # seed 001: all three phases, the robustness ensemble on exploration's promoted best
        (
            "nba-deep-campaign.yaml",
            {
                "quality": PhaseState.SUCCEEDED,
                "exploration": PhaseState.SUCCEEDED,
                "robustness": PhaseState.SUCCEEDED,
            },
        ),
        # seed 001 again, its exploration an adaptive search (TPE, ASHA) feeding the ensemble
        (
            "nba-deep-adaptive.yaml",
            {"exploration": PhaseState.SUCCEEDED, "robustness": PhaseState.SUCCEEDED},
        ),
        # seed 003: the shipped daily bars, the report's transformer
        ("quick-test-report.yaml", {"quick-test": PhaseState.SUCCEEDED}),
        # seed 004: cluster-sized requests (4 CPUs, a GPU) fitted to this machine, not retried
        ("variance-collapse.yaml", {"ablation": PhaseState.SUCCEEDED}),
        # seeds 001/004's by-hand trade-off: a Pareto front of sharpe vs rmse, its weighted pick ensembled
        ("sharpe-vs-error.yaml", {"frontier": PhaseState.SUCCEEDED, "ensemble": PhaseState.SUCCEEDED}),
    ],
)
def test_seed_example_smoke_run_succeeds_here(
    example: str, expected: dict[str, PhaseState], tmp_path: Path
) -> None:
    state, status, out = smoke_run(example, tmp_path)
    assert phases(status) == expected, out
    docs = trial_docs(state)
    assert docs, out
    for doc in docs.values():
        assert doc["spec"]["epochs"] <= 2, doc["metadata"]["name"]
        assert doc["status"]["state"] in {"Succeeded", "Stopped", "Skipped"}, doc["status"]
        assert (doc["status"].get("attempt") or 0) <= 1, doc["status"]  # fitted up front, never retried
    for phase in status.phases:
        assert phase.gate is None or phase.gate.passed is not None, phase  # evaluated and reported


def test_teacher_student_smoke_run_hands_each_student_its_teachers_outputs(tmp_path: Path) -> None:
    """Seed 002 with built-in tasks only: LightGBM teachers per (symbol, window) on the symbol's own
    file and window, students distilling their own teacher's predictions; a window before the
    symbol's listing is skipped in both phases and stays out of the failure rate."""
    state, status, out = smoke_run("teacher-student.yaml", tmp_path)
    assert phases(status) == {"teacher": PhaseState.SUCCEEDED, "student": PhaseState.SUCCEEDED}, out
    docs = list(trial_docs(state).values())
    by_point = {
        (
            d["spec"]["phase"],
            repr(d["spec"]["sweepPoint"]["symbol"]),
            repr(d["spec"]["sweepPoint"]["window"]),
        ): d
        for d in docs
    }
    teachers = [d for d in docs if d["spec"]["phase"] == "teacher"]
    assert {d["status"]["state"] for d in teachers} == {"Succeeded", "Skipped"}, out
    for teacher in teachers:
        point = teacher["spec"]["sweepPoint"]
        student = by_point[("student", repr(point["symbol"]), repr(point["window"]))]
        # Each trial read its own symbol's file and window (the templates resolved per trial).
        assert teacher["spec"]["dataset"]["path"].endswith(
            f"/data/nifty100/{point['symbol']['name']}.parquet"
        )
        assert teacher["spec"]["dataset"]["rows"]["start"] == point["window"]["start"]
        if teacher["status"]["state"] == "Skipped":
            assert teacher["status"]["reason"] == "BeforeListing"
            assert student["status"]["state"] == "Skipped" and not student["spec"].get("inputs")
            continue
        assert teacher["spec"]["task"] == "gbm" and student["spec"]["task"] == "regression"
        outputs = teacher["status"]["outputs"]
        assert student["spec"]["inputs"] == {"teacher": outputs}
        predictions = pd.read_parquet(Path(outputs.removeprefix("file://")) / "predictions.parquet")
        assert len(predictions) > 0 and predictions["prediction"].notna().all()
        assert student["status"]["state"] == "Succeeded", student["status"]
    for phase in status.phases:
        assert phase.counts.skipped == 1 and phase.counts.failed == 0, phase
        assert phase.failure_rate == 0.0
