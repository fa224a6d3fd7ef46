"""Every check of a campaign that needs no training: what a schema cannot express.

`check_campaign` is the one function both `campaign validate` (through `load_campaign`) and the
operator (through `plan()`, before the first Trial is created) judge a manifest with:

- the trial cap: the sweeps' size against `spec.maxTrials`;
- sweeps: `matrix.exclude`/`include` naming an axis the matrix lacks, an `exclude` that removes
  every combination (a phase of no trials);
- user CEL (`when`, `gate`, `skipWhen`): it compiles, and it is checked against the variables
  its context really has (`phases.<dependsOn>`, `phase`, `params`); an unknown name, field, phase
  or metric is named with what exists, comparisons of a number with a string and int/double
  arithmetic are reported; `skipWhen` is then evaluated over every trial's parameters;
- stop rules: finite thresholds;
- early termination: `minEpochs` below the phase's epochs;
- metric names (objective, promotion, stop rules, early stopping and termination, gates) against
  what a built-in task reports (`TASK_METRICS`); for a user task a name no built-in task reports is a warning;
- promotion: `fromPhase.keys` that no trial of the source phase has;
- dataset templates (`data/{symbol.name}.parquet`): well formed, naming parameters the phase's
  trials have, resolving to a value over every planned trial;
- phase inputs: fromPhase is an earlier phase, the match keys are parameters of both phases, and each
  planned trial matches exactly one planned trial of fromPhase.

Each problem starts with the offending field's path and ends with what would fix it; messages are
bounded (a few hundred characters), the important part first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from campaign_operator.api.base import MESSAGE_BUDGET, bounded
from campaign_operator.api.campaign import Phase, SearchAlgorithm, SearchSweep, TrainingCampaign
from campaign_operator.api.common import TASK_METRICS, DatasetSpec, StopRule, task_metrics
from campaign_operator.lifecycle.outcomes import point_label

from .expressions import (
    DYN,
    PROBLEM_MAX,
    CelType,
    Expression,
    ExpressionError,
    check,
    compile_expression,
    did_you_mean,
    excerpt,
    map_of,
    names_list,
)
from .inputs import index_by, match_key, shown
from .pareto import objectives_problems, promotion_problems
from .sweeps import count_points, raw_points, search_of, typical_points
from .templates import DatasetTemplateError, Template, TemplateError, dataset_fields, parse
from .trials import dataset_field, merged_parameters, phase_trials, point_name, skip_reason, trial_dataset
from .views import phase_view_type

KNOWN_METRICS = frozenset(m for names in TASK_METRICS.values() for m in names)
"""Every metric some built-in task reports: a user task's metric outside it is likely a typo."""
METRICS_SHOWN = 16
_CACHE_SIZE = 64


