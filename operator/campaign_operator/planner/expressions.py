"""User-written CEL (`when`, `gate`, `skipWhen`): compiled once, evaluated over plain data.

Numbers compare across int, uint and double, as the CEL spec's heterogeneous numeric comparison
(and cel-go, which the apiserver runs) have it: `1 < 1.5`, `100 > 1.0` and `1 == 1.0` hold. This
matters beyond style: the apiserver stores a float written `1.0` as the integer `1`, so without it
a manifest that `campaign validate` accepts fails on a cluster. Arithmetic stays strictly typed.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import celpy
import celpy.celtypes as ct
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, base_functions

from campaign_operator.api.base import bounded

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


PROBLEM_MAX = 300
"""At most this many characters of what is wrong: a reason, never a dump of the CEL library's state."""
EXCERPT_MAX = 80


def excerpt(source: str, limit: int = EXCERPT_MAX) -> str:
    """The expression on one line, cut to `limit` characters, for a message."""
    flat = " ".join(source.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class ExpressionError(ValueError):
    """A CEL expression that does not compile or cannot be evaluated; names the field.

    Its text is bounded: the field first, then the problem (at most PROBLEM_MAX characters), then
    an excerpt of the expression."""

    def __init__(self, field: str, expression: str, problem: str):
        self.field = field
        self.expression = expression
        self.problem = bounded(problem, PROBLEM_MAX)
        super().__init__(f"{field}: {self.problem} (in CEL expression `{excerpt(expression)}`)")


_CEL_TYPE_NAMES = {
    "IntType": "int",
    "UintType": "uint",
    "DoubleType": "double",
    "StringType": "string",
    "BoolType": "bool",
    "BytesType": "bytes",
    "ListType": "list",
    "MapType": "map",
    "NullType": "null",
}
_OPERATORS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}
_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")
_NO_MEMBER = re.compile(r"no such member in mapping: '([^']*)'")
_OVERLOAD = re.compile(r"no matching overload for Token\('RULE', '(\w+)'\) applied to '\((.*)\)'")


def _hint(problem: str, variables: Collection[str] = ()) -> str:
    """cel-python's message, made short and plain (it can be a 4,000-character dump of its state)."""
    undeclared = _UNDECLARED.search(problem)
    if undeclared:
        available = ", ".join(sorted(variables)) or "none"
        return f"unknown variable '{undeclared.group(1)}' (this expression can use: {available})"
    missing = _NO_MEMBER.search(problem)
    if missing:
        key = missing.group(1)
        return f"no key '{key}' (if only some values have it, test first: has(....{key}) && ...)"
    overload = _OVERLOAD.search(problem)
    if overload:
        op = _OPERATORS.get(overload.group(1), overload.group(1))
        types = [
            _CEL_TYPE_NAMES.get(t.rsplit(".", 1)[-1].rstrip("'>"), t) for t in overload.group(2).split(", ")
        ]
        problem = f"no such overload: '{op}' for {' and '.join(types)}"
    else:
        problem = problem.splitlines()[0] if problem else "cannot be evaluated"
    if "int" in problem and "double" in problem:
        return (
            f"{problem} (CEL arithmetic does not mix int and double: write 2.0 rather than 2, or double(x))"
        )
    return problem


@dataclass(frozen=True)
class Expression:
    field: str
    source: str
    program: Any
    ast: Any = None

    def evaluate(self, **variables: Any) -> Any:
        activation = {k: json_to_cel(v) for k, v in variables.items()}
        try:
            result = self.program.evaluate(activation)
        except CELEvalError as e:
            problem = _hint(str(e.args[0] if e.args else e), variables)
            raise ExpressionError(self.field, self.source, problem) from None
        if isinstance(result, CELEvalError):
            problem = _hint(str(result.args[0] if result.args else result), variables)
            raise ExpressionError(self.field, self.source, problem)
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
    return Expression(field, source, program, ast)


