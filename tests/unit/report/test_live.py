from __future__ import annotations

import io
from datetime import timedelta

import pytest
from rich.console import Console

from campaign_operator.api.campaign import (
    BestTrial,
    CampaignState,
    GateStatus,
    PhaseState,
    PhaseStatus,
    TrainingCampaignStatus,
    TrialCounts,
)
from campaign_operator.api.common import TrialState
from campaign_operator.report import live as display
from campaign_operator.report.live import Snapshot

from ..embedded.helpers import T0, finished, trial
from .campaigns import running_campaign

pytestmark = pytest.mark.unit


def phase(failed: int, total: int = 8, skipped: int = 1, max_rate: float = 0.2, **kw: object) -> PhaseStatus:
    counts = TrialCounts(total=total, failed=failed, skipped=skipped, succeeded=total - failed - skipped)
    rate = failed / (total - skipped)
    return PhaseStatus(name="explore", counts=counts, failure_rate=rate, max_failure_rate=max_rate, **kw)


@pytest.mark.parametrize(("failed", "level"), [(0, "ok"), (1, "near"), (2, "over")])
def test_threshold_levels(failed: int, level: str) -> None:
    th = display.threshold(phase(failed))  # 7 counted trials, 20%: one failure allowed
    assert th.level == level and th.allowed == 1
    assert th.text().startswith({"ok": "✓", "near": "⚠", "over": "✗"}[level])


def test_durations_eta_and_preview() -> None:
    assert [display.duration(s) for s in (None, 5, 75, 7300)] == ["—", "5s", "1m15s", "2h01m"]
    p = phase(0, state=PhaseState.RUNNING, estimated_completion_time=T0 + timedelta(seconds=90))
    assert display.eta(p, T0) == "1m30s"
    assert display.eta(phase(0, state=PhaseState.SUCCEEDED), T0) == "done"
    assert display.preview("a\n  b " + "x" * 300, 20) == "a b " + "x" * 15 + "…"


def test_latest_failures_newest_first() -> None:
    trials = [
        finished("old", "p", TrialState.FAILED, 5, reason="TaskError"),
        finished("new", "p", TrialState.FAILED, 50, reason="NonFiniteLoss"),
        finished("ok", "p", TrialState.SUCCEEDED, 60),
    ]
    assert [t.name for t in display.latest_failures(trials)] == ["new", "old"]


def _snap(trials: list, phase_state: PhaseState, state: CampaignState, **kw: object) -> Snapshot:
    p = phase(1, state=phase_state, **kw)
    status = TrainingCampaignStatus(state=state, phases=[p], progress="8/8", start_time=T0, message="done")
    return Snapshot(
        name="demo", status=status, trials=trials, now=T0 + timedelta(seconds=42), runner="runner pid 1"
    )


def test_plain_lines_report_changes_once() -> None:
    running = trial("t1", "explore", TrialState.RUNNING, attempt=1)
    before = _snap([running], PhaseState.RUNNING, CampaignState.RUNNING)
    failed = finished("t1", "explore", TrialState.FAILED, reason="NonFiniteLoss", message="loss is nan")
    gate = GateStatus(expression="phase.best.metrics.r2 > 0.5", passed=True)
    best = BestTrial(trial="t2", metric="val_loss", value=0.25)
    after = _snap([failed], PhaseState.SUCCEEDED, CampaignState.SUCCEEDED, gate=gate, best=best)
    lines = display.plain_lines(before, after)
    assert any("t1 Failed (NonFiniteLoss) loss is nan" in x for x in lines)
    assert any(
        "phase explore Succeeded" in x
        and "14.3% vs max 20% ⚠" in x
        and "gate ✓ passed" in x
        and "best val_loss=0.25 (t2)" in x
        for x in lines
    )
    assert any("campaign demo · Succeeded" in x for x in lines)
    assert display.plain_lines(after, after) == []


def test_rich_view_shows_bars_threshold_gate_and_failures() -> None:
    failed = finished(
        "t1", "explore", TrialState.FAILED, reason="NonFiniteLoss", message="loss is nan at epoch 1"
    )
    gate = GateStatus(expression="x", passed=False)
    snap = _snap([failed], PhaseState.FAILED, CampaignState.FAILED, gate=gate, message="gate does not hold")
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=False).print(display.render(snap))
    text = out.getvalue()
    for expected in (
        "campaign demo",
        "explore",
        "⚠ 14.3%/20%",
        "✗ not met",
        "latest failures",
        "loss is nan",
    ):
        assert expected in text, expected


def test_plain_lines_name_trials_by_their_sweep_point() -> None:
    snap = running_campaign()
    lines = display.plain_lines(None, snap)
    assert any(
        "[teacher] nifty-teacher-" in x and "[symbol=RELIANCE window=2022-01-01..2022-04-30] started" in x
        for x in lines
    ), lines
    assert any("[symbol=TCS window=2022-01-01..2022-04-30] Failed (DatasetError)" in x for x in lines)


def test_plain_display_writes_a_summary_line() -> None:
    out = io.StringIO()
    sink = display.PlainDisplay(out, every_s=1000)
    sink.update(_snap([], PhaseState.RUNNING, CampaignState.RUNNING))
    sink.update(_snap([], PhaseState.RUNNING, CampaignState.RUNNING))
    text = out.getvalue()
    assert text.count("progress: explore Running 8/8") == 1


