"""Early termination of a phase's trials (`phase.earlyTermination`): which running trials to stop.

A pure function of the phase's Trials (their spec epochs, state and reported `status.history`), so a
restarted shell decides the same, and stopping a trial changes no other trial's decision: every
trial that reported a value is a peer whatever its state (running, succeeded, failed, stopped), as
Ray Tune keeps the results of every trial it has seen. Only Running trials are judged, and not one
that already reported its last epoch (stopping it saves nothing). A stopped trial ends
Stopped/EarlyTerminated: in the failure-rate denominator, not a failure.

A trial's value at epoch `e` is its metric at the latest reported epoch <= e with a finite value
(the history may be thinned: `lifecycle.bounds`); a trial has *reached* `e` once it reported an epoch
>= e. Values are compared in the objective's direction; ties keep the trial running.

* **asha** (asynchronous successive halving, Ray Tune's ASHAScheduler): rungs at
  `minEpochs * reductionFactor**k` below the trial's epochs. A trial is judged at its current rung
  (the highest it has reached) against the trials that reached that rung so far: with `n` values
  there (its own included), it continues while fewer than `ceil(n / reductionFactor)` of the others
  are strictly better, i.e. while it is in the top 1/reductionFactor. The statuses record no arrival
  times, so "so far" is what they show now: until it reaches its next rung, a trial can still be
  stopped at its current one by better trials arriving there (Ray decides once, on arrival; a
  restarted shell could not tell arrivals apart). At least `minTrials` others must have reached the
  rung (Ray's ASHA has no minimum: `minTrials: 1`).
* **median** (Ray Tune's MedianStoppingRule, with `minEpochs` as its grace period and `minTrials`
  as min_samples_required): at its latest epoch `t > minEpochs`, a trial stops when its best value
  so far is strictly worse than the median, over the other trials that reached `t` (at least
  `minTrials` of them), of their running average from epoch `minEpochs` to `t`.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from campaign_operator.api.campaign import EarlyTermination, EarlyTerminationAlgorithm
from campaign_operator.api.common import Mode, Objective, TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.lifecycle.stoprules import StopDecision

EARLY_TERMINATED = "EarlyTerminated"


@dataclass(frozen=True)
class Curve:
    """One trial's reported values of the judged metric, as scores (higher is better)."""

    name: str
    running: bool
    epochs: int
    """The trial's planned epochs."""
    points: tuple[tuple[int, float], ...]
    """(epoch, score) with a finite value, by epoch."""
    last_epoch: int
    """The latest epoch it reported (0: none)."""

    def score_at(self, epoch: int) -> float | None:
        i = bisect_right(self.points, epoch, key=lambda p: p[0])
        return self.points[i - 1][1] if i else None

    def mean_between(self, start: int, end: int) -> float | None:
        total, count = 0.0, 0
        for e, s in self.points:  # summed in epoch order, as _Peers' running sums are
            if start <= e <= end:
                total, count = total + s, count + 1
        return total / count if count else None


def curve(trial: Trial, metric: str, mode: Mode) -> Curve:
    sign = 1.0 if mode == Mode.MAX else -1.0
    by_epoch: dict[int, float] = {}
    for point in trial.status.history:
        value = point.metrics.get(metric)
        if value is not None and math.isfinite(value):
            by_epoch[point.epoch] = sign * value
    return Curve(
        trial.name,
        trial.status.state == TrialState.RUNNING,
        trial.spec.epochs,
        tuple(sorted(by_epoch.items())),
        max((p.epoch for p in trial.status.history), default=0),
    )


def rungs(min_epochs: int, reduction_factor: int, epochs: int) -> list[int]:
    """ASHA's rungs below `epochs`: min_epochs * reduction_factor**k."""
    out, rung = [], min_epochs
    while rung < epochs:
        out.append(rung)
        rung *= reduction_factor
    return out


