"""`campaign validate`: one OK line, or every problem on its own line and exit 2 (bad input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign_operator.cli.main import _register, cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
INVALID = REPO / "tests" / "data" / "invalid"

_register()


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_the_seed_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "smoke-then-full.yaml",
        "nba-deep-campaign.yaml",
        "teacher-student.yaml",
        "quick-test-report.yaml",
        "variance-collapse.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    code, out, err = run("validate", str(path))
    assert code == 0, err
    [line] = out.splitlines()
    assert line.startswith(f"OK {path}: TrainingCampaign ")
    # What running it on this machine would meet (its S3 data, its GPUs) is warned about, not refused.
    assert all(w.startswith("  warning: ") for w in err.splitlines()), err


def test_ok_line_summarises_the_campaign() -> None:
    code, out, _ = run("validate", str(REPO / "examples" / "nba-deep-campaign.yaml"))
    assert code == 0
    assert out.strip().endswith("TrainingCampaign nba-deep: 3 phases, 49 trials (0 skipped)")


def test_invalid_manifest_lists_every_problem_on_its_own_line() -> None:
    path = INVALID / "max-failure-rate-above-one.yaml"
    text = path.read_text().replace("maxFailureRate: 1.5", "maxFailureRate: 1.5\n        retries: -2")
    code, out, err = run("validate", "-", input=text)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "<stdin>: invalid (2 problems):",
        "  spec.phases[1].failurePolicy.maxFailureRate: Input should be less than or equal to 1",
        "  spec.phases[1].failurePolicy.retries: Input should be greater than or equal to 0",
    ]


def test_rule_violation_names_the_field() -> None:
    code, _, err = run("validate", str(INVALID / "from-phase-not-in-depends-on.yaml"))
    assert code == 2
    assert "spec.phases[1].fromPhase.phase: fromPhase.phase: must also be listed in dependsOn" in err


SKIP_ON_MISSING_KEY = (REPO / "tests" / "data" / "skip-when-missing-key.yaml").read_text()


def test_skip_rule_that_cannot_be_evaluated_is_reported() -> None:
    # It compiles, so only evaluating it over the trials shows that TCS has no `listed`.
    code, _, err = run("validate", "-", input=SKIP_ON_MISSING_KEY)
    assert code == 2
    assert "spec.phases[0].skipWhen[0].expression:" in err
    fixed = SKIP_ON_MISSING_KEY.replace(
        "params.window < params.symbol.listed",
        "has(params.symbol.listed) && params.window < params.symbol.listed",
    )
    code, out, err = run("validate", "-", input=fixed)
    assert code == 0, err
    assert "5 trials (1 skipped)" in out


def test_other_kinds_in_the_file_are_left_alone() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s3}\n---\n" + SKIP_ON_MISSING_KEY.replace(
        "params.window < params.symbol.listed", "params.window == 'never'"
    )
    code, out, _ = run("validate", "-", input=text)
    assert code == 0
    assert out.startswith("OK <stdin> (document 2): TrainingCampaign listing:")


def test_several_campaigns_are_each_judged() -> None:
    good = (REPO / "examples" / "variance-collapse.yaml").read_text()
    bad = (INVALID / "negative-retries.yaml").read_text()
    code, out, err = run("validate", "-", input=f"{good}\n---\n{bad}")
    assert code == 2
    assert "OK <stdin> (document 1): TrainingCampaign variance-collapse" in out
    assert "<stdin> (document 2): invalid (1 problem):" in err


def test_file_without_a_campaign() -> None:
    code, _, err = run("validate", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert code == 2
    assert "no TrainingCampaign in <stdin>" in err


def test_yaml_syntax_error() -> None:
    code, _, err = run("validate", "-", input="spec:\n  phases: [\n")
    assert code == 2
    assert "not valid YAML" in err


def test_missing_file() -> None:
    code, _, err = run("validate", "does-not-exist.yaml")
    assert code != 0
    assert "does-not-exist.yaml" in err


def test_a_duplicated_key_is_rejected_with_its_line() -> None:
    # kubectl would keep the last `epochs:` silently (tests/integration/api/test_bad_input_at_apply.py)
    code, _, err = run("validate", str(REPO / "tests" / "data" / "duplicate-keys.yaml"))
    assert code == 2
    assert "line 11, column 5: not valid YAML: found duplicate key 'epochs' (first at line 10)" in err


USER_TASK = """\
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: user}
spec:
  template: {task: "mypkg.tasks:build"}
  objective: {metric: val_acc, mode: max}
  phases: [{name: a}]
"""


def test_a_user_task_metric_no_builtin_task_reports_is_a_warning_not_a_failure() -> None:
    code, out, err = run("validate", "-", input=USER_TASK)
    assert code == 0, err
    assert out.startswith("OK <stdin>: TrainingCampaign user:")
    assert (
        "  warning: spec.objective.metric: no built-in task reports 'val_acc';"
        " make sure the user task mypkg.tasks:build does"
    ) in err
    code, _, err = run("validate", "-", input=USER_TASK.replace("mypkg.tasks:build", "regression"))
    assert code == 2 and "task regression never reports 'val_acc'" in err
