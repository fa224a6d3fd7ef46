"""The HTML report of a real (planned) campaign: one well-formed, self-contained file whose charts
carry legends, parameter labels, the threshold mark, gate values and parallel coordinates."""

from __future__ import annotations

import itertools
import re
from html.parser import HTMLParser

import pytest

from campaign_operator.report import html
from campaign_operator.report.live import THRESHOLD_COLOR

from .campaigns import finished_campaign

pytestmark = pytest.mark.unit

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


class Tags(HTMLParser):
    """Every tag closed in order; every src/href attribute collected."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href")]
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


@pytest.fixture(scope="module")
def page() -> str:
    return html.build_report(finished_campaign())


def charts(page: str) -> dict[tuple[str, str], str]:
    """Each chart's div (kind, key) -> its markup, figure JSON included."""
    out = {}
    pieces = page.split('<div class="chart" ')[1:]
    for piece in pieces:
        m = re.match(r'data-plot="([a-z]+)" data-key="([^"]+)"', piece)
        assert m, piece[:200]
        out[(m[1], m[2])] = piece
    return out


def test_report_is_well_formed_and_self_contained(page: str) -> None:
    tags = Tags()
    tags.feed(page)
    tags.close()
    assert page.startswith("<!DOCTYPE html>") and tags.problems == [] and tags.open == []
    assert tags.links == []  # no script src, no stylesheet link, no image: nothing fetched
    assert "@import" not in page and "url(http" not in page
    head = page.split("</head>")[0]
    assert "Plotly" in head and len(head) > 1_000_000  # plotly.js itself, inline: opens offline


def test_every_chart_has_a_legend_and_names_lines_by_their_sweep_point(page: str) -> None:
    found = charts(page)
    assert set(found) >= {
        ("curves", "teacher:val_loss"),
        ("curves", "teacher:loss"),
        ("failurerate", "teacher"),
        ("parallel", "teacher"),
        ("distribution", "val_loss"),
        ("best", "val_loss"),
        ("failures", "reasons"),
        ("timeline", "trials"),
    }, set(found)
    for key, markup in found.items():
        if key[0] != "parallel":  # parallel coordinates: a colour scale instead of a legend
            assert '"showlegend":true' in markup, key
    curves = found[("curves", "teacher:val_loss")]
    assert '"name":"symbol=RELIANCE window=2022-01-01..2022-04-30"' in curves  # legend entry
    # The same label at the line's end, in the plot's coordinates (never outside its range).
    assert '"showarrow":true,"text":"symbol=RELIANCE window=2022-01-01..2022-04-30"' in curves
    assert '"ayref":"y"' in curves
    # Hover shows the line's parameters, one per line.
    assert "symbol=RELIANCE\\u003cbr\\u003ewindow=2022-01-01..2022-04-30" in curves
    assert '"tickformat":"d"' in curves and '"dtick":1' in curves  # integer epochs
    assert '"dash":"dot"' in curves  # the failed trial


def test_threshold_is_one_mark_everywhere(page: str) -> None:
    rate = charts(page)[("failurerate", "teacher")]
    assert f'"color":"{THRESHOLD_COLOR}","dash":"dash"' in rate
    assert "maxFailureRate 20%" in rate
    assert f"border-bottom:2px dashed {THRESHOLD_COLOR}" in page  # the tables' threshold cell
    assert '<span class="threshold">max 20%</span>' in page


def test_gate_values_promotion_parallel_coordinates_and_banner(page: str) -> None:
    gate = page.split('id="gate-teacher"')[1].split("</div>")[0]
    assert "<code>phase.best.metrics.val_loss &lt; 2.0</code>" in gate and "✓ passed" in gate
    assert "<td><code>phase.best.metrics.val_loss</code></td><td>0.2</td>" in gate
    promoted = page.split('id="promoted-student"')[1].split("</div>")[0]
    assert "from teacher" in promoted and "<td>RELIANCE</td>" in promoted
    parallel = charts(page)[("parallel", "teacher")]
    assert '"type":"parcoords"' in parallel
    assert all(f'"label":"{x}"' in parallel for x in ("symbol", "window", "val_loss (min)")), parallel[:3000]
    assert '<p class="banner" id="scale-down">SMOKE RUN:' in page
    failures = page.split('id="failures"')[1]
    assert "symbol=TCS, window=2022-01-01..2022-04-30" in failures  # the failure's parameters


def test_gate_terms_read_the_values_the_gate_saw() -> None:
    values = {"best": {"metrics": {"r2": 0.8}}, "counts": {"failed": 1}}
    assert html.gate_terms("phase.best.metrics.r2 > 0.5 && phase.counts.failed < 2", values) == [
        ("phase.best.metrics.r2", 0.8),
        ("phase.counts.failed", 1),
    ]
    assert html.gate_terms("phase.best.metrics.missing > 0", values) == [("phase.best.metrics.missing", None)]


def test_line_end_labels_move_apart_in_order() -> None:
    placed = html.spread([0.50, 0.51, 0.90, 0.505], 0.1)
    assert sorted(range(4), key=lambda i: placed[i]) == [0, 3, 1, 2]  # the lines' order kept
    ordered = sorted(placed)
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(ordered))
    assert sum(placed) == pytest.approx(0.50 + 0.51 + 0.90 + 0.505)  # centred on the ends
    assert html.spread([0.2, 0.8], 0.1) == pytest.approx([0.2, 0.8])  # far apart: where they end
    assert html.spread([0.0, 0.0, 0.0], 0.1, lo=0.0, hi=1.0) == pytest.approx([0.0, 0.1, 0.2])  # in range


@pytest.mark.parametrize(("last", "step"), [(2, 1), (8, 1), (9, 2), (40, 5), (2000, 500)])
def test_epoch_ticks_are_integers(last: int, step: int) -> None:
    assert html.epoch_step(last) == step


def test_an_unfinished_run_that_no_runner_holds_says_so(page: str) -> None:
    from dataclasses import replace

    from campaign_operator.api.campaign import CampaignState
    from campaign_operator.embedded.store import INTERRUPTED

    data = finished_campaign()
    stopped = replace(
        data, status=data.status.model_copy(update={"state": CampaignState.RUNNING}), runner=INTERRUPTED
    )
    assert f"<dt>Runner</dt><dd>{INTERRUPTED}</dd>" in html.build_report(stopped)
    assert "<dt>Runner</dt>" not in page  # a finished run (no runner note)
