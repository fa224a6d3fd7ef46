"""Dataset fields from trial parameters: `data/{symbol.name}.parquet` resolves when the Trial is built,
and every way it can go wrong is known at plan time, with the field, the phase and what exists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign_operator.api.campaign import PhaseState, TrainingCampaign
from campaign_operator.api.common import DatasetSpec, TrialState
from campaign_operator.planner import CreateTrial, plan
from campaign_operator.planner.semantics import check_campaign
from campaign_operator.planner.templates import TemplateError, parse, resolve_dataset

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = [{"name": "TCS"}, {"name": "LICI", "listed": "2022-05-17"}]


def campaign(dataset: dict[str, Any], *, on_phase: bool = False, **phase: Any) -> TrainingCampaign:
    template: dict[str, Any] = {"task": "regression", "hyperparameters": {"horizon": 5}}
    first = {"name": "teacher", "sweep": {"matrix": {"axes": {"symbol": SYMBOLS, "window": [2022, 2023]}}}}
    if on_phase:
        first["dataset"] = dataset
    else:
        template["dataset"] = dataset
    return TrainingCampaign.model_validate(
        {"metadata": {"name": "c"}, "spec": {"template": template, "phases": [{**first, **phase}]}}
    )


def errors(dataset: dict[str, Any], **kw: Any) -> list[str]:
    return check_campaign(campaign(dataset, **kw)).errors


def only(dataset: dict[str, Any], **kw: Any) -> str:
    found = errors(dataset, **kw)
    assert len(found) == 1, found
    return found[0]


# -- resolution -----------------------------------------------------------------------------------


def test_each_trial_gets_its_own_concrete_dataset() -> None:
    c = campaign(
        {
            "path": "data/{symbol.name}_{window}.parquet",
            "target": "fwd_{horizon}d",
            "features": ["mom_{window}", "vol"],
        }
    )
    assert check_campaign(c).errors == []
    created = [a.trial for a in plan(c, [], NOW).actions if isinstance(a, CreateTrial)]
    got = {(t.spec.dataset.path, t.spec.dataset.target, *t.spec.dataset.features) for t in created}  # type: ignore[union-attr,misc]
    assert got == {
        (f"data/{s}_{w}.parquet", "fwd_5d", f"mom_{w}", "vol") for s in ("TCS", "LICI") for w in (2022, 2023)
    }


def test_values_are_spelt_as_the_manifest_and_trial_names_spell_them() -> None:
    params = {"flag": True, "lr": 1e-3, "epochs": 100.0, "name": "x"}
    assert parse("{flag}-{lr}-{epochs}-{name}").render(params) == "true-0.001-100-x"


def test_a_dataset_without_references_is_kept_as_it_is() -> None:
    dataset = DatasetSpec.model_validate({"path": "data/a.csv", "target": "y"})
    assert resolve_dataset(dataset, {}) is dataset


@given(st.text(alphabet="ab{}./_", max_size=30))
def test_doubled_braces_are_literal_braces(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert parse(escaped).render({}) == text
    assert parse(escaped).references == []


@given(st.text(alphabet="ab{}", max_size=12))
def test_any_text_parses_or_says_where_it_is_malformed(text: str) -> None:
    try:
        template = parse(text)
    except TemplateError as e:
        assert "at character" in e.problem and "for a literal brace" in e.problem
    else:
        assert all(ref and all(ref) for ref in template.references)


# -- plan-time checks -----------------------------------------------------------------------------


def test_an_unknown_key_names_the_field_the_phase_and_the_parameters() -> None:
    p = only({"path": "data/{symbl.name}.parquet", "target": "y"})
    assert p.startswith(
        "spec.template.dataset.path: {symbl.name}: no trial of phase teacher has a parameter 'symbl'"
        " (did you mean symbol?); its parameters are: horizon, symbol, window"
    )
    p = only({"path": "data/x.csv", "target": "y", "features": ["a", "{windw}"]}, on_phase=True)
    assert p.startswith("spec.phases[0].dataset.features[1]: {windw}: no trial of phase teacher")


def test_a_missing_field_is_found_on_the_trial_that_lacks_it() -> None:
    p = only({"path": "data/{symbol.listed}.csv", "target": "y"})
    assert p.startswith(
        "spec.template.dataset.path: {symbol.listed}: 'symbol' has no field 'listed'; its fields are: name"
        " (in the trial of phase teacher with symbol=TCS window=2022)"
    )


def test_a_mapping_or_a_list_is_not_a_value() -> None:
    p = only({"path": "data/{symbol}.csv", "target": "y"})
    assert p.startswith("spec.template.dataset.path: {symbol} is a mapping (name), not a value;")
    assert "reference one of its fields, e.g. {symbol.name}" in p
    p = only({"path": "data/{dims}.csv", "target": "y"}, hyperparameters={"dims": [64, 32]})
    assert p.startswith("spec.template.dataset.path: {dims} is a list ([64, 32]), not a string, number")


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("data/{symbol.name.csv", "lone '{' at character 6 of 'data/{symbol.name.csv'; write {{ for"),
        ("data/symbol}.csv", "lone '}' at character 12"),
        ("data/{symbol name}.csv", "'{symbol name}' at character 6 is not a parameter reference"),
        ("data/{}.csv", "'{}' at character 6 is not a parameter reference"),
    ],
)
def test_a_malformed_template_says_where_and_how_to_write_a_brace(path: str, problem: str) -> None:
    assert only({"path": path, "target": "y"}).startswith(f"spec.template.dataset.path: {problem}")


def test_a_resolved_path_must_still_be_a_path() -> None:
    p = only({"path": "{mode}/x.csv", "target": "y"}, hyperparameters={"mode": "s3:"})
    assert p.startswith("spec.template.dataset.path: resolves to 's3:/x.csv': String should match pattern")


def test_a_promoted_value_is_checked_when_the_trial_is_built() -> None:
    """`{tag}` promoted from an earlier phase is only known once that phase ran: plan time checks the
    key, the Trial's build the value; one that does not resolve fails the phase, creating nothing."""
    c = TrainingCampaign.model_validate(
        {
            "metadata": {"name": "c"},
            "spec": {
                "template": {"task": "regression", "dataset": {"path": "data/{tag}.csv", "target": "y"}},
                "phases": [
                    {"name": "explore", "sweep": {"grid": {"tag": ["a", "b"]}}},
                    {"name": "full", "dependsOn": ["explore"], "fromPhase": {"phase": "explore"}},
                ],
            },
        }
    )
    assert check_campaign(c).errors == []
    explore = [a.trial for a in plan(c, [], NOW).actions if isinstance(a, CreateTrial)]
    assert sorted(t.spec.dataset.path for t in explore) == ["data/a.csv", "data/b.csv"]  # type: ignore[union-attr]
    for t in explore:
        t.status.state = TrialState.SUCCEEDED
        t.status.metrics = {"val_loss": 1.0 if t.spec.parameters["tag"] == "a" else 2.0}
    (full,) = [a.trial for a in plan(c, explore, NOW).actions if isinstance(a, CreateTrial)]
    assert full.spec.dataset.path == "data/a.csv"  # type: ignore[union-attr]

    for t in explore:  # a best trial whose tag is a mapping: nothing to name a file with
        t.spec.parameters["tag"] = {"nested": t.spec.parameters["tag"]}
    failed = plan(c, explore, NOW)
    phase = failed.status.phases[1]
    assert (phase.state, phase.reason) == (PhaseState.FAILED, "DatasetTemplateError")
    assert (phase.message or "").startswith("spec.template.dataset.path: {tag} is a mapping (nested)")
    assert (phase.message or "").endswith(f"(in trial {full.name})")
    assert not [a for a in failed.actions if isinstance(a, CreateTrial)]
