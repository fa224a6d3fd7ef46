"""parse_manifests reads YAML like Kubernetes does; load_campaign judges the header first."""

from __future__ import annotations

import pytest

from campaign_operator.api import API_VERSION, TrainingCampaign
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.admission import load_campaign

pytestmark = pytest.mark.unit

MINIMAL = f"""
apiVersion: {API_VERSION}
kind: TrainingCampaign
metadata:
  name: tiny
spec:
  template:
    task: regression
    hyperparameters:
      lr: 1e-4
  phases:
    - name: train
"""


def _problems(doc: dict[str, object]) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_campaign(doc)
    return err.value.problems


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-4", 1e-4),
        ("1E-4", 1e-4),
        ("-2.5e3", -2500.0),
        ("+3e2", 300.0),
        ("5e-05", 5e-05),
        ("1.0e-4", 1e-4),
        (".5", 0.5),
        ("2.", 2.0),
        ("1_000.5", 1000.5),
        (".inf", float("inf")),
        ("-.Inf", float("-inf")),
    ],
)
def test_scientific_notation_and_other_floats_are_floats(text: str, value: float) -> None:
    # PyYAML's YAML 1.1 resolver reads 1e-4 as the *string* "1e-4"; Kubernetes reads a float.
    [doc] = parse_manifests(f"x: {text}\n")
    assert isinstance(doc["x"], float)
    assert doc["x"] == value


def test_nan_is_a_float() -> None:
    [doc] = parse_manifests("x: .nan\n")
    assert doc["x"] != doc["x"]


@pytest.mark.parametrize(("text", "value"), [("10", 10), ("-3", -3), ("0x1f", 31), ("1_000", 1000), ("0", 0)])
def test_integers_stay_integers(text: str, value: int) -> None:
    [doc] = parse_manifests(f"x: {text}\n")
    assert doc["x"] == value
    assert isinstance(doc["x"], int) and not isinstance(doc["x"], bool)


@pytest.mark.parametrize(
    "text", ["2022-05-17", "2022-05-17T10:00:00Z", "1:30", "=", "1e", "e4", "1.2.3", "0.1.x"]
)
def test_dates_and_lookalikes_stay_strings(text: str) -> None:
    # A date must stay a string: JSON and CEL cannot carry datetime.date, Kubernetes keeps the string,
    # and ISO dates compare correctly as strings in skipWhen.
    [doc] = parse_manifests(f"x: {text}\n")
    assert doc["x"] == text


def test_quoted_numbers_stay_strings_and_booleans_resolve() -> None:
    [doc] = parse_manifests('a: "1e-4"\nb: true\nc: null\nd: ~\n')
    assert doc == {"a": "1e-4", "b": True, "c": None, "d": None}


def test_scientific_notation_reaches_the_model_as_a_float() -> None:
    campaign = load_campaign(parse_manifests(MINIMAL)[0])
    assert campaign.spec.template.hyperparameters["lr"] == pytest.approx(1e-4)


def test_multi_document_yaml_skips_empty_documents() -> None:
    text = f"---\n{MINIMAL}\n---\n# just a comment\n---\n{MINIMAL.replace('tiny', 'tiny-2')}\n...\n"
    docs = parse_manifests(text)
    assert [d["metadata"]["name"] for d in docs] == ["tiny", "tiny-2"]


def test_json_and_kind_list_are_flattened() -> None:
    text = '{"apiVersion": "v1", "kind": "List", "items": [{"kind": "A", "x": 1e-4}, {"kind": "B"}]}'
    assert parse_manifests(text) == [{"kind": "A", "x": 1e-4}, {"kind": "B"}]
    assert parse_manifests('[{"kind": "A"}]') == [{"kind": "A"}]


def test_duplicate_keys_are_an_error_with_the_line() -> None:
    with pytest.raises(SpecError) as err:
        parse_manifests("spec:\n  suspend: true\n  suspend: false\n")
    [problem] = err.value.problems
    assert "line 3" in problem and "duplicate key 'suspend'" in problem