@dataclass(frozen=True)
class Findings:
    """What `check_campaign` found: errors reject the manifest, warnings only inform."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def add(self, where: str, message: str, warning: bool = False) -> None:
        line = f"{where}: {bounded(message, PROBLEM_MAX)}"
        target = self.warnings if warning else self.errors
        if line not in target:
            target.append(line)


def _task(campaign: TrainingCampaign, phase: Phase) -> str:
    return phase.task or campaign.spec.template.task


def _metric_problem(task: str, metric: str) -> tuple[str, bool] | None:
    """(message, is_warning) when `task` does not report `metric`; None when it does."""
    reported = task_metrics(task)
    if reported is None:
        if metric in KNOWN_METRICS:
            return None
        return (
            f"no built-in task reports '{metric}'{did_you_mean(metric, KNOWN_METRICS)};"
            f" make sure the user task {task} does",
            True,
        )
    if metric in reported:
        return None
    return (
        f"task {task} never reports '{metric}'{did_you_mean(metric, reported)};"
        f" it reports: {names_list(reported, METRICS_SHOWN)}",
        False,
    )


def _unknown_metric(task: str) -> Callable[[str, str], tuple[str, bool]]:
    def explain(where: str, metric: str) -> tuple[str, bool]:
        problem = _metric_problem(task, metric)
        assert problem is not None
        message, warning = problem
        return f"{where}.{metric}: {message}", warning

    return explain


def _view(campaign: TrainingCampaign, phase: Phase, parameters: Collection[str] | None) -> CelType:
    task = _task(campaign, phase)
    metrics = task_metrics(task)
    return phase_view_type(
        metrics if metrics is not None else KNOWN_METRICS,
        _unknown_metric(task),
        parameters,
        [o.metric for o in phase.objectives or ()],
    )


class _Checker:
    def __init__(self, campaign: TrainingCampaign):
        self.campaign = campaign
        self.spec = campaign.spec
        self.report = _Report()
        self.names = [p.name for p in self.spec.phases]
        self.parameters: dict[str, frozenset[str] | None] = {}
        """Parameter names of each phase's trials (None: unknown, e.g. beyond the trial cap)."""

    # -- the trial cap and sweeps ----------------------------------------------------------------
    def trial_cap(self) -> bool:
        sizes = {p.name: count_points(p.sweep) for p in self.spec.phases}
        total = sum(sizes.values())
        if total <= self.spec.max_trials:
            return True
        detail = ", ".join(f"{n}: {s}" for n, s in sizes.items())
        self.report.add(
            "spec.maxTrials",
            f"the sweeps expand to {total} trials ({detail}), more than maxTrials={self.spec.max_trials};"
            " raise spec.maxTrials (at most 100000) or shrink the sweeps",
        )
        return False

    def matrix(self, i: int, phase: Phase, expandable: bool) -> bool:
        """False when the matrix itself is wrong (so its points mean nothing)."""
        sweep = phase.sweep
        if sweep is None or sweep.matrix is None:
            return True
        matrix, where = sweep.matrix, f"spec.phases[{i}].sweep.matrix"
        axes = sorted(matrix.axes)
        ok = True
        for kind, entries in (("exclude", matrix.exclude), ("include", matrix.include)):
            for j, entry in enumerate(entries):
                unknown = sorted(set(entry) - set(axes))
                if unknown:
                    hint = did_you_mean(unknown[0], axes) if len(unknown) == 1 else ""
                    self.report.add(
                        f"{where}.{kind}[{j}]",
                        f"unknown axis {unknown}{hint}; axes are {axes}"
                        + ("" if kind == "exclude" else " (an include entry sets the matrix's axes)"),
                    )
                    ok = False
        if ok and expandable and not matrix.include and not raw_points(sweep):
            product = math.prod(len(v) for v in matrix.axes.values())
            self.report.add(
                f"{where}.exclude",
                f"removes all {product} combinations of the axes ({' x '.join(axes)}), so the phase"
                " would run no trial; remove an exclude entry or add matrix.include",
            )
            ok = False
        return ok

    # -- parameters ---------------------------------------------------------------------------------
    def phase_parameters(self, phase: Phase, expandable: bool) -> frozenset[str] | None:
        if not expandable:
            return None
        promoted = self.promoted_keys(phase)
        if promoted is None and phase.from_phase is not None:
            return None
        base = set(self.spec.template.hyperparameters) | set(phase.hyperparameters) | set(promoted or ())
        keys: set[str] = set()
        for point in typical_points(phase):
            keys |= point.params.keys()
        return frozenset(base | keys)

    def promoted_keys(self, phase: Phase) -> frozenset[str] | None:
        promo = phase.from_phase
        if promo is None:
            return frozenset()
        if promo.keys is not None:
            return frozenset(promo.keys)
        source_keys = self.parameters.get(promo.phase)
        if source_keys is None:
            return None
        source = next((p for p in self.spec.phases if p.name == promo.phase), None)
        seeds = {"seed"} | ({s.seeds.parameter} if source and (s := source.sweep) and s.seeds else set())
        return source_keys - seeds

    def promotion(self, i: int, phase: Phase) -> None:
        promo = phase.from_phase
        if promo is None:
            return
        source = next((p for p in self.spec.phases if p.name == promo.phase), None)
        if source is None:
            return  # the CRD's rules (fromPhase in dependsOn, dependsOn earlier) say so
        for path, problem in promotion_problems(promo, source):
            self.report.add(f"spec.phases[{i}].fromPhase.{path}", problem)
        if promo.metric is not None and not source.objectives:
            self.metric(f"spec.phases[{i}].fromPhase.metric", _task(self.campaign, source), promo.metric)
        source_keys = self.parameters.get(promo.phase)
        if promo.keys is not None and source_keys is not None:
            missing = [k for k in promo.keys if k not in source_keys]
            if missing:
                self.report.add(
                    f"spec.phases[{i}].fromPhase.keys",
                    f"{missing} {'is' if len(missing) == 1 else 'are'} not a parameter of phase"
                    f" {promo.phase}'s trials{did_you_mean(missing[0], source_keys)};"
                    f" its parameters are: {names_list(source_keys)}",
                )

    # -- metrics and stop rules ----------------------------------------------------------------
    def metric(self, where: str, task: str, metric: str) -> None:
        problem = _metric_problem(task, metric)
        if problem is not None:
            self.report.add(where, *problem)

    def stop_rules(self, where: str, rules: list[StopRule], tasks: Collection[str]) -> None:
        for j, rule in enumerate(rules):
            if not math.isfinite(rule.threshold):
                self.report.add(
                    f"{where}[{j}].threshold",
                    f"must be a finite number, got {rule.threshold}: a comparison with it"
                    f" {'never holds' if math.isnan(rule.threshold) else 'is decided before training'};"
                    " write the value the metric must cross",
                )
            for task in sorted(tasks):
                self.metric(f"{where}[{j}].metric", task, rule.metric)

    def metrics(self) -> None:
        spec = self.spec
        tasks = {_task(self.campaign, p) for p in spec.phases}
        self.stop_rules("spec.template.stopRules", spec.template.stop_rules, tasks)
        if spec.template.early_stopping is not None:
            early = spec.template.early_stopping
            self._min_delta("spec.template.earlyStopping.minDelta", early.min_delta)
            for task in sorted({_task(self.campaign, p) for p in spec.phases if p.early_stopping is None}):
                self.metric("spec.template.earlyStopping.metric", task, early.metric)
        ranked_by_spec = [p for p in spec.phases if p.objective is None and not p.objectives]
        for task in sorted({_task(self.campaign, p) for p in ranked_by_spec}):
            self.metric("spec.objective.metric", task, spec.objective.metric)
        for i, phase in enumerate(spec.phases):
            task = _task(self.campaign, phase)
            where = f"spec.phases[{i}]"
            if phase.objective is not None:
                self.metric(f"{where}.objective.metric", task, phase.objective.metric)
            for j, objective in enumerate(phase.objectives or ()):
                self.metric(f"{where}.objectives[{j}].metric", task, objective.metric)
            for path, problem in objectives_problems(phase):
                self.report.add(f"{where}.{path}", problem)
            self.stop_rules(f"{where}.stopRules", phase.stop_rules, {task})
            if phase.early_stopping is not None:
                self._min_delta(f"{where}.earlyStopping.minDelta", phase.early_stopping.min_delta)
                self.metric(f"{where}.earlyStopping.metric", task, phase.early_stopping.metric)
            if phase.early_termination is not None:
                self.early_termination(f"{where}.earlyTermination", phase, task)
            if (search := search_of(phase)) is not None:
                self.search(f"{where}.sweep.search", phase, search)

    def search(self, where: str, phase: Phase, search: SearchSweep) -> None:
        if search.algorithm == SearchAlgorithm.TPE and search.startup_trials >= search.trials:
            self.report.add(
                f"{where}.startupTrials",
                f"{search.startup_trials} random trials before TPE's model is fitted, and the budget is"
                f" {search.trials}: every trial is random; lower startupTrials or raise trials",
                warning=True,
            )
        if phase.objectives and search.algorithm == SearchAlgorithm.CMAES:
            self.report.add(
                f"{where}.algorithm",
                "cmaes minimises one objective and this phase has objectives (a Pareto front):"
                " use algorithm tpe (multi-objective TPE), random or qmc, or give the phase one objective",
            )

    def early_termination(self, where: str, phase: Phase, task: str) -> None:
        policy = phase.early_termination
        assert policy is not None
        if policy.metric is not None:
            self.metric(f"{where}.metric", task, policy.metric)
        epochs = phase.epochs or self.spec.template.epochs
        if policy.min_epochs >= epochs:
            self.report.add(
                f"{where}.minEpochs",
                f"must be below the phase's epochs ({epochs}), got {policy.min_epochs}: no trial would"
                " ever be judged; lower minEpochs or raise epochs",
            )

    def _min_delta(self, where: str, value: float) -> None:
        if not math.isfinite(value):
            self.report.add(where, f"must be a finite number, got {value}")

    # -- CEL ----------------------------------------------------------------------------------------
    def expressions(self, i: int, phase: Phase, evaluate_skips: bool) -> None:
        where = f"spec.phases[{i}]"
        sources: list[tuple[str, str, dict[str, CelType]]] = []
        if phase.when is not None:
            sources.append((f"{where}.when", phase.when, {"phases": self.phases_type(i, phase)}))
        if phase.gate is not None:
            view = _view(self.campaign, phase, self.parameters.get(phase.name))
            sources.append((f"{where}.gate.expression", phase.gate.expression, {"phase": view}))
        params = map_of(DYN, self.parameters.get(phase.name), self.unknown_parameter(phase))
        sources += [
            (f"{where}.skipWhen[{j}].expression", rule.expression, {"params": params})
            for j, rule in enumerate(phase.skip_when)
        ]
        sound = True
        for path, source, variables in sources:
            expression = self.compiled(path, source)
            if expression is None:
                sound = False
                continue
            for finding in check(expression, variables):
                self.report.add(path, finding.message, finding.warning)
                sound = sound and finding.warning
        if sound and evaluate_skips and phase.skip_when and phase.from_phase is None:
            self.skips(i, phase)

    def compiled(self, path: str, source: str) -> Expression | None:
        try:
            return compile_expression(path, source)
        except ExpressionError as e:
            self.report.add(path, e.problem + f" (in `{excerpt(source)}`)")
            return None

    def phases_type(self, i: int, phase: Phase) -> CelType:
        deps = list(phase.depends_on)
        earlier = self.names[:i]

        def unknown(_: str, name: str) -> tuple[str, bool]:
            fix = f"spec.phases[{i}].dependsOn"
            if name in earlier:
                why = f"{name} is not in dependsOn {deps}; add it to {fix} (when reads only those phases)"
            elif name in self.names:
                why = f"{name} is listed after this phase; when can only read earlier phases named in {fix}"
            else:
                why = (
                    f"no phase is named {name}{did_you_mean(name, self.names)};"
                    f" when can read: {names_list(deps)}"
                )
            return f"phases.{name}: {why}", False

        entries = {
            d: _view(self.campaign, p, self.parameters.get(d))
            for d in deps
            for p in self.spec.phases
            if p.name == d
        }
        return map_of(DYN, deps, unknown, entries)

    def unknown_parameter(self, phase: Phase) -> Callable[[str, str], tuple[str, bool]]:
        def explain(_: str, key: str) -> tuple[str, bool]:
            known = self.parameters.get(phase.name) or frozenset()
            return (
                f"params.{key}: no trial of phase {phase.name} has a parameter '{key}'"
                f"{did_you_mean(key, known)}; its parameters are: {names_list(known)}"
                " (use has(params.x) for one only some trials have)",
                False,
            )

        return explain

    def skips(self, i: int, phase: Phase) -> None:
        """skipWhen over every trial's merged parameters, as plan() will evaluate it."""
        for point in typical_points(phase):
            params = merged_parameters(self.campaign, phase, None, point.params)
            try:
                skip_reason(phase, i, params)
            except ExpressionError as e:
                self.report.add(
                    e.field,
                    f"{e.problem}, for the trial with parameters {excerpt(repr(point.params), 120)}"
                    f" (in `{excerpt(e.expression)}`)",
                )
                return

    # -- dataset templates --------------------------------------------------------------------------
    def dataset(self, i: int, phase: Phase, expandable: bool) -> None:
        dataset = phase.dataset or self.spec.template.dataset
        if dataset is None:
            return
        where = dataset_field(self.campaign, i)
        templates = self.templates(where, dataset)
        known = self.parameters.get(phase.name)
        if templates is None or known is None:
            return
        unknown = [
            (name, ref)
            for name, template in templates.items()
            for ref in template.references
            if ref[0] not in known
        ]
        for name, ref in unknown:
            self.report.add(
                f"{where}.{name}",
                f"{{{'.'.join(ref)}}}: no trial of phase {phase.name} has a parameter '{ref[0]}'"
                f"{did_you_mean(ref[0], known)}; its parameters are: {names_list(known)}",
            )
        roots = {ref[0] for template in templates.values() for ref in template.references}
        if unknown or not roots or not expandable or self.uncertain(phase, roots):
            return
        for point in typical_points(phase):
            try:
                trial_dataset(
                    self.campaign, phase, merged_parameters(self.campaign, phase, None, point.params)
                )
            except DatasetTemplateError as e:
                self.report.add(
                    f"{where}.{e.field}",
                    f"{e.problem} (in the trial of phase {phase.name} with"
                    f" {excerpt(point_label(point.params), 100)})",
                )
                return

    def templates(self, where: str, dataset: DatasetSpec) -> dict[str, Template] | None:
        """Each field's parsed template; None when one is malformed (reported)."""
        templates: dict[str, Template] = {}
        for name, text in dataset_fields(dataset):
            try:
                templates[name] = parse(text)
            except TemplateError as e:
                self.report.add(f"{where}.{name}", e.problem)
        return templates if len(templates) == len(list(dataset_fields(dataset))) else None

    def uncertain(self, phase: Phase, keys: Collection[str]) -> bool:
        """Whether a value of one of `keys` is promoted from an earlier phase's best trial, so only
        known once that phase has run (a sweep point's own value still wins over it)."""
        if phase.from_phase is None:
            return False
        promoted = self.promoted_keys(phase)
        points = typical_points(phase)
        return any(
            (promoted is None or key in promoted) and not all(key in p.params for p in points) for key in keys
        )

    # -- phase inputs ---------------------------------------------------------------------------------
    def inputs(self, i: int, phase: Phase, expandable: bool) -> None:
        names = [spec.name for spec in phase.inputs]
        for j, spec in enumerate(phase.inputs):
            where = f"spec.phases[{i}].inputs[{j}]"
            if names.index(spec.name) != j:
                self.report.add(
                    f"{where}.name",
                    f"{spec.name} is also inputs[{names.index(spec.name)}].name;"
                    " give each input its own name",
                )
            source = self.input_source(where, i, spec.from_phase)
            if source is None or not self.match_keys(where, spec.match, (phase, source)):
                continue
            if (
                expandable
                and not self.uncertain(phase, spec.match)
                and not self.uncertain(source, spec.match)
            ):
                self.one_to_one(where, i, self.names.index(source.name), spec.match)

    def input_source(self, where: str, i: int, name: str) -> Phase | None:
        if name not in self.names:
            self.report.add(
                f"{where}.fromPhase",
                f"no phase is named {name}{did_you_mean(name, self.names)};"
                f" earlier phases are: {names_list(self.names[:i])}",
            )
            return None
        if self.names.index(name) >= i:
            where_it_is = "this phase" if self.names.index(name) == i else "listed after this phase"
            self.report.add(
                f"{where}.fromPhase",
                f"{name} is {where_it_is}; a phase's inputs come from an earlier phase (also in dependsOn)",
            )
            return None
        return self.spec.phases[self.names.index(name)]

    def match_keys(self, where: str, keys: list[str], phases: tuple[Phase, Phase]) -> bool:
        ok = True
        for phase in phases:
            known = self.parameters.get(phase.name)
            missing = [k for k in keys if known is not None and k not in known]
            if missing:
                ok = False
                self.report.add(
                    f"{where}.match",
                    f"{missing} {'is' if len(missing) == 1 else 'are'} not a parameter of phase"
                    f" {phase.name}'s trials{did_you_mean(missing[0], known or ())};"
                    f" its parameters are: {names_list(known or ())}",
                )
        return ok and all(self.parameters.get(p.name) is not None for p in phases)

    def one_to_one(self, where: str, i: int, source: int, keys: list[str]) -> None:
        """Each planned trial of phase i matches exactly one planned trial of `source` (the same
        sample of it under spec.scaleDown), as plan() will look it up."""
        try:
            consumers, producers = self.planned(i), self.planned(source)
        except ExpressionError:
            return  # a skipWhen rule that cannot be evaluated: reported by expressions()
        index = index_by(producers, keys)
        wrong = [params for _, params in consumers if len(index.get(match_key(params, keys), [])) != 1]
        if not wrong:
            return
        source_name = self.names[source]
        self.report.add(
            f"{where}.match",
            f"{len(wrong)} of {len(consumers)} trials match no or several trials of phase {source_name}"
            f" on {keys} (each must match exactly one: align the sweeps or change match): "
            + "; ".join(self.matched(params, index, keys) for params in wrong[:2]),
        )

    def planned(self, i: int) -> list[tuple[str, dict[str, Any]]]:
        """(name, parameters) of the trials plan() creates for phase i (before promotion): under
        spec.scaleDown its sample, which reads skipWhen; otherwise every point, no CEL evaluated."""
        phase = self.spec.phases[i]
        if self.spec.scale_down is not None:
            return [(t.name, t.parameters) for t in phase_trials(self.campaign, i)]
        return [
            (
                point_name(self.campaign.metadata.name, phase.name, p),
                merged_parameters(self.campaign, phase, None, p.params),
            )
            for p in typical_points(phase)
        ]

    @staticmethod
    def matched(params: dict[str, Any], index: dict[str, list[str]], keys: list[str]) -> str:
        found = len(index.get(match_key(params, keys), []))
        return f"{excerpt(shown(params, keys), 70)} matches {found or 'none'}"

    # -- all of it ---------------------------------------------------------------------------------
    def run(self) -> Findings:
        expandable = self.trial_cap()
        for i, phase in enumerate(self.spec.phases):
            sweep_ok = self.matrix(i, phase, expandable)
            self.parameters[phase.name] = self.phase_parameters(phase, expandable and sweep_ok)
            self.promotion(i, phase)
            self.expressions(i, phase, expandable and sweep_ok)
            self.dataset(i, phase, expandable and sweep_ok)
            self.inputs(i, phase, expandable and sweep_ok)
        self.metrics()
        return Findings(self.report.errors, self.report.warnings)


