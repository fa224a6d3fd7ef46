"""--smoke, --epochs-scale, --max-trials-per-phase: the sample `campaign plan` previews, the flags
over the manifest's own scaleDown, the run column of results, and a state dir of another scale."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from campaign_operator.api.campaign import RunKind, ScaleDown, TrainingCampaignStatus
from campaign_operator.cli.main import _register, cli
from campaign_operator.cli.run import refuse_other_scale
from campaign_operator.cli.scaledown import scaled
from campaign_operator.embedded.manifest import load_campaign_file
from campaign_operator.embedded.store import Store
from campaign_operator.planner import CreateTrial, plan
from campaign_operator.report import results

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo.yaml"

_register()


def _plan(*args: str) -> dict[str, object]:
    r = CliRunner().invoke(cli, ["plan", "-o", "json", *args, str(DEMO)])
    assert r.exit_code == 0, r.output
    doc: dict[str, object] = json.loads(r.output)
    return doc


def test_plan_previews_the_sample_and_its_epochs() -> None:
    full, smoke = _plan(), _plan("--smoke")
    assert (full["run"], full["total"]) == ("full", 13)
    assert smoke["run"] == "smoke" and smoke["total"] == 5
    phases = {p["name"]: p for p in smoke["phases"]}  # type: ignore[attr-defined]
    assert {n: (p["trials"], p["skipped"], p["epochs"]) for n, p in phases.items()} == {
        "smoke": (1, 0, 2),
        "explore": (2, 1, 2),
        "ensemble": (2, 0, 2),
    }
    partial = _plan("--max-trials-per-phase", "3", "--epochs-scale", "0.5")
    assert partial["run"] == "partial"
    assert [p["epochs"] for p in partial["phases"]] == [1, 2, 2]  # type: ignore[attr-defined]
    assert [p["trials"] for p in partial["phases"]] == [1, 3, 3]  # type: ignore[attr-defined]


def test_flags_override_the_manifest_fields_and_keep_the_others() -> None:
    campaign = load_campaign_file(DEMO)
    assert scaled(campaign, False, None, None) is campaign
    own = campaign.model_copy(
        update={
            "spec": campaign.spec.model_copy(
                update={"scale_down": ScaleDown(max_epochs=3, max_trials_per_phase=5)}
            )
        }
    )
    got = scaled(own, True, None, 4).spec.scale_down
    assert got == ScaleDown(smoke=True, max_epochs=3, max_trials_per_phase=4)


def test_results_rows_carry_the_run() -> None:
    campaign = scaled(load_campaign_file(DEMO), True, None, None)
    data = results.CampaignData(campaign, TrainingCampaignStatus(), [])
    assert data.run == RunKind.SMOKE
    first = plan(campaign, [], datetime(2026, 1, 1, tzinfo=UTC))
    trials = [a.trial for a in first.actions if isinstance(a, CreateTrial)]
    rows = results.rows(trials, run=data.run)
    parsed = list(csv.DictReader(io.StringIO(results.to_csv(rows))))
    assert parsed and {r["run"] for r in parsed} == {"smoke"}


def test_a_state_dir_of_another_scale_is_refused(tmp_path: Path) -> None:
    full = load_campaign_file(DEMO)
    with Store(tmp_path) as store:
        store.put_manifest(full.to_wire())
        refuse_other_scale(store, full)  # the same scale resumes
        with pytest.raises(click.ClickException) as err:
            refuse_other_scale(store, scaled(full, True, None, None))
    assert "holds a run at another scale" in err.value.message
    assert "create a new campaign with another name" in err.value.message