def test_merge_keys_still_work() -> None:
    [doc] = parse_manifests("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert doc["other"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a: [1\n", "line 2"),
        ("a: b: c\n", "line 1, column 5"),
        ('{"a": }', "not valid JSON: line 1"),
    ],
)
def test_syntax_errors_say_where(text: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_manifests(text)
    assert needle in err.value.problems[0]


def test_documents_that_are_not_objects_are_rejected() -> None:
    with pytest.raises(SpecError) as err:
        parse_manifests("a: 1\n---\n- x\n---\njust text\n")
    assert err.value.problems == [
        "document 2: expected an object (apiVersion, kind, ...), got ['x']",
        "document 3: expected an object (apiVersion, kind, ...), got 'just text'",
    ]


def test_load_campaign_returns_the_model() -> None:
    campaign = load_campaign(parse_manifests(MINIMAL)[0])
    assert isinstance(campaign, TrainingCampaign)
    assert campaign.metadata.name == "tiny"
    assert [p.name for p in campaign.spec.phases] == ["train"]


def test_missing_api_version_and_kind() -> None:
    doc = parse_manifests(MINIMAL)[0]
    del doc["apiVersion"], doc["kind"]
    assert _problems(doc) == [
        f"apiVersion: required; set apiVersion: {API_VERSION}",
        "kind: required; set kind: TrainingCampaign",
    ]


def test_wrong_group_and_unserved_version() -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["apiVersion"] = "ray.io/v1"
    [problem] = _problems(doc)
    assert problem.startswith("apiVersion: 'ray.io/v1' (wrong API group)")
    assert API_VERSION in problem
    doc["apiVersion"] = "training.campaign-operator.io/v1"
    [problem] = _problems(doc)
    assert "this version is not served" in problem


def test_wrong_kind() -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["kind"] = "Trial"
    assert _problems(doc) == ["kind: expected TrainingCampaign, got 'Trial'"]


@pytest.mark.parametrize("name", [None, "", "Nightly", "under_score", "-dash"])
def test_metadata_name_must_be_a_dns_name(name: str | None) -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["metadata"] = {} if name is None else {"name": name}
    [problem] = _problems(doc)
    assert problem.startswith("metadata.name: ")


def test_metadata_name_longer_than_a_label_value() -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["metadata"]["name"] = "a" * 64
    [problem] = _problems(doc)
    assert problem.startswith("metadata.name: ") and "63" in problem


def test_every_problem_of_a_stage_is_reported_with_its_field() -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["spec"]["phases"] = [
        {"name": "Bad", "failurePolicy": {"maxFailureRate": 1.5, "retries": -1}},
    ]
    problems = _problems(doc)
    assert [p.split(":")[0] for p in problems] == [
        "spec.phases[0].name",
        "spec.phases[0].failurePolicy.maxFailureRate",
        "spec.phases[0].failurePolicy.retries",
    ]


def test_semantic_problems_are_checked_after_the_schema() -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["spec"]["phases"][0]["gate"] = {"expression": "phase.best.value >"}
    doc["spec"]["phases"][0]["skipWhen"] = [{"expression": "params.x ==", "reason": "NoData"}]
    problems = _problems(doc)
    assert [p.split(":")[0] for p in problems] == [
        "spec.phases[0].gate.expression",
        "spec.phases[0].skipWhen[0].expression",
    ]


def test_types_are_not_coerced_as_the_apiserver_does_not_coerce_them() -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["spec"]["template"]["epochs"] = "10"
    doc["spec"]["phases"][0]["priority"] = "8"
    assert [p.split(":")[0] for p in _problems(doc)] == ["spec.template.epochs", "spec.phases[0].priority"]


def test_integers_are_numbers() -> None:
    doc = parse_manifests(MINIMAL)[0]
    doc["spec"]["phases"][0]["failurePolicy"] = {"maxFailureRate": 0}
    doc["spec"]["phases"][0]["sweep"] = {"random": {"samples": 2, "space": {"lr": {"uniform": [0, 1]}}}}
    campaign = load_campaign(doc)
    assert campaign.spec.phases[0].failure_policy.max_failure_rate == 0.0
