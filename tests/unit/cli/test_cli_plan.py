"""`campaign plan`: what every seed manifest will run, phase by phase."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from campaign_operator.api.campaign import Phase, TrainingCampaign
from campaign_operator.api.common import BUILTIN_TASKS
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.cli.main import _register, cli
from campaign_operator.cli.preview import CampaignPreview, preview
from campaign_operator.planner.admission import load_campaign
from campaign_operator.planner.templates import dataset_fields, parse

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"

_register()

# What the trainer's built-in tasks read (campaign_trainer/tasks); a manifest that sets anything
# else for a built-in task sets a knob that does nothing.
TASK_HYPERPARAMETERS = {
    "regression": {
        *("hidden_dims", "dropout", "output_init_std", "variance_lambda", "lr", "weight_decay"),
        *("loss", "group_column", "days_per_batch", "huber_delta", "soft_rank_temperature"),
        *("teacher_input", "teacher_weight"),
    },
    # LightGBM's own names (any of its parameters passes through; these are the seeds')
    "gbm": {
        *("num_leaves", "max_depth", "learning_rate", "n_estimators", "min_child_samples", "subsample"),
        *("colsample_bytree", "device_type", "gpu_use_dp", "objective", "rounds_per_epoch", "lightgbm"),
    },
    "cql": {"hidden_dims", "alpha", "lr", "gamma"},
    "sequence": {
        "d_model",
        "layers",
        "heads",
        "seq_len",
        "lr",
        "warmup_steps",
        "action_weight",
        "price_weight",
    },
}
# Read by every built-in task through the trainer's shared helpers (make_optimizer, split_arrays).
COMMON_HYPERPARAMETERS = {"seed", "lr", "weight_decay", "optimizer", "momentum", "val_fraction"}


def plan_json(name: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["plan", str(EXAMPLES / name), "-o", "json"])
    assert result.exit_code == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@functools.cache
def full_preview(name: str) -> CampaignPreview:
    [doc] = parse_manifests((EXAMPLES / name).read_text())
    return preview(load_campaign(doc))


@pytest.fixture(scope="module")
def nba() -> dict[str, Any]:
    return plan_json("nba-deep-campaign.yaml")


@pytest.fixture(scope="module")
def teacher_student() -> dict[str, Any]:
    return plan_json("teacher-student.yaml")


def test_json_shape(nba: dict[str, Any]) -> None:
    assert set(nba) >= {"campaign", "phases", "total"}
    for phase in nba["phases"]:
        assert set(phase) >= {"name", "priority", "dependsOn", "trials", "skipped", "firstTrials"}
        for trial in phase["firstTrials"]:
            assert set(trial) >= {"name", "parameters"}


def test_nba_deep_campaign(nba: dict[str, Any]) -> None:
    assert nba["campaign"] == "nba-deep"
    phases = {p["name"]: p for p in nba["phases"]}
    assert [(p["name"], p["trials"], p["priority"]) for p in nba["phases"]] == [
        ("quality", 5, 8),
        ("exploration", 24, 7),
        ("robustness", 20, 6),
    ]
    assert nba["total"] == 49
    assert all(p["skipped"] == 0 for p in nba["phases"])
    assert phases["robustness"]["dependsOn"] == ["exploration"]
    assert phases["quality"]["dependsOn"] == phases["exploration"]["dependsOn"] == []
    assert [t["parameters"]["seed"] for t in phases["robustness"]["firstTrials"]] == [42, 43, 44, 45, 46]
    assert [t["parameters"]["alpha"] for t in phases["quality"]["firstTrials"]] == [0.3, 0.3, 0.3, 0.5, 0.7]
    assert phases["quality"]["firstTrials"][2]["parameters"]["lr"] == 5e-5


def test_nba_robustness_is_seeds_42_to_61_of_the_best_exploration_config() -> None:
    robustness = full_preview("nba-deep-campaign.yaml").phases[2]
    assert [t.parameters["seed"] for t in robustness.trials] == list(range(42, 62))
    assert robustness.promoted_from == {
        "phase": "exploration",
        "metric": "val_loss",
        "mode": "min",
        "keys": ["alpha", "hidden_dims"],
    }
    params = robustness.trials[0].parameters
    # Unknown until exploration has run; lr is the same in all 24 exploration trials, so it is known.
    assert params["alpha"] == params["hidden_dims"] == "<best of exploration>"
    assert params["lr"] == 1e-4
    assert len({t.name for t in robustness.trials}) == 20


def test_nba_exploration_is_3_alphas_by_8_architectures() -> None:
    exploration = full_preview("nba-deep-campaign.yaml").phases[1]
    combos = {(t.parameters["alpha"], tuple(t.parameters["hidden_dims"])) for t in exploration.trials}
    assert len(combos) == 24
    assert {a for a, _ in combos} == {0.2, 0.25, 0.3}
    assert len({h for _, h in combos}) == 8


def test_teacher_student(teacher_student: dict[str, Any]) -> None:
    teacher, student = teacher_student["phases"]
    assert (teacher["name"], teacher["trials"], teacher["dependsOn"]) == ("teacher", 768, [])
    assert 0 < teacher["skipped"] < teacher["trials"]
    assert teacher["maxFailureRate"] == student["maxFailureRate"] == 0.15
    assert student["name"] == "student"
    assert student["dependsOn"] == ["teacher"]
    assert teacher_student["total"] == teacher["trials"] + student["trials"]


def test_teacher_skips_exactly_the_windows_before_listing() -> None:
    teacher = full_preview("teacher-student.yaml").phases[0]
    symbols = {t.parameters["symbol"]["name"] for t in teacher.trials}
    windows = {t.parameters["window"]["start"] for t in teacher.trials}
    assert (len(symbols), len(windows)) == (96, 8)
    for t in teacher.trials:
        listed = t.parameters["symbol"].get("listed")
        expected = listed is not None and t.parameters["window"]["start"] < listed
        assert (t.skip is not None) == expected, t.parameters
        if t.skip:
            assert t.skip[0] == "BeforeListing"
    lici = sorted(
        t.parameters["window"]["start"]
        for t in teacher.trials
        if t.parameters["symbol"]["name"] == "LICI" and t.skip
    )
    assert lici == ["2022-01-01", "2022-05-01"]


def test_other_seed_examples() -> None:
    smoke = plan_json("smoke-then-full.yaml")
    assert [(p["name"], p["dependsOn"]) for p in smoke["phases"]] == [("smoke", []), ("full", ["smoke"])]
    assert "phase.best.metrics.sharpe > 0.10" in smoke["phases"][0]["gate"]

    quick = plan_json("quick-test-report.yaml")
    [phase] = quick["phases"]
    params = phase["firstTrials"][0]["parameters"]
    assert (params["d_model"], params["layers"], params["heads"], params["seq_len"]) == (128, 4, 8, 30)
    assert params["lr"] == 2e-4 and phase["epochs"] == 3

    collapse = plan_json("variance-collapse.yaml")
    [phase] = collapse["phases"]
    assert phase["trials"] == 6
    runs = {
        (t["parameters"]["output_init_std"], t["parameters"]["variance_lambda"]) for t in phase["firstTrials"]
    }
    assert {(0.5, 0.0), (0.01, 0.0)} <= runs  # runs 1 and 2 of the seed (run 3 is trial 5)


def read_by_the_campaign(campaign: TrainingCampaign, phase: Phase) -> set[str]:
    """Parameters the plan itself reads for this phase: its dataset's templates ({symbol.name}) and
    its inputs' match keys."""
    dataset = phase.dataset or campaign.spec.template.dataset
    texts = dataset_fields(dataset) if dataset else []
    names = {ref[0] for _, text in texts for ref in parse(text).references}
    return names | {key for source in phase.inputs for key in source.match}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_set_only_hyperparameters_the_task_reads(path: Path) -> None:
    [doc] = parse_manifests(path.read_text())
    campaign = load_campaign(doc)
    for phase in preview(campaign).phases:
        task = phase.phase.task or campaign.spec.template.task
        if task not in BUILTIN_TASKS:
            continue  # a user callable reads what it likes
        allowed = TASK_HYPERPARAMETERS[task] | COMMON_HYPERPARAMETERS
        allowed |= read_by_the_campaign(campaign, phase.phase)
        for trial in phase.trials:
            assert set(trial.parameters) <= allowed, (phase.phase.name, set(trial.parameters) - allowed)


