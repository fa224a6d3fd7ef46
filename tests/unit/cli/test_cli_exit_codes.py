"""Exit statuses (2 bad input, 3 infrastructure) of runs refused before Ray starts; `campaign list` and
the reading commands finding a state dir the way `campaign run` names it (real stores, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campaign_operator.api.campaign import CampaignState, RunKind, TrainingCampaignStatus
from campaign_operator.cli.main import _register, cli
from campaign_operator.embedded.manifest import load_campaign_file
from campaign_operator.embedded.runner import state_dir_for
from campaign_operator.embedded.store import open_for_run

pytestmark = pytest.mark.unit

_register()

MANIFEST = """
apiVersion: training.campaign-operator.io/v1alpha1
kind: TrainingCampaign
metadata: {name: c}
spec:
  template: {task: regression, epochs: 1, resources: {cpu: 64, gpu: 8}}
  phases: [{name: p, sweep: {trials: [{lr: 0.01}]}}]
"""


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory and state-dir index of the test's own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMPAIGN_STATE_INDEX", str(tmp_path / "index"))
    (tmp_path / "c.yaml").write_text(MANIFEST)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_error(result: Result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    [line] = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]  # after any warning
    return line


def test_an_invalid_manifest_is_bad_input(here: Path) -> None:
    (here / "bad.yaml").write_text(MANIFEST.replace("epochs: 1", "epochs: -1"))
    result = invoke("run", "bad.yaml")
    assert result.exit_code == 2, result.output
    assert "spec.template.epochs" in result.stderr
    assert not (here / ".campaign").exists()


def test_strict_resources_refuses_with_the_numbers_before_anything_runs(here: Path) -> None:
    result = invoke("run", "c.yaml", "--strict-resources")
    assert result.exit_code == 2, result.output
    line = one_error(result)
    assert "--strict-resources: spec.template.resources: phase p asks cpu 64, gpu 8 per trial" in line
    assert "this machine has" in line and "CPU" in line
    assert not (here / ".campaign").exists()


def test_a_state_dir_that_cannot_be_created_is_infrastructure(here: Path) -> None:
    (here / "file").write_text("")
    result = invoke("run", "c.yaml", "--state", str(here / "file" / "state"))
    assert result.exit_code == 3, result.output
    assert "Not a directory" in one_error(result)


@pytest.mark.parametrize("command", ["status", "results", "report"])
def test_reading_commands_need_a_campaign_that_has_state(command: str, here: Path) -> None:
    assert invoke(command).exit_code == 2
    missing = invoke(command, "nope")
    assert missing.exit_code == 2
    assert "nope: no such manifest, state dir or campaign" in one_error(missing)
    not_run = invoke(command, "c.yaml")
    assert not_run.exit_code == 2
    assert "campaign c has no state in .campaign/c yet" in one_error(not_run)
    (here / "empty").mkdir()
    assert invoke(command, "--state", "empty").exit_code == 2


def _state(manifest: Path, status: TrainingCampaignStatus, state: Path | None = None) -> Path:
    """A state dir holding `status`, written by a real store; by default where `campaign run`
    would put it."""
    campaign = load_campaign_file(manifest)
    state = state or state_dir_for(campaign, None)
    opened = open_for_run(state, campaign.metadata.name)
    with opened.store as store:
        store.put_manifest(campaign.to_wire())
        store.put_status(status)
    return state


def test_list_shows_every_state_dir_and_marks_smoke_runs(here: Path) -> None:
    full = _state(
        here / "c.yaml",
        TrainingCampaignStatus(
            state=CampaignState.FAILED, current_phase="p", progress="1/1", fail_rate="100%/20%"
        ),
    )
    smoke = _state(
        here / "c.yaml",
        TrainingCampaignStatus(state=CampaignState.SUCCEEDED, progress="1/1", run=RunKind.SMOKE),
        Path(".campaign/c-smoke"),  # a smoke run's own state dir
    )
    assert full == Path(".campaign/c")

    result = invoke("list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "RUN",
        "STATE",
        "PHASE",
        "PROGRESS",
        "FAILRATE",
        "UPDATED",
        "STATE",
        "DIR",
    ]
    cells = sorted(row.split() for row in rows)
    assert [c[:6] for c in cells] == [
        ["c", "full", "Failed", "p", "1/1", "100%/20%"],
        ["c", "smoke", "Succeeded", "-", "1/1", "-"],
    ]
    assert sorted(c[-1] for c in cells) == sorted([str(full), str(smoke)])

    # The manifest finds the full run's state; the smoke run's by its state dir's name.
    status = invoke("status", "c.yaml")
    assert status.exit_code == 0, status.output
    assert "Failed" in status.stdout
    by_name = invoke("status", smoke.name)
    assert by_name.exit_code == 0 and "Succeeded" in by_name.stdout


def test_a_state_dir_elsewhere_is_found_through_the_index(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = TrainingCampaignStatus(state=CampaignState.RUNNING, progress="0/1")
    state = _state(here / "c.yaml", running, here / "runs" / "mine")
    (here / "other").mkdir()
    monkeypatch.chdir(here / "other")
    result = invoke("list")
    assert result.exit_code == 0 and str(state) in result.stdout
    assert "Running (stopped)" in result.stdout  # no runner holds it: `campaign run` resumes it
    found = invoke("results", "mine", "-o", "csv")
    assert found.exit_code == 0, found.output
