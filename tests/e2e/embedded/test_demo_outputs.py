"""The demo campaign end to end, then everything read from its state: status, results, report."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .conftest import run_cli, trial_docs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_counts_and_failure_threshold(demo_state: Path) -> None:
    docs = trial_docs(demo_state)
    by_phase: dict[str, dict[str, int]] = {}
    for d in docs.values():
        phase = by_phase.setdefault(d["spec"]["phase"], {})
        phase[d["status"]["state"]] = phase.get(d["status"]["state"], 0) + 1
    assert by_phase == {
        "smoke": {"Succeeded": 1},
        "explore": {"Succeeded": 6, "Failed": 1, "Skipped": 1},
        "ensemble": {"Succeeded": 4},
    }
    failed = next(d for d in docs.values() if d["status"]["state"] == "Failed")
    assert failed["status"]["reason"] == "NonFiniteLoss"
    assert failed["status"]["attempt"] == 1  # NonFiniteLoss is not retried
    status = run_cli("status", "--state", str(demo_state)).stdout
    assert "explore Succeeded 8/8" in status
    assert "failrate=14.3%/20%" in status


def test_results_in_every_format(demo_state: Path, tmp_path: Path) -> None:
    table = run_cli("results", "--state", str(demo_state)).stdout
    assert "NonFiniteLoss" in table and "KnownDivergent" in table

    rows = list(
        csv.DictReader(io.StringIO(run_cli("results", "--state", str(demo_state), "-o", "csv").stdout))
    )
    assert len(rows) == 13
    assert {
        "phase",
        "name",
        "state",
        "reason",
        "duration_s",
        "param.lr",
        "final.val_loss",
        "best.val_loss",
    } <= set(rows[0])
    explore = [r for r in rows if r["phase"] == "explore"]
    assert sorted({r["param.lr"] for r in explore}) == ["0.01", "0.03", "0.1", "100.0"]

    only = json.loads(
        run_cli("results", "--state", str(demo_state), "--phase", "ensemble", "-o", "json").stdout
    )
    assert len(only) == 4 and {r["phase"] for r in only} == {"ensemble"}
    assert sorted(r["param.seed"] for r in only) == [0, 1, 2, 3]
    assert all(isinstance(r["best.val_loss"], float) for r in only)

    import pyarrow.parquet as pq

    out = tmp_path / "results.parquet"
    run_cli("results", "--state", str(demo_state), "-o", "parquet", "-f", str(out))
    table_pq = pq.read_table(out)
    assert table_pq.num_rows == 13
    assert {"param.lr", "final.val_loss", "duration_s"} <= set(table_pq.column_names)


def test_report_has_every_plot_and_table(demo_state: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    run_cli("report", "--state", str(demo_state), "-o", str(out))
    html = out.read_text()
    plots = set(re.findall(r'data-plot="([a-z]+)" data-key="([^"]+)"', html))
    for phase in ("smoke", "explore", "ensemble"):
        assert ("curves", f"{phase}:val_loss") in plots  # metric curves per trial per phase
        assert ("failurerate", phase) in plots  # its failure rate against maxFailureRate
        assert f'class="checkpoints checkpoints-{phase}"' in html  # metrics at checkpoints
    assert ("parallel", "explore") in plots  # lr x hidden_dims against val_loss
    assert '"name":"lr=0.01 hidden_dims=32"' in html  # lines named by their sweep point
    assert ("distribution", "val_loss") in plots
    assert ("best", "val_loss") in plots
    assert ("failures", "reasons") in plots
    assert ("timeline", "trials") in plots
    for section in ("summary", "phases", "distributions", "best", "failures", "timeline"):
        assert f'id="{section}"' in html
    # The seed-sweep phase is summarised as mean ± std across its 4 seeds.
    assert "mean ± std across 4 seeds" in html
    ensemble = html.split('class="checkpoints checkpoints-ensemble"')[1].split("</table>")[0]
    assert ensemble.count(" ± ") >= 4
    # Like the quick-test report: Initial ... Final rows with the improvement over the baseline.
    explore = html.split('class="checkpoints checkpoints-explore"')[1].split("</table>")[0]
    assert "Initial" in explore and "Final" in explore and "Baseline" in explore and "Improvement" in explore
    assert 'id="gate-explore"' in html and "<code>phase.best.metrics.r2</code>" in html  # gate values
    assert 'id="promoted-ensemble"' in html
    # Self-contained: plotly.js inline in the head, no tag loads anything (no src, no href).
    tags = _Tags()
    tags.feed(html)
    tags.close()
    assert tags.links == [] and tags.open == [], (tags.links, tags.open)
    assert "Plotly" in html.split("</head>")[0] and "@import" not in html


class _Tags(HTMLParser):
    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href")]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()