def _syntax_problem(source: str, err: CELParseError) -> str:
    """Where the parser stopped: cel-python's message is only the source and a caret line."""
    line, column = getattr(err, "line", None), getattr(err, "column", None)
    lines = source.splitlines()
    if not line or not column or line > len(lines):
        return "syntax error"
    near = lines[line - 1][column - 1 : column + 19].strip()
    where = f"line {line}, column {column}" if len(lines) > 1 else f"column {column}"
    return f"syntax error at {where}" + (f" (near {near!r})" if near else " (unexpected end)")


# -- static checking ------------------------------------------------------------------------------
#
# cel-python has no type checker, and an expression's mistakes (a misspelt variable, a field the
# view lacks, a metric compared with a string) would surface only when it is first evaluated:
# after a phase has trained. `check` walks the parsed expression against a description of the
# variables its context really has and reports each mistake before anything runs.


@dataclass(frozen=True, eq=False)
class CelType:
    """What a value in an expression's context is, as far as checking needs to know.

    kind: int, uint, double, string, bool, null, bytes, list, map, record, type or dyn (unknown).
    A record has exactly `fields` (`optional` ones may be absent: has()); a map's values are
    `values`, its keys any string unless `keys` lists them (then `unknown_key` words the problem
    for another key and says whether it is only a warning).
    """

    kind: str
    name: str = ""
    """How messages call it, e.g. `phase.best.metrics`."""
    fields: Mapping[str, CelType] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    values: CelType | None = None
    keys: Collection[str] | None = None
    entries: Mapping[str, CelType] = field(default_factory=dict)
    """Value types of particular keys (overriding `values`)."""
    unknown_key: Callable[[str, str], tuple[str, bool]] | None = None
    """(the map's name, the key) -> (message, only a warning?)."""

    def named(self, name: str) -> CelType:
        return CelType(
            self.kind,
            name,
            self.fields,
            self.optional,
            self.values,
            self.keys,
            self.entries,
            self.unknown_key,
        )


INT, UINT, DOUBLE = CelType("int"), CelType("uint"), CelType("double")
STRING, BOOL, NULL, BYTES = CelType("string"), CelType("bool"), CelType("null"), CelType("bytes")
DYN, TYPE = CelType("dyn"), CelType("type")
_NUMERIC = frozenset({"int", "uint", "double"})
_SCALARS = _NUMERIC | {"string", "bool", "bytes"}
_TYPE_IDENTS = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"}
)
_LITERALS = {
    "INT_LIT": INT,
    "UINT_LIT": UINT,
    "FLOAT_LIT": DOUBLE,
    "STRING_LIT": STRING,
    "MLSTRING_LIT": STRING,
    "BYTES_LIT": BYTES,
    "BOOL_LIT": BOOL,
    "NULL_LIT": NULL,
}
_FUNCTIONS = {
    "size": INT,
    "int": INT,
    "uint": UINT,
    "double": DOUBLE,
    "string": STRING,
    "bool": BOOL,
    "bytes": BYTES,
    "type": TYPE,
    "matches": BOOL,
}
_METHODS = {
    "size": INT,
    "startsWith": BOOL,
    "endsWith": BOOL,
    "contains": BOOL,
    "matches": BOOL,
    "lowerAscii": STRING,
    "upperAscii": STRING,
}
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
NAMES_SHOWN = 12


def record(fields: Mapping[str, CelType], optional: Collection[str] = ()) -> CelType:
    """A value with exactly these fields; `optional` ones may be absent (test them with has())."""
    return CelType("record", fields=dict(fields), optional=frozenset(optional))


def map_of(
    values: CelType,
    keys: Collection[str] | None = None,
    unknown_key: Callable[[str, str], tuple[str, bool]] | None = None,
    entries: Mapping[str, CelType] | None = None,
) -> CelType:
    """A map of string keys to `values`; `keys`: the only keys it can have (None: any)."""
    return CelType("map", values=values, keys=keys, unknown_key=unknown_key, entries=dict(entries or {}))


