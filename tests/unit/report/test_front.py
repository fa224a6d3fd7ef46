"""The report's Pareto-front chart: a multi-objective phase planned by the real planner, drawn by its
first two objectives with the front highlighted; a single-objective phase has none."""

from __future__ import annotations

import pytest

from campaign_operator.api.campaign import TrainingCampaignStatus
from campaign_operator.api.trial import BestEpoch, MetricPoint, Trial
from campaign_operator.report import html
from campaign_operator.report.front import front_figure
from campaign_operator.report.live import Snapshot, plain_lines
from campaign_operator.report.results import CampaignData

from ..planner.sim import T0, World, campaign
from ..planner.test_pareto import by_params, two_phases

pytestmark = pytest.mark.unit


def with_history(trial: Trial) -> Trial:
    """A finished trial as the shells leave it: its metrics also as its one epoch and its best."""
    metrics = dict(trial.status.metrics)
    status = trial.status.model_copy(
        update={
            "epoch": 1,
            "history": [MetricPoint(epoch=1, metrics=metrics)],
            "best": BestEpoch(epoch=1, metrics=metrics),
        }
    )
    return trial.model_copy(update={"status": status})


@pytest.fixture(scope="module")
def finished() -> CampaignData:
    w = World(campaign(two_phases()))
    p = w.run(by_params)
    return CampaignData(w.campaign, p.status, [with_history(t) for t in w.trials.values()])


def test_the_front_is_drawn_by_the_first_two_objectives(finished: CampaignData) -> None:
    explore = finished.campaign.spec.phases[0]
    trials = [t for t in finished.trials if t.spec.phase == "explore"]
    fig = front_figure(explore, trials)
    assert fig is not None
    dominated, front = fig.data
    assert front.name == "Pareto front (3)"
    assert list(front.x) == [1.5, 0.8, 0.1] and list(front.y) == [0.8, 0.3, 0.1]  # by sharpe, best first
    assert list(dominated.x) == [0.2] and list(dominated.y) == [0.9]  # risk 3: worse on both
    assert fig.layout.xaxis.title.text == "sharpe (max)" and fig.layout.yaxis.title.text == "rmse (min)"
    by_name = {t.name: t for t in trials}
    assert all(text.split("<br>")[0] in by_name for text in front.text)


def test_the_report_has_a_front_chart_only_for_the_multi_objective_phase(finished: CampaignData) -> None:
    page = html.build_report(finished)
    assert page.count('data-plot="front"') == 1
    assert 'data-plot="front" data-key="explore"' in page
    final = finished.campaign.spec.phases[1]
    assert front_figure(final, [t for t in finished.trials if t.spec.phase == "final"]) is None


def test_the_plain_progress_line_names_the_fronts_size(finished: CampaignData) -> None:
    before = Snapshot(name="mo", status=TrainingCampaignStatus(), trials=[], now=T0, runner=None)
    after = Snapshot(name="mo", status=finished.status, trials=finished.trials, now=T0, runner=None)
    [explore] = [line for line in plain_lines(before, after) if "phase explore " in line]
    assert "Pareto front of 3 trial(s)" in explore and "best sharpe=1.5" in explore
