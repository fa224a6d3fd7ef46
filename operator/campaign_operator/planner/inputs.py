"""Phase inputs: a trial consumes the outputs of the trial of an earlier phase that has the same
values of the input's `match` parameters (the student of (symbol, window) gets its teacher's).

One matching rule serves both plan time (semantics: each trial matches exactly one planned trial of
fromPhase) and run time (plan(): the consumer trial's spec.inputs, or why it is skipped), so what
`campaign validate` accepts is what the planner can resolve.

Run time, when the consumer trial is created (its phase starts only once fromPhase has ended):
- the matched trial Succeeded or Stopped with status.outputs: spec.inputs[name] = that URI;
- it was Skipped: this trial is Skipped too, reason InputSkipped;
- it Failed or left no outputs: Skipped, reason InputUnavailable. Its failure already counts in its
  own phase's failure rate; counting it again here would fail the consumer phase for the same cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaign_operator.api.campaign import Phase, PhaseInput
from campaign_operator.api.common import TrialState
from campaign_operator.api.trial import Trial
from campaign_operator.lifecycle.outcomes import point_label

from .expressions import excerpt
from .naming import canonical_json

INPUT_SKIPPED = "InputSkipped"
INPUT_UNAVAILABLE = "InputUnavailable"
INPUT_AMBIGUOUS = "InputAmbiguous"
_ABSENT = {"absent": True}
"""Stands for a match parameter a trial does not have: such a trial matches no trial that has it."""


def match_key(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The values of `keys` in one spelling (100.0 and 100 alike, as trial names spell them)."""
    return canonical_json([[k, params[k]] if k in params else [k, _ABSENT] for k in keys])


def shown(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    """`symbol=TCS window=2022-01-01..2022-06-30`: a trial's values of `keys`, as trial messages name
    a trial (a key it lacks as `key=(unset)`)."""
    return point_label({k: params.get(k, "(unset)") for k in keys})


def index_by(items: Iterable[tuple[str, Mapping[str, Any]]], keys: Sequence[str]) -> dict[str, list[str]]:
    """match key -> names of the (name, parameters) items that have it, in their order."""
    out: dict[str, list[str]] = {}
    for name, params in items:
        out.setdefault(match_key(params, keys), []).append(name)
    return out


class InputError(ValueError):
    """A consumer trial that matches several trials of fromPhase: picking one would be arbitrary.
    (semantics rejects this before anything runs, unless a promoted parameter decides the match.)"""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class InputDecision:
    inputs: dict[str, str] = field(default_factory=dict)
    skip: tuple[str, str] | None = None
    """(reason, message) when an input is not there to consume."""


class InputMatcher:
    """The trials of each input's fromPhase, indexed once per plan by the input's match keys."""

    def __init__(self, phase: Phase, trials_by_phase: Mapping[str, Sequence[Trial]]):
        self.phase = phase
        self.trials = {t.name: t for i in phase.inputs for t in trials_by_phase.get(i.from_phase, [])}
        self.index = [
            index_by(((t.name, t.spec.parameters) for t in trials_by_phase.get(i.from_phase, [])), i.match)
            for i in phase.inputs
        ]

    def decide(self, params: Mapping[str, Any]) -> InputDecision:
        """This trial's inputs, or why it is skipped (the first input, in order, that is not there).
        Raises InputError when an input matches several trials."""
        inputs: dict[str, str] = {}
        for spec, index in zip(self.phase.inputs, self.index, strict=True):
            names = index.get(match_key(params, spec.match), [])
            if len(names) > 1:
                raise InputError(
                    f"input {spec.name}: the trial with {shown(params, spec.match)} matches"
                    f" {len(names)} trials of phase {spec.from_phase} ({', '.join(names[:3])});"
                    f" add the parameter that tells them apart to inputs.match"
                )
            if not names:
                missing = f"no trial of phase {spec.from_phase} has {shown(params, spec.match)}"
                return InputDecision(skip=(INPUT_UNAVAILABLE, f"input {spec.name}: {missing}"))
            uri, skip = _consumable(spec, self.trials[names[0]])
            if skip is not None:
                return InputDecision(skip=skip)
            assert uri is not None
            inputs[spec.name] = uri
        return InputDecision(inputs=inputs)


def _consumable(spec: PhaseInput, source: Trial) -> tuple[str | None, tuple[str, str] | None]:
    status = source.status
    what = f"input {spec.name}: trial {source.name} of phase {spec.from_phase}"
    if status.state == TrialState.SKIPPED:
        why = f"{status.reason}: {status.message}" if status.message else str(status.reason)
        return None, (INPUT_SKIPPED, f"{what} was skipped ({excerpt(why, 160)})")
    if status.state in (TrialState.SUCCEEDED, TrialState.STOPPED) and status.outputs:
        return status.outputs, None
    why = f" ({status.reason})" if status.reason else ""
    if status.state == TrialState.FAILED:
        return None, (INPUT_UNAVAILABLE, f"{what} failed{why}")
    return None, (INPUT_UNAVAILABLE, f"{what} {status.state.value.lower()}{why} without outputs")
