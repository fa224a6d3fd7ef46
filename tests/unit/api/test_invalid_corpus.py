"""tests/data/invalid: every manifest is rejected with a message naming the offending field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from campaign_operator.api import API_VERSION
from campaign_operator.api.manifest import parse_manifests
from campaign_operator.api.validation import SpecError
from campaign_operator.planner.admission import load_campaign
from invalid_corpus import FILES, header

pytestmark = pytest.mark.unit

# A problem starts with the path of the field it is about, e.g. spec.phases[1].failurePolicy.retries.
FIELD_PATH = re.compile(r"^(metadata|spec)(\.[A-Za-z0-9_-]+|\[\d+\])*: ")


def test_the_corpus_is_large_enough() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_rejected_with_a_message_naming_the_field(path: Path) -> None:
    headers = header(path)
    assert path.read_text().startswith("# expect: "), "the first line must be `# expect: <substring>`"
    assert headers.get("layer") in ("schema", "rule", "semantic", "json")
    [doc] = parse_manifests(path.read_text())
    with pytest.raises(SpecError) as err:
        load_campaign(doc)
    problems = err.value.problems
    assert any(headers["expect"] in p for p in problems), problems
    for problem in problems:
        assert FIELD_PATH.match(problem), f"problem does not start with a field path: {problem}"


def test_files_are_complete_manifests_with_distinct_names() -> None:
    names = set()
    for path in FILES:
        [doc] = parse_manifests(path.read_text())
        assert doc["apiVersion"] == API_VERSION and doc["kind"] == "TrainingCampaign", path.name
        assert "template" in doc["spec"] or path.stem == "missing-task", path.name
        names.add(doc["metadata"]["name"])
    assert len(names) == len(FILES)