def test_text_output_has_a_table_per_phase() -> None:
    result = CliRunner().invoke(cli, ["plan", str(EXAMPLES / "nba-deep-campaign.yaml")])
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())  # rich wraps long lines at the console width
    for name in ("phase quality", "phase exploration", "phase robustness", "total: 49 trials (0 skipped)"):
        assert name in out
    assert "nba-deep-robustness-" in out
    assert "unknown until it has run: alpha, hidden_dims" in out


def test_text_output_counts_skip_reasons() -> None:
    result = CliRunner().invoke(cli, ["plan", str(EXAMPLES / "teacher-student.yaml")])
    assert result.exit_code == 0
    assert "skipped: 32 BeforeListing" in " ".join(result.stdout.split())


def test_invalid_manifest_is_not_planned() -> None:
    bad = REPO / "tests" / "data" / "invalid" / "self-dependency.yaml"
    result = CliRunner().invoke(cli, ["plan", str(bad), "-o", "json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "spec.phases[0].dependsOn: dependsOn: a phase cannot depend on itself" in result.stderr


def test_several_campaigns_give_a_json_list() -> None:
    text = "\n---\n".join(
        (EXAMPLES / n).read_text() for n in ("variance-collapse.yaml", "quick-test-report.yaml")
    )
    result = CliRunner().invoke(cli, ["plan", "-", "-o", "json"], input=text)
    assert result.exit_code == 0, result.stderr
    assert [c["campaign"] for c in json.loads(result.stdout)] == ["variance-collapse", "quick-test"]
