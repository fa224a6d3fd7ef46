"""User-written CEL (`when`, `gate`, `skipWhen`): compiled once, evaluated over plain data.

Numbers compare across int, uint and double, as the CEL spec's heterogeneous numeric comparison
(and cel-go, which the apiserver runs) have it: `1 < 1.5`, `100 > 1.0` and `1 == 1.0` hold. This
matters beyond style: the apiserver stores a float written `1.0` as the integer `1`, so without it
a manifest that `campaign validate` accepts fails on a cluster. Arithmetic stays strictly typed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
import celpy.celtypes as ct
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, base_functions

_NUMBERS = (ct.IntType, ct.UintType, ct.DoubleType)


def _numbers(a: Any, b: Any) -> bool:
    """Both operands are CEL numbers, of different types (CEL's bool is no number)."""
    return type(a) is not type(b) and isinstance(a, _NUMBERS) and isinstance(b, _NUMBERS)


def _bool_and_number(a: Any, b: Any) -> bool:
    return isinstance(a, ct.BoolType) and isinstance(b, _NUMBERS)


def _plain(x: Any) -> int | float:
    # Python compares int with float exactly (no rounding of large ints), which is what CEL asks.
    return float(x) if isinstance(x, ct.DoubleType) else int(x)


def _equal(a: Any, b: Any) -> bool:
    """CEL equality with numbers compared by value, also inside lists and maps."""
    if _numbers(a, b):
        return _plain(a) == _plain(b)
    if _bool_and_number(a, b) or _bool_and_number(b, a):
        # cel-python answers `true == 1` with True (and `1 == true` with an error): no overload, as CEL says.
        raise TypeError(f"no such overload: {a!r} == {b!r}")
    if isinstance(a, ct.ListType) and isinstance(b, ct.ListType):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, ct.MapType) and isinstance(b, ct.MapType):
        return len(a) == len(b) and all(
            any(_equal(k, j) and _equal(v, b[j]) for j in b) for k, v in a.items()
        )
    return bool(a == b)  # cel-python's own rules, type errors included


def _error(*operands: Any) -> CELEvalError | None:
    """An operand that is already an error: CEL passes it on."""
    return next((x for x in operands if isinstance(x, CELEvalError)), None)


def _comparison(
    compare: Callable[[Any, Any], bool], typed: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if _error(a, b) is not None or not _numbers(a, b):
            return typed(a, b)
        return ct.BoolType(compare(_plain(a), _plain(b)))

    return apply


def _in(item: Any, container: Any) -> Any:
    """`in` for lists (elements) and maps (keys), numbers compared by value; a type error is the
    result only when nothing matched, as in cel-python's own operator."""
    error: Any = _error(item, container)
    if error is not None:
        return error
    error = ct.BoolType(False)
    for candidate in container:
        try:
            if _equal(candidate, item):
                return ct.BoolType(True)
        except TypeError as e:
            error = CELEvalError("no such overload", e.__class__, e.args)
    return error


def _equality(negate: bool) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        error = _error(a, b)
        return error if error is not None else ct.BoolType(_equal(a, b) != negate)

    return apply


NUMERIC_FUNCTIONS: dict[str, Any] = {
    "_<_": _comparison(operator.lt, base_functions["_<_"]),
    "_<=_": _comparison(operator.le, base_functions["_<=_"]),
    "_>_": _comparison(operator.gt, base_functions["_>_"]),
    "_>=_": _comparison(operator.ge, base_functions["_>=_"]),
    "_==_": _equality(negate=False),
    "_!=_": _equality(negate=True),
    "_in_": _in,
}
"""cel-python's operators with CEL's cross-type numeric comparison; every other case is theirs."""


class ExpressionError(ValueError):
    """A CEL expression that does not compile or cannot be evaluated; names the field."""

    def __init__(self, field: str, expression: str, problem: str):
        self.field = field
        self.expression = expression
        self.problem = problem
        super().__init__(f"{field}: {problem} in CEL expression {expression!r}")


def _hint(problem: str) -> str:
    if "IntType" in problem and "DoubleType" in problem:
        return (
            f"{problem} (CEL arithmetic does not mix int and double: write 2.0 rather than 2, or double(x))"
        )
    return problem


@dataclass(frozen=True)
class Expression:
    field: str
    source: str
    program: Any

    def evaluate(self, **variables: Any) -> Any:
        activation = {k: json_to_cel(v) for k, v in variables.items()}
        try:
            result = self.program.evaluate(activation)
        except CELEvalError as e:
            raise ExpressionError(self.field, self.source, _hint(str(e.args[0] if e.args else e))) from None
        if isinstance(result, CELEvalError):
            raise ExpressionError(
                self.field, self.source, _hint(str(result.args[0] if result.args else result))
            )
        return _to_python(result)

    def holds(self, **variables: Any) -> bool:
        result = self.evaluate(**variables)
        if not isinstance(result, bool):
            raise ExpressionError(self.field, self.source, f"must evaluate to a bool, got {result!r}")
        return result


def _to_python(value: Any) -> Any:
    if isinstance(value, celpy.celtypes.BoolType):
        return bool(value)
    if isinstance(value, celpy.celtypes.IntType | celpy.celtypes.UintType):
        return int(value)
    if isinstance(value, celpy.celtypes.DoubleType):
        return float(value)
    if isinstance(value, celpy.celtypes.StringType):
        return str(value)
    if isinstance(value, celpy.celtypes.ListType):
        return [_to_python(v) for v in value]
    if isinstance(value, celpy.celtypes.MapType):
        return {str(k): _to_python(v) for k, v in value.items()}
    return value


@lru_cache(maxsize=1024)
def compile_expression(field: str, source: str) -> Expression:
    env = celpy.Environment()
    try:
        ast = env.compile(source)
        program = env.program(ast, functions=NUMERIC_FUNCTIONS)
    except CELParseError as e:
        raise ExpressionError(field, source, _syntax_problem(source, e)) from None
    return Expression(field, source, program)


def _syntax_problem(source: str, err: CELParseError) -> str:
    """Where the parser stopped: cel-python's message is only the source and a caret line."""
    line, column = getattr(err, "line", None), getattr(err, "column", None)
    lines = source.splitlines()
    if not line or not column or line > len(lines):
        return "syntax error"
    near = lines[line - 1][column - 1 : column + 19].strip()
    where = f"line {line}, column {column}" if len(lines) > 1 else f"column {column}"
    return f"syntax error at {where}" + (f" (near {near!r})" if near else " (unexpected end)")
