"""The plugin's pure parts: refusals said as what is missing, the namespace kubectl would use, and
the view that watch events keep current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from campaign_operator.cli.kubectl.access import explain
from campaign_operator.cli.kubectl.source import CampaignView, default_namespace
from campaign_operator.kube.client import ApiError, NotFound

pytestmark = pytest.mark.unit


def status_body(message: str) -> str:
    return json.dumps({"kind": "Status", "status": "Failure", "message": message, "reason": "Forbidden"})


def test_a_refusal_names_the_verb_the_resource_the_namespace_and_who():
    body = status_body(
        'campaigntrials.training.campaign-operator.io is forbidden: User "system:serviceaccount:ml:ana" '
        'cannot list resource "campaigntrials" in API group "training.campaign-operator.io" '
        'in the namespace "ml"'
    )
    line = explain(ApiError(403, "Forbidden", body), "campaign demo in namespace ml")
    assert line.startswith('User "system:serviceaccount:ml:ana" may not list campaigntrials')
    assert "(training.campaign-operator.io API group) in namespace ml" in line and "`list`" in line


def test_a_cluster_wide_refusal_says_so():
    body = status_body(
        'trainingcampaigns is forbidden: User "bob" cannot list resource "trainingcampaigns" in API group '
        '"training.campaign-operator.io" at the cluster scope'
    )
    assert "cluster-wide" in explain(ApiError(403, "Forbidden", body), "campaigns in every namespace")


def test_other_failures_stay_one_bounded_line():
    assert explain(NotFound(404, "Not Found", status_body('x "demo" not found')), "campaign demo").startswith(
        "no campaign demo"
    )
    assert "credentials" in explain(ApiError(401, "Unauthorized", ""), "campaign demo")
    long = explain(ApiError(500, "Internal", "x" * 5000), "campaign demo")
    assert len(long) < 400 and "\n" not in long


def test_the_namespace_is_the_contexts(tmp_path: Path):
    config = {
        "current-context": "a",
        "contexts": [{"name": "a", "context": {"namespace": "team-a"}}, {"name": "b", "context": {}}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    assert default_namespace(str(path), None) == "team-a"
    assert default_namespace(str(path), "b") == "default"


def trial(name: str, state: str, version: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "resourceVersion": version, "labels": {"campaign": "c"}},
        "spec": {"campaign": "c", "phase": "p", "task": "regression", "epochs": 2},
        "status": {"state": state},
    }


def test_watch_events_keep_the_view_current_and_record_where_to_resume():
    view = CampaignView("ns", "c", campaign={"metadata": {"name": "c"}, "status": {"state": "Running"}})
    view.apply("campaigntrials", {"type": "ADDED", "object": trial("c-p-1", "Running", "10")})
    view.apply("campaigntrials", {"type": "MODIFIED", "object": trial("c-p-1", "Succeeded", "11")})
    view.apply("campaigntrials", {"type": "ADDED", "object": trial("c-p-2", "Running", "12")})
    view.apply("campaigntrials", {"type": "DELETED", "object": trial("c-p-2", "Running", "13")})
    view.apply("campaigntrials", {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}})
    assert [t.status.state.value for t in view.parsed_trials()] == ["Succeeded"]
    assert view.versions["campaigntrials"] == "20" and not view.finished
    view.apply(
        "trainingcampaigns",
        {
            "type": "MODIFIED",
            "object": {"metadata": {"name": "c", "resourceVersion": "21"}, "status": {"state": "Succeeded"}},
        },
    )
    assert view.finished and view.snapshot().finished