@pytest.mark.parametrize("width", [80, 120, 200])
def test_live_view_fits_the_width_and_names_trials_by_their_sweep_point(width: int) -> None:
    snap = running_campaign()
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=True, color_system=None).print(display.render(snap))
    lines = out.getvalue().splitlines()
    assert max(len(x) for x in lines) <= width, "\n".join(lines)
    text = out.getvalue()
    # Planned totals: the student phase has created nothing yet, its 6 trials are still counted.
    assert "2/12 trials finished" in text and "0/6" in text, text
    assert "SMOKE RUN" in text and "gates reported, not enforced" in " ".join(text.split())
    assert "symbol=RELIANCE" in text and "symbol=TCS" in text  # the running and the failed trial
    assert "window=2022-01-01..2022-04-30" in text or width < display.WIDE
    assert "could not read prices.csv" in text
    assert "ETA 0s" not in text and " 0s" not in text  # trials still run: an estimate, not 0s
    # The campaign: the teacher's 20 s left, then the student's 6 planned trials, 3 at a time, 10 s each.
    assert "ETA 40s" in text, text


@pytest.mark.parametrize("width", [80, 120, 200])
def test_long_etas_are_shown_whole(width: int) -> None:
    out = io.StringIO()
    snap = running_campaign(planner_eta_s=4000)  # teacher 1h06m40s, then the student's 20 s
    Console(file=out, width=width, force_terminal=True, color_system=None).print(display.render(snap))
    table = out.getvalue().split("Phase", 1)[1]
    assert "1h06m" in table and "1h07m" in table, out.getvalue()


def test_the_widest_phase_rows_fit_80_columns() -> None:
    snap = running_campaign(planner_eta_s=4000)
    wide = [
        p.model_copy(
            update={
                "name": f"{p.name}-distilled",  # 16-17 characters: cut with …, never the line
                "state": PhaseState.SUCCEEDED if i else PhaseState.RUNNING,
                "counts": TrialCounts(total=736, succeeded=90, failed=10, running=16, pending=620),
                "gate": GateStatus(expression="x", passed=False) if i else None,
            }
        )
        for i, p in enumerate(snap.status.phases)
    ]
    status = snap.status.model_copy(update={"phases": wide})
    out = io.StringIO()
    Console(file=out, width=80, force_terminal=True, color_system=None).print(
        display.render(Snapshot(name="nifty", status=status, trials=snap.trials, now=snap.now))
    )
    lines = out.getvalue().splitlines()
    assert max(len(x) for x in lines) <= 80, "\n".join(lines)
    table = "\n".join(lines)
    assert "100/736" in table and "✗ not met" in table and "1h06m" in table and "done" in table, table


def test_phase_eta_is_never_zero_while_a_trial_runs() -> None:
    snap = running_campaign(planner_eta_s=-30)  # the planner's estimate is already past
    teacher = snap.status.phases[0]
    left = display.phase_remaining(teacher, snap.now, snap.trials)
    assert left == pytest.approx(20.0)  # the running trial: 2 of 4 epochs in 20 s
    assert display.eta(teacher, snap.now, snap.trials) == "20s"
    # Before its first epoch a running trial has no pace yet: what is left of a typical one (10 s).
    fresh = snap.trials[0].model_copy(deep=True)
    fresh.status.epoch, fresh.status.start_time = 0, snap.now - timedelta(seconds=4)
    assert display.running_remaining(fresh, snap.now, 10.0) == pytest.approx(6.0)
    assert display.running_remaining(fresh, snap.now) is None


def test_banner_names_what_was_scaled() -> None:
    from campaign_operator.api.campaign import ScaleDown

    assert display.scale_banner(None) is None
    partial = display.scale_banner(ScaleDown(epochs_scale=0.1, max_trials_per_phase=5))
    assert partial == "PARTIAL RUN: at most 5 trial(s) per phase, epochs x 0.1"


def test_spinner_while_ray_starts() -> None:
    out = io.StringIO()
    sink = display.LiveDisplay(Console(file=out, width=80, force_terminal=True, color_system=None))
    sink.waiting("starting local Ray (attempt 1 of 3)")
    sink.live.refresh()
    assert "starting local Ray (attempt 1 of 3)" in out.getvalue()
    sink.close()
    assert str(sink.live.renderable) == ""  # no frozen spinner left as the last screen


def test_the_last_screen_stays_after_close() -> None:
    out = io.StringIO()
    sink = display.LiveDisplay(Console(file=out, width=100, force_terminal=True, color_system=None))
    sink.update(running_campaign())
    sink.close()  # what Ctrl-C ends with: the runner stops, then the display closes
    tail = out.getvalue().split("\x1b[2K")[-8:]
    assert any("symbol=RELIANCE" in x for x in tail) and sink.live.is_started is False


def test_the_screen_kept_after_ctrl_c_shows_interrupted_trials_without_an_eta() -> None:
    from dataclasses import replace

    from campaign_operator.embedded.store import INTERRUPTED

    snap = replace(running_campaign(), runner=INTERRUPTED, runner_alive=False)  # the runner's last update
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=True, color_system=None).print(display.render(snap))
    lines = out.getvalue().splitlines()
    titles = [x.strip() for x in lines]
    assert "interrupted (resumed by the next run)" in titles and "running" not in titles, lines
    etas = [x for x in lines if x.startswith(("teacher", "campaign ")) and x.endswith("s")]
    assert not etas, lines
    assert any("symbol=RELIANCE" in x for x in lines)  # the interrupted trial, by its parameters
    (headline,) = [x for x in lines if x.startswith("campaign nifty")]
    assert "ETA" not in headline and "campaign run` again to resume" in headline, headline