_cache: dict[str, Findings] = {}


def check_campaign(campaign: TrainingCampaign) -> Findings:
    """Every problem (and warning) of `campaign` that can be known before anything runs.

    Pure; remembered per spec, since plan() asks on every reconcile."""
    key = repr(campaign.spec.model_dump())  # not JSON: that writes NaN and infinity alike as null
    found = _cache.get(key)
    if found is None:
        found = _Checker(campaign).run()
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = found
    return Findings(list(found.errors), list(found.warnings))


def semantic_problems(campaign: TrainingCampaign) -> list[str]:
    """The errors of `check_campaign`: what makes the operator end a campaign Failed/InvalidSpec."""
    return check_campaign(campaign).errors


def semantic_warnings(campaign: TrainingCampaign) -> list[str]:
    return check_campaign(campaign).warnings


def problems_message(problems: list[str], limit: int = MESSAGE_BUDGET) -> str:
    """The problems for a status message: joined by '; ' in order while they fit in `limit`, then
    how many more there are (`campaign validate` lists them all). Never longer than `limit`."""

    def more(n: int) -> str:
        return f"; and {n} more (campaign validate lists them all)" if n else ""

    out = ""
    for i, problem in enumerate(problems):
        candidate = f"{out}; {problem}" if out else problem
        left = len(problems) - i - 1
        if len(candidate) + len(more(left)) > limit:
            if not out:  # the first problem alone is too long: keep its head
                return bounded(problem, limit - len(more(left))) + more(left)
            return bounded(out, limit - len(more(left + 1))) + more(left + 1)
        out = candidate
    return out
