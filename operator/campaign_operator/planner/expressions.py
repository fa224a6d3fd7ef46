"""User-written CEL (`when`, `gate`, `skipWhen`): compiled once, evaluated over plain data."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError


class ExpressionError(ValueError):
    """A CEL expression that does not compile or cannot be evaluated; names the field."""

    def __init__(self, field: str, expression: str, problem: str):
        self.field = field
        self.expression = expression
        self.problem = problem
        super().__init__(f"{field}: {problem} in CEL expression {expression!r}")


def _hint(problem: str) -> str:
    if "IntType" in problem and "DoubleType" in problem:
        return f"{problem} (CEL does not mix int and double: write 0.0 rather than 0)"
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
        program = env.program(ast)
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