def names_list(names: Collection[str], limit: int = NAMES_SHOWN) -> str:
    """`a, b, c` (sorted), at most `limit` of them and how many more."""
    ordered = sorted(names)
    shown = ", ".join(ordered[:limit])
    return (
        shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "") if ordered else "none"
    )


def did_you_mean(name: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass(frozen=True)
class Finding:
    """One mistake `check` found; a warning does not reject the manifest."""

    message: str
    warning: bool = False


def _describe(t: CelType) -> str:
    what = {"int": "an int", "uint": "a uint", "double": "a double", "null": "null"}.get(
        t.kind, f"a {t.kind}"
    )
    return f"{t.name} ({what})" if t.name else what


def _literal_text(node: Any) -> str | None:
    """The literal's source text when `node` is nothing but a literal."""
    while _is_tree(node) and len(node.children) == 1 and node.data != "literal":
        node = node.children[0]
    if _is_tree(node) and node.data == "literal":
        return str(node.children[0])
    return None


def _is_tree(node: Any) -> bool:
    return hasattr(node, "data") and hasattr(node, "children")


def _ident(node: Any) -> str | None:
    """The identifier when `node` (an expr) is nothing but one."""
    while _is_tree(node) and len(node.children) == 1 and node.data != "ident":
        node = node.children[0]
    if _is_tree(node) and node.data == "ident":
        return str(node.children[0])
    return None


class _Checker:
    def __init__(self, variables: Mapping[str, CelType]):
        self.variables = {k: v.named(k) for k, v in variables.items()}
        self.findings: list[Finding] = []

    def problem(self, message: str, warning: bool = False) -> None:
        finding = Finding(bounded(message, PROBLEM_MAX), warning)
        if finding not in self.findings:
            self.findings.append(finding)

    def walk(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        method = getattr(self, f"_{node.data}", None)
        if method is not None:
            result: CelType = method(node, scope)
            return result
        for child in node.children:  # anything unforeseen: check inside, know nothing of the result
            if _is_tree(child):
                self.walk(child, scope)
        return DYN

    def _pass(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        return self.walk(node.children[0], scope)

    _member = _primary = _paren_expr = _pass

    def _expr(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        if len(node.children) == 1:
            return self.walk(node.children[0], scope)
        condition, yes, no = (self.walk(c, scope) for c in node.children)
        self._boolean(condition, "the condition of `? :`")
        return yes if yes.kind == no.kind and yes.kind != "record" else DYN

    def _logical(self, node: Any, scope: Mapping[str, CelType], op: str) -> CelType:
        if len(node.children) == 1:
            return self.walk(node.children[0], scope)
        for child in node.children:
            self._boolean(self.walk(child, scope), f"an operand of {op}")
        return BOOL

    def _conditionalor(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        return self._logical(node, scope, "||")

    def _conditionaland(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        return self._logical(node, scope, "&&")

    def _boolean(self, t: CelType, what: str) -> None:
        if t.kind not in ("bool", "dyn"):
            self.problem(f"{what} must be a bool, but {_describe(t)} is not")

    def _binary(
        self, node: Any, scope: Mapping[str, CelType]
    ) -> tuple[str, Any, CelType, Any, CelType] | None:
        if len(node.children) == 1:
            return None
        op_node, right_node = node.children
        left_node = op_node.children[0]
        return op_node.data, left_node, self.walk(left_node, scope), right_node, self.walk(right_node, scope)

    def _relation(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        parts = self._binary(node, scope)
        if parts is None:
            return self.walk(node.children[0], scope)
        op, left_node, left, right_node, right = parts
        symbol = _OPERATORS[op]
        if op == "relation_in":
            if right.kind not in ("list", "map", "dyn"):
                self.problem(f"`in` needs a list or a map on its right, but {_describe(right)} is neither")
            return BOOL
        self._comparable(
            symbol, left, left_node, right, right_node, ordering=op not in ("relation_eq", "relation_ne")
        )
        return BOOL

    def _comparable(
        self, symbol: str, left: CelType, left_node: Any, right: CelType, right_node: Any, ordering: bool
    ) -> None:
        kinds = {left.kind, right.kind}
        if "dyn" in kinds or kinds <= _NUMERIC or (len(kinds) == 1 and (not ordering or kinds <= _SCALARS)):
            return
        if kinds & _NUMERIC and "string" in kinds:
            number, text, node = (
                (left, right, right_node) if left.kind in _NUMERIC else (right, left, left_node)
            )
            literal = _literal_text(node)
            fix, what = "", _describe(text)
            if literal is not None:
                what = f"the string {excerpt(literal, 40)}"
                try:
                    fix = f"; write the number without quotes: {float(literal_string(literal))!r}"
                except (ValueError, SyntaxError):
                    fix = ""
            self.problem(
                f"compares {_describe(number)} with {what} using {symbol}:"
                f" a number and a string do not compare{fix}"
            )
            return
        if "null" in kinds and not ordering:
            return  # `x == null` is legal CEL
        self.problem(f"cannot compare {_describe(left)} with {_describe(right)} using {symbol}")

    def _arithmetic(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        parts = self._binary(node, scope)
        if parts is None:
            return self.walk(node.children[0], scope)
        op, _, left, _, right = parts
        symbol = _OPERATORS[op]
        kinds = {left.kind, right.kind}
        if "dyn" in kinds:
            return DYN
        if kinds <= _NUMERIC and len(kinds) > 1:
            self.problem(
                f"{_describe(left)} {symbol} {_describe(right)}: CEL arithmetic does not mix"
                " int and double; write 2.0 rather than 2, or convert with double(...)"
            )
            return DYN
        if len(kinds) == 1 and (
            kinds <= _NUMERIC or (symbol == "+" and kinds <= {"string", "list", "bytes"})
        ):
            return CelType(left.kind, values=left.values)
        self.problem(f"no {symbol} for {_describe(left)} and {_describe(right)}")
        return DYN

    _addition = _multiplication = _arithmetic

    def _unary(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        if len(node.children) == 1:
            return self.walk(node.children[0], scope)
        op, operand = node.children[0].data, self.walk(node.children[1], scope)
        if op == "unary_not":
            self._boolean(operand, "the operand of !")
            return BOOL
        if operand.kind not in _NUMERIC | {"dyn"}:
            self.problem(f"cannot negate {_describe(operand)}")
            return DYN
        return CelType(operand.kind)

    def _literal(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        return _LITERALS.get(getattr(node.children[0], "type", ""), DYN)

    def _ident(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        name = str(node.children[0])
        if name in scope:
            return scope[name]
        if name in self.variables:
            return self.variables[name]
        if name in _TYPE_IDENTS:
            return TYPE
        available = sorted(self.variables)
        self.problem(
            f"unknown variable '{name}'{did_you_mean(name, available)};"
            f" this expression can use: {names_list(available)}"
        )
        return DYN

    def _list_lit(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        items = [self.walk(c, scope) for c in (node.children[0].children if node.children else [])]
        kinds = {i.kind for i in items}
        return CelType("list", values=items[0] if len(kinds) == 1 else DYN)

    def _map_lit(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        for child in node.children[0].children if node.children else []:
            self.walk(child, scope)
        return CelType("map", values=DYN)

    def _select(self, target: CelType, key: str, *, presence: bool = False) -> CelType:
        """`target.key` (or `target["key"]`); presence: inside has(), where absent keys are the point."""
        if target.kind == "record":
            if key in target.fields:
                return target.fields[key].named(f"{target.name}.{key}")
            available = sorted(target.fields)
            self.problem(
                f"{target.name} has no field '{key}'{did_you_mean(key, available)};"
                f" its fields are: {names_list(available, 20)}"
            )
            return DYN
        if target.kind == "map":
            if key in target.entries:
                return target.entries[key].named(f"{target.name}.{key}")
            if target.keys is not None and key not in target.keys and not presence:
                if target.unknown_key is not None:
                    message, warning = target.unknown_key(target.name, key)
                else:
                    message = (
                        f"{target.name} has no key '{key}'{did_you_mean(key, target.keys)};"
                        f" its keys are: {names_list(target.keys)}"
                    )
                    warning = False
                self.problem(message, warning)
            return (target.values or DYN).named(f"{target.name}.{key}" if target.name else "")
        if target.kind in ("dyn", "type"):
            return DYN
        self.problem(f"{_describe(target)} has no fields (selecting '{key}')")
        return DYN

    def _member_dot(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        return self._select(self.walk(node.children[0], scope), str(node.children[1]))

    def _member_index(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        target = self.walk(node.children[0], scope)
        index = self.walk(node.children[1], scope)
        literal = _literal_text(node.children[1])
        if index.kind == "string" and literal is not None and target.kind in ("record", "map"):
            try:
                key = literal_string(literal)
            except ValueError:
                key = None
            if key is not None:
                return self._select(target, key)
        if target.kind == "list":
            return target.values or DYN
        if target.kind == "map":
            return target.values or DYN
        return DYN

    def _member_dot_arg(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        target = self.walk(node.children[0], scope)
        method = str(node.children[1])
        args = list(node.children[2].children) if len(node.children) > 2 and node.children[2] else []
        if method in _MACROS and args:
            var = _ident(args[0])
            element = DYN
            if target.kind == "list":
                element = target.values or DYN
            elif target.kind in ("map", "record"):
                element = STRING
            inner = {**scope, var: element} if var else scope
            results = [self.walk(a, inner) for a in args[1:]]
            if method in ("all", "exists", "exists_one"):
                if results:
                    self._boolean(results[-1], f"the predicate of {method}()")
                return BOOL
            if method == "filter":
                return CelType("list", values=element)
            return CelType("list", values=results[-1] if results else DYN)
        for a in args:
            self.walk(a, scope)
        return _METHODS.get(method, DYN)

    def _ident_arg(self, node: Any, scope: Mapping[str, CelType]) -> CelType:
        name = str(node.children[0])
        args = list(node.children[1].children) if len(node.children) > 1 and node.children[1] else []
        if name == "has" and len(args) == 1:
            selected = _selection(args[0])
            if selected is not None:
                target_node, key = selected
                self._select(self.walk(target_node, scope), key, presence=True)
                return BOOL
        types = [self.walk(a, scope) for a in args]
        if name == "dyn":
            return DYN
        if name in ("int", "uint", "double") and types and types[0].kind in ("int", "uint", "double", "dyn"):
            return _FUNCTIONS[name]
        return _FUNCTIONS.get(name, DYN)


def _selection(node: Any) -> tuple[Any, str] | None:
    """(target, field) when `node` (an expr) is nothing but `target.field`."""
    while _is_tree(node) and len(node.children) == 1 and node.data != "member_dot":
        node = node.children[0]
    if _is_tree(node) and node.data == "member_dot":
        return node.children[0], str(node.children[1])
    return None


def literal_string(text: str) -> str:
    """A CEL string literal's value (plain quotes; escapes read as Python reads them)."""
    import ast as _ast

    if text[:1] in "rR":
        return text[2:-1]
    value = _ast.literal_eval(text)
    if not isinstance(value, str):
        raise ValueError(text)
    return value


def check(expression: Expression, variables: Mapping[str, CelType], *, want: str = "bool") -> list[Finding]:
    """The mistakes of `expression` given the variables its context provides: unknown variables,
    fields and keys (each message lists what exists), comparisons that never hold (a number with a
    string), int/double arithmetic, a result that is not a bool."""
    if expression.ast is None:
        return []
    checker = _Checker(variables)
    result = checker.walk(expression.ast, {})
    if want == "bool" and result.kind not in ("bool", "dyn"):
        checker.problem(
            f"must be a condition (a bool), but it is {_describe(result)}; compare it, e.g. `... > 0.1`"
        )
    return checker.findings
