"""Dataset fields that name trial parameters: `data/{symbol.name}.parquet` -> `data/TCS.parquet`.

`dataset.path`, `dataset.target` and each of `dataset.features` may hold `{key}` or `{key.field}`
references to the trial's merged parameters; `{{` and `}}` stand for literal braces. They are
resolved once, when the Trial is built, so a TrialSpec always holds the concrete dataset; the same
resolution runs over every planned trial at plan time (semantics), so a wrong key is known before
anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from campaign_operator.api.common import DatasetSpec

from .expressions import did_you_mean, excerpt, names_list
from .naming import as_stored

Reference = tuple[str, ...]
"""`symbol.name` as ("symbol", "name"): a parameter, then fields of its value."""

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_REFERENCE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_ESCAPES = {"{{": "{", "}}": "}"}


class TemplateError(ValueError):
    """A template that is malformed or cannot be resolved over a trial's parameters."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[str | Reference, ...]

    @property
    def references(self) -> list[Reference]:
        return [p for p in self.parts if isinstance(p, tuple)]

    def render(self, params: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else _text(p, params) for p in self.parts)


def parse(source: str) -> Template:
    """Raises TemplateError naming the position of a lone brace or a bad reference."""
    parts: list[str | Reference] = []
    end = 0
    for m in _TOKEN.finditer(source):
        parts.append(source[end : m.start()])
        end = m.end()
        token, inner = m.group(0), m.group(1)
        if token in _ESCAPES:
            parts.append(_ESCAPES[token])
        elif inner is None:
            raise TemplateError(
                f"lone '{token}' at character {m.start() + 1} of '{excerpt(source)}';"
                f" write {token * 2} for a literal brace"
            )
        elif not _REFERENCE.fullmatch(inner):
            raise TemplateError(
                f"'{{{excerpt(inner, 40)}}}' at character {m.start() + 1} is not a parameter reference;"
                " write {name} or {name.field} (no spaces), or {{ for a literal brace"
            )
        else:
            parts.append(tuple(inner.split(".")))
    parts.append(source[end:])
    return Template(source, tuple(p for p in parts if p != ""))


def _text(ref: Reference, params: Mapping[str, Any]) -> str:
    value: Any = params
    for depth, key in enumerate(ref):
        if not isinstance(value, Mapping) or key not in value:
            raise TemplateError(_missing(ref, depth, value))
        value = value[key]
    return _scalar(".".join(ref), value)


def _missing(ref: Reference, depth: int, value: Any) -> str:
    name = ".".join(ref[: depth + 1])
    if depth == 0:
        return (
            f"{{{name}}}: the trial has no parameter '{ref[0]}'{did_you_mean(ref[0], value)};"
            f" its parameters are: {names_list(value)}"
        )
    parent = ".".join(ref[:depth])
    if not isinstance(value, Mapping):
        return f"{{{name}}}: '{parent}' is {_shown(value)}, which has no fields; write {{{parent}}}"
    return (
        f"{{{name}}}: '{parent}' has no field '{ref[depth]}'{did_you_mean(ref[depth], value)};"
        f" its fields are: {names_list(value)}"
    )


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(as_stored(value))  # 100.0 -> "100", as the trial's name spells it
    if isinstance(value, Mapping):
        first = next(iter(value), "field")
        raise TemplateError(
            f"{{{name}}} is a mapping ({names_list(value, 4)}), not a value;"
            f" reference one of its fields, e.g. {{{name}.{first}}}"
        )
    raise TemplateError(f"{{{name}}} is {_shown(value)}, not a string, number or boolean")


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    kind = {list: "a list", tuple: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")
    return f"{kind} ({excerpt(repr(value), 40)})"


# -- datasets ------------------------------------------------------------------------------------------
def dataset_fields(dataset: DatasetSpec) -> list[tuple[str, str]]:
    """(field under dataset as the manifest spells it, e.g. `path`, `features[2]`, its text) of every
    string field: each may hold references."""
    return list(_strings(dataset.model_dump(by_alias=True, exclude_none=True), ""))


def _strings(value: Any, at: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield at, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{at}.{key}" if at else key)
    elif isinstance(value, list):
        for j, item in enumerate(value):
            yield from _strings(item, f"{at}[{j}]")


def _rendered(value: Any, params: Mapping[str, Any], at: str) -> Any:
    """`value` (a dump of the dataset) with every string rendered. Raises DatasetTemplateError."""
    if isinstance(value, str):
        try:
            return parse(value).render(params)
        except TemplateError as e:
            raise DatasetTemplateError(at, e.problem) from None
    if isinstance(value, dict):
        return {k: _rendered(v, params, f"{at}.{k}" if at else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_rendered(v, params, f"{at}[{j}]") for j, v in enumerate(value)]
    return value


class DatasetTemplateError(TemplateError):
    """Names the dataset field (`path`, `features[2]`) whose template failed."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field = field


def resolve_dataset(dataset: DatasetSpec | None, params: Mapping[str, Any]) -> DatasetSpec | None:
    """The dataset with every reference replaced by the trial's value (the same object when it has
    none). Raises DatasetTemplateError."""
    if dataset is None or not any("{" in text or "}" in text for _, text in dataset_fields(dataset)):
        return dataset
    doc = _rendered(dataset.model_dump(by_alias=True, exclude_none=True), params, "")
    try:
        return DatasetSpec.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        loc = [str(x) for x in first["loc"]]
        value: Any = doc
        for key in loc:
            value = value.get(key) if isinstance(value, dict) else None
        shown = f" resolves to '{excerpt(value, 80)}':" if isinstance(value, str) else ""
        raise DatasetTemplateError(".".join(loc) or "path", f"{shown} {first['msg']}".strip()) from None
