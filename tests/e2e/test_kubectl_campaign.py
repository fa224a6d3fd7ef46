"""`kubectl campaign` against a real kube-apiserver while the operator runs a real campaign on a real
Ray head: `watch` follows it by watches (one list, then watch streams) and exits with its outcome;
`status`, `results`, `report` show what embedded mode shows for the same manifest; `suspend` and
`resume` flip spec.suspend; a user without rights is told which verb on which resource is missing."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaign_operator import metrics
from campaign_operator.cli.kubectl.source import followed
from campaign_operator.kube.client import KubeClient
from campaign_operator.report.live import Snapshot
from integration.k8s.opkit import Kube, OperatorProcess, wait_for
from rig.controlplane import ControlPlane

from .conftest import RayHead, campaign

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
NAME = "plugin"
# One phase, two trials: SGD at lr=100 diverges (NonFiniteLoss), within the 50% threshold.
PHASES = [
    {
        "name": "p",
        "hyperparameters": {"optimizer": "sgd"},
        "sweep": {"grid": {"lr": [0.01, 100.0]}},
        "failurePolicy": {"maxFailureRate": 0.5},
    }
]


def plugin(
    cp: ControlPlane, *args: str, kubeconfig: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`kubectl campaign ...`: kubectl finds our entry point on the PATH, as a user's would."""
    assert cp.binaries is not None
    dirs = [str(VENV_BIN), str(cp.binaries.bin_dir), os.environ["PATH"]]
    env = {**cp.env(kubeconfig), "PATH": os.pathsep.join(dirs)}
    return subprocess.run(
        ["kubectl", "campaign", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def request_counts() -> dict[tuple[str, str], float]:
    return {
        (s.labels["verb"], s.labels["resource"]): s.value
        for m in metrics.API_REQUESTS.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }


def follow_in_process(cp: ControlPlane, ns: str, seen: list[Snapshot]) -> None:
    async def go() -> None:
        client = await KubeClient.connect(str(cp.kubeconfig_path))
        try:
            async for snap in followed(client, ns, NAME):
                seen.append(snap)
        finally:
            await client.close()

    asyncio.run(go())


@pytest.fixture(scope="module")
def watched(
    control_plane: ControlPlane, kube: Kube, ns: str, operator: OperatorProcess, ray_head: RayHead
) -> Iterator[dict[str, Any]]:
    """The campaign run by the operator, followed from its creation by `kubectl campaign watch` (a
    subprocess) and by the same source in this process (to count its requests)."""
    before = request_counts()
    seen: list[Snapshot] = []
    kube.create_campaign(ns, campaign(NAME, ray_head, PHASES))
    wait_for(lambda: kube.campaign(ns, NAME).get("metadata"), 30, "the campaign")
    follower = threading.Thread(target=follow_in_process, args=(control_plane, ns, seen), daemon=True)
    follower.start()
    watch = plugin(control_plane, "watch", NAME, "-n", ns, timeout=420)
    follower.join(60)
    yield {"watch": watch, "seen": seen, "before": before, "after": request_counts()}


def test_watch_follows_the_campaign_by_watches_and_exits_with_its_outcome(watched: dict[str, Any], ns: str):
    watch = watched["watch"]
    assert watch.returncode == 0, (watch.stdout, watch.stderr)
    out = watch.stdout
    assert f"campaign {NAME} Succeeded" in out, out
    assert "started (attempt 1)" in out and "Failed (NonFiniteLoss)" in out and "phase p Succeeded" in out, (
        out
    )
    assert "failure rate 50.0% vs max 50%" in out, out
    seen: list[Snapshot] = watched["seen"]
    assert seen and seen[-1].finished and len(seen) >= 3, [s.status.state for s in seen]
    counts = {k: watched["after"].get(k, 0) - watched["before"].get(k, 0) for k in watched["after"]}
    # A list of the campaign's trials (a request retried on a loaded machine counts twice), then
    # watch streams: far fewer lists than refreshed views, where polling would list once per view.
    lists = counts.get(("GET", "campaigntrials"), 0)
    assert 1 <= lists <= 2 and counts.get(("WATCH", "campaigntrials"), 0) >= 1, counts
    assert len(seen) >= 3 * lists, (len(seen), counts)


def test_status_shows_the_finished_campaign_on_one_screen(control_plane: ControlPlane, watched, ns: str):
    out = plugin(control_plane, "status", NAME, "-n", ns)
    assert out.returncode == 0, out.stderr
    assert "Succeeded" in out.stdout and "failrate=50.0%/50%" in out.stdout, out.stdout


def test_results_have_the_embedded_runs_columns_for_the_same_manifest(
    control_plane: ControlPlane, watched, ns: str, ray_head: RayHead, tmp_path: Path
):
    on_cluster = plugin(control_plane, "results", NAME, "-n", ns, "-o", "csv")
    assert on_cluster.returncode == 0, on_cluster.stderr
    manifest = campaign(NAME, ray_head, PHASES)
    del manifest["spec"]["executor"]  # the same campaign on embedded Ray
    path = tmp_path / "plugin.yaml"
    path.write_text(
        yaml.safe_dump(
            {"apiVersion": "training.campaign-operator.io/v1alpha1", "kind": "TrainingCampaign", **manifest}
        )
    )
    state = tmp_path / "state"
    run = subprocess.run(
        [str(VENV_BIN / "campaign"), "run", str(path), "--state", str(state), "-q"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, (run.stdout, run.stderr)
    embedded = subprocess.run(
        [str(VENV_BIN / "campaign"), "results", "--state", str(state), "-o", "csv"],
        capture_output=True,
        text=True,
        check=True,
    )
    cluster_rows = list(csv.DictReader(io.StringIO(on_cluster.stdout)))
    embedded_rows = list(csv.DictReader(io.StringIO(embedded.stdout)))
    assert list(cluster_rows[0]) == list(embedded_rows[0])
    assert sorted((r["name"], r["state"], r["reason"]) for r in cluster_rows) == sorted(
        (r["name"], r["state"], r["reason"]) for r in embedded_rows
    )


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1
        if tag not in (
            "meta",
            "br",
            "hr",
            "img",
            "input",
            "link",
            "path",
            "circle",
            "line",
            "rect",
            "polyline",
        ):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()


def test_report_is_well_formed_html_with_charts(
    control_plane: ControlPlane, watched, ns: str, tmp_path: Path
):
    out = plugin(control_plane, "report", NAME, "-n", ns, "-o", str(tmp_path / "report.html"))
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "report.html").read_text()
    tags = _Tags()
    tags.feed(text)
    tags.close()
    assert text.startswith("<!DOCTYPE html>") and text.count('class="plotly-graph-div"') >= 2, tags.seen
    assert tags.open == [], f"unclosed: {tags.open}"
    assert NAME in text and "NonFiniteLoss" in text


def test_suspend_and_resume_flip_spec_suspend(control_plane: ControlPlane, kube: Kube, watched, ns: str):
    assert plugin(control_plane, "suspend", NAME, "-n", ns).returncode == 0
    assert kube.campaign(ns, NAME)["spec"]["suspend"] is True
    assert plugin(control_plane, "resume", NAME, "-n", ns).returncode == 0
    assert kube.campaign(ns, NAME)["spec"]["suspend"] is False
    listed = plugin(control_plane, "list", "-n", ns)
    assert listed.returncode == 0 and NAME in listed.stdout and "Succeeded" in listed.stdout, listed.stdout


def test_a_user_without_rights_is_told_what_is_missing(
    control_plane: ControlPlane, watched, ns: str, tmp_path: Path
):
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    token = control_plane.kubectl("create", "token", "nobody", "-n", ns, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "rig",
                "cluster": {
                    "server": control_plane.server,
                    "certificate-authority": str(control_plane.ca_path),
                },
            }
        ],
        "users": [{"name": "nobody", "user": {"token": token}}],
        "contexts": [{"name": "rig", "context": {"cluster": "rig", "user": "nobody", "namespace": ns}}],
        "current-context": "rig",
    }
    kubeconfig = tmp_path / "nobody.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    out = plugin(control_plane, "status", NAME, kubeconfig=kubeconfig)  # the context's namespace
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert f'"system:serviceaccount:{ns}:nobody" may not get trainingcampaigns' in out.stderr, out.stderr
    assert f"in namespace {ns}" in out.stderr and "Traceback" not in out.stderr, out.stderr
    missing = plugin(control_plane, "status", "no-such-campaign", "-n", ns)
    assert missing.returncode == 3 and "no campaign no-such-campaign" in missing.stderr, missing.stderr
    started = time.monotonic()
    assert plugin(control_plane, "logs", "no-such-trial", "-n", ns).returncode == 3
    assert time.monotonic() - started < 60
