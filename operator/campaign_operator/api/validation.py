"""Judging a manifest without a cluster: pydantic types plus the CRDs' own CEL rules.

The apiserver evaluates `CelRule`s as x-kubernetes-validations; here cel-python evaluates the same
strings over the same wire form, so `campaign validate` and `kubectl apply` agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any, TypeVar

import celpy
import celpy.celtypes as ct
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from pydantic import BaseModel, ValidationError

from .base import ApiModel, CelRule


class SpecError(ValueError):
    """A manifest that cannot be accepted; each problem names its field and what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _index_of(items: Any, item: Any) -> ct.IntType:
    # The Kubernetes CEL list library's indexOf, which cel-python does not ship.
    for i, value in enumerate(items):
        if value == item:
            return ct.IntType(i)
    return ct.IntType(-1)


KUBERNETES_CEL_FUNCTIONS: dict[str, Any] = {"indexOf": _index_of}


@cache
def _compiled(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=KUBERNETES_CEL_FUNCTIONS)


def _walk(model: BaseModel, path: str) -> Iterator[tuple[ApiModel, str]]:
    if isinstance(model, ApiModel):
        yield model, path
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = field.alias or name
        for child, child_path in _children(value, f"{path}.{key}" if path else key):
            yield from _walk(child, child_path)


def _children(value: Any, path: str) -> Iterator[tuple[BaseModel, str]]:
    if isinstance(value, BaseModel):
        yield value, path
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _children(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _children(item, f"{path}.{k}")


def rule_violations(model: BaseModel, path: str = "") -> list[str]:
    """Evaluates every CelRule in the model tree; transition rules (oldSelf) need a cluster."""
    problems: list[str] = []
    for node, node_path in _walk(model, path):
        one = type(node).exactly_one
        if one is not None:
            present = node.to_wire()
            if sum(f in present for f in one.fields) != 1:
                problems.append(f"{node_path}: {one.message}" if node_path else one.message)
        rules: tuple[CelRule, ...] = type(node).cel_rules
        if not rules:
            continue
        wire = json_to_cel(node.to_wire())
        for rule in rules:
            if "oldSelf" in rule.rule:
                continue
            try:
                ok = _compiled(rule.embedded_rule).evaluate({"self": wire})
            except CELEvalError as e:  # a rule that cannot evaluate is a defect of ours
                raise RuntimeError(f"CEL rule {rule.rule!r} failed at {node_path}: {e}") from e
            if not bool(ok):
                where = f"{node_path}{rule.field_path}".lstrip(".")
                message = rule.explain(node.to_wire()) if rule.explain is not None else rule.message
                problems.append(f"{where}: {message}" if where else message)
    return problems


def transition_violations(old: BaseModel, new: BaseModel) -> list[str]:
    """The transition rules (oldSelf) of `new`'s tree, judged against `old` as the apiserver judges an
    update: each rule on a node present in both, with oldSelf the same node of `old`."""
    before = dict((path, node) for node, path in _walk(old, ""))
    problems: list[str] = []
    for node, path in _walk(new, ""):
        rules = [r for r in type(node).cel_rules if "oldSelf" in r.rule]
        previous = before.get(path)
        if not rules or previous is None:
            continue
        scope = {"self": json_to_cel(node.to_wire()), "oldSelf": json_to_cel(previous.to_wire())}
        for rule in rules:
            if not bool(_compiled(rule.embedded_rule).evaluate(scope)):
                where = f"{path}{rule.field_path}".lstrip(".")
                problems.append(f"{where}: {rule.message}" if where else rule.message)
    return problems


def format_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """pydantic's errors as `field.path: message` lines using the manifest's camelCase names."""
    lines = []
    for e in err.errors():
        loc = prefix
        for part in e["loc"]:
            if isinstance(part, int):
                loc += f"[{part}]"
            else:
                loc += f".{part}" if loc else str(part)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `kubectl explain`)"
        elif e["type"] == "string_pattern_mismatch":
            pattern = (e.get("ctx") or {}).get("pattern", "")
            msg = f"invalid value {e.get('input')!r}: must match {pattern}"
        elif e["type"] in ("enum", "literal_error"):
            msg = f"invalid value {e.get('input')!r}: {msg}"
        lines.append(f"{loc}: {msg}")
    return lines


M = TypeVar("M", bound=BaseModel)


def parse_model(cls: type[M], data: Any, prefix: str = "", *, strict: bool = False) -> M:
    """Builds and rule-checks a model, raising SpecError with every problem found.

    strict: judge `data` as the JSON the apiserver receives, without pydantic's lax coercions
    ("8" is not an integer, "true" not a boolean), so a manifest that passes here also passes
    the CRD's structural schema. `data` must then be JSON-shaped (what a YAML/JSON parser gives).
    """
    try:
        if strict:
            model = cls.model_validate_json(json.dumps(data, default=str), strict=True)
        else:
            model = cls.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, prefix)) from None
    problems = rule_violations(model, prefix)
    if problems:
        raise SpecError(problems)
    return model
