"""The chart's PrometheusRule, checked and unit-tested with promtool (Debian's prometheus package)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import CHART

pytestmark = pytest.mark.integration


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def rules_file(helm, tmp_path: Path) -> Path:
    # The PrometheusRule renders where prometheus-operator's kind is served (`auto`).
    rendered = helm(
        "template", "co", str(CHART), "-n", "ops", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule"
    )
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def test_rules_are_valid(rules_file: Path, tools_bin: Path):
    r = promtool("check", "rules", str(rules_file), cwd=rules_file.parent)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_fire_before_the_threshold_and_on_failure(rules_file: Path, tools_bin: Path):
    labels = 'namespace="ml", campaign="nifty", phase="{phase}"'
    series = []
    for phase, rate, state in (
        ("teacher", "0.13", "Running"),
        ("student", "0.05", "Running"),
        ("gone", "0.3", "Failed"),
    ):
        lab = labels.format(phase=phase)
        series += [
            {"series": f"campaign_phase_failure_rate{{{lab}}}", "values": f"{rate}x20"},
            {"series": f"campaign_phase_max_failure_rate{{{lab}}}", "values": "0.15x20"},
            {"series": f'campaign_phase_state{{{lab}, state="{state}"}}', "values": "1x20"},
        ]
    near = {"severity": "warning", "namespace": "ml", "campaign": "nifty", "phase": "teacher"}
    test = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    # 13% against 15% (>= 80% of it) for 2 minutes: warn; 5% never; the failed phase
                    # is past warning, it gets CampaignPhaseFailed.
                    {"eval_time": "1m", "alertname": "CampaignPhaseNearFailureThreshold", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "CampaignPhaseNearFailureThreshold",
                        "exp_alerts": [
                            {
                                "exp_labels": near,
                                "exp_annotations": {
                                    "summary": "Phase teacher of ml/nifty is close to its failure threshold",
                                    "description": "Failure rate 13% is at least 0.8 of maxFailureRate.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "3m",
                        "alertname": "CampaignPhaseFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": "ml",
                                    "campaign": "nifty",
                                    "phase": "gone",
                                    "state": "Failed",
                                },
                                "exp_annotations": {
                                    "summary": "Phase gone of ml/nifty failed",
                                    "description": "See `kubectl describe tc nifty -n ml` for the reason.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (rules_file.parent / "test.yaml").write_text(yaml.safe_dump(test))
    r = promtool("test", "rules", "test.yaml", cwd=rules_file.parent)
    assert r.returncode == 0, r.stdout + r.stderr