class _Peers:
    """The phase's values by rung (asha) and running averages by epoch (median), sorted, each built
    once per decision: judging R running trials against N costs O((R + N) log N) per rung or epoch,
    not O(R * N)."""

    def __init__(self, policy: EarlyTermination, curves: list[Curve]):
        self.policy, self.curves = policy, curves
        self._at: dict[int, list[float]] = {}
        self._means: dict[int, list[float]] = {}
        self._sums: list[tuple[list[int], list[float]]] | None = None

    def scores_at(self, rung: int) -> list[float]:
        """Every value at `rung` of a trial that reached it (sorted)."""
        if rung not in self._at:
            found = (c.score_at(rung) for c in self.curves if c.last_epoch >= rung)
            self._at[rung] = sorted(s for s in found if s is not None)
        return self._at[rung]

    def means_to(self, epoch: int) -> list[float]:
        """Every running average from minEpochs to `epoch` of a trial that reached it (sorted)."""
        if self._sums is None:  # each curve's running sums from minEpochs, in epoch order
            self._sums = []
            for c in self.curves:
                window = [(e, s) for e, s in c.points if e >= self.policy.min_epochs]
                self._sums.append(([e for e, _ in window], list(accumulate(s for _, s in window))))
        if epoch not in self._means:
            means = []
            for c, (epochs, sums) in zip(self.curves, self._sums, strict=True):
                n = bisect_right(epochs, epoch)
                if c.last_epoch >= epoch and n:
                    means.append(sums[n - 1] / n)
            self._means[epoch] = sorted(means)
        return self._means[epoch]


def _without(values: list[float], value: float) -> list[float]:
    """A sorted list less one occurrence of `value` (which it holds)."""
    i = bisect_left(values, value)
    return values[:i] + values[i + 1 :]


def _asha(metric: str, sign: float, c: Curve, peers: _Peers) -> str | None:
    policy = peers.policy
    reached = [r for r in rungs(policy.min_epochs, policy.reduction_factor, c.epochs) if r <= c.last_epoch]
    if not reached:
        return None
    rung = reached[-1]
    own = c.score_at(rung)
    if own is None:
        return None
    at_rung = peers.scores_at(rung)  # holds `own` too: this trial reached its rung
    if len(at_rung) - 1 < policy.min_trials:
        return None
    keep = math.ceil(len(at_rung) / policy.reduction_factor)
    better = len(at_rung) - bisect_right(at_rung, own)
    if better < keep:
        return None
    return (
        f"asha: {metric}={sign * own:.4g} at rung epoch {rung} is not in the top 1/{policy.reduction_factor}"
        f" ({keep} of {len(at_rung)} trials there; the {keep}th best is {sign * at_rung[-keep]:.4g})"
    )


def _median(metric: str, sign: float, c: Curve, peers: _Peers) -> str | None:
    policy = peers.policy
    epoch = c.last_epoch
    if epoch <= policy.min_epochs or not c.points:
        return None
    means = peers.means_to(epoch)
    own = c.mean_between(policy.min_epochs, epoch)
    if own is not None:  # this trial's own average is not its peer
        means = _without(means, own)
    if len(means) < policy.min_trials:
        return None
    median = statistics.median(means)
    best = max(s for _, s in c.points)
    if best >= median:
        return None
    return (
        f"median: best {metric} so far {sign * best:.4g} at epoch {epoch} is worse than the median"
        f" {sign * median:.4g} of {len(means)} other trials' running averages from epoch {policy.min_epochs}"
    )


def decide(
    policy: EarlyTermination, objective: Objective, trials: Sequence[Trial]
) -> dict[str, StopDecision]:
    """The phase's Running trials that `policy` stops now, by name (Stopped/EarlyTerminated)."""
    metric = policy.metric or objective.metric
    mode = policy.mode or objective.mode
    sign = 1.0 if mode == Mode.MAX else -1.0
    curves = [curve(t, metric, mode) for t in trials]
    peers = _Peers(policy, curves)
    judge = _asha if policy.algorithm == EarlyTerminationAlgorithm.ASHA else _median
    out: dict[str, StopDecision] = {}
    for c in curves:
        if not c.running or c.last_epoch >= c.epochs:
            continue
        message = judge(metric, sign, c, peers)
        if message is not None:
            out[c.name] = StopDecision(TrialState.STOPPED, EARLY_TERMINATED, message, c.last_epoch)
    return out


__all__ = ["EARLY_TERMINATED", "Curve", "curve", "decide", "rungs"]
