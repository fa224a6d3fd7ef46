"""CEL numbers compare across int, uint and double (the CEL spec's heterogeneous numeric comparison,
as cel-go has it), because the apiserver hands back a `1.0` as `1`; arithmetic and every other
type's comparison stay as cel-python has them."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_operator.planner.expressions import ExpressionError, compile_expression

pytestmark = pytest.mark.unit


def value(source: str, **variables: Any) -> Any:
    return compile_expression("spec.test", source).evaluate(**variables)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 < 1.5", True),
        ("1.5 < 1", False),
        ("1 <= 1.0", True),
        ("2 <= 1.5", False),
        ("100 > 1.0", True),
        ("1.0 > 100", False),
        ("1 >= 1.0", True),
        ("1 >= 1.5", False),
        ("1 == 1.0", True),
        ("1.0 == 1", True),
        ("1 == 1.5", False),
        ("1 != 1.0", False),
        ("1 != 1.5", True),
        ("1u < 1.5", True),
        ("2u > 1", True),
        ("1u == 1", True),
        ("1u == 1.0", True),
        ("-1 < 0u", True),
        # exact, not through a float: 2**53 + 1 is no double
        ("9007199254740993 > 9007199254740992.0", True),
        ("9007199254740993 == 9007199254740992.0", False),
    ],
)
def test_mixed_numbers_compare_by_value(source: str, expected: bool) -> None:
    assert value(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x in [1.0, 2.5]", True),  # x is the int 1
        ("x in [2.5, 3.0]", False),
        ("1.0 in [x]", True),
        ("x in {1.0: 'a'}", True),  # map membership tests keys
        ("[x, 2] == [1.0, 2.0]", True),
        ("[x, 2] == [1.0, 2.5]", False),
        ("{'lr': x} == {'lr': 1.0}", True),
        ("[1.0, 3.0].exists(v, v == x)", True),
        ("[1, 2].all(v, v < 2.5)", True),
    ],
)
def test_lists_maps_and_macros_use_the_same_equality(source: str, expected: bool) -> None:
    assert value(source, x=1) is expected


def test_same_type_comparisons_are_unchanged() -> None:
    assert value("'abc' < 'abd'") is True
    assert value("'a' == 'a'") is True
    assert value("2 < 3") is True and value("2.5 < 3.5") is True
    assert value("'x' in ['x', 'y']") is True
    assert value("x != x", x=float("nan")) is True  # NaN equals nothing, itself included
    assert value("x < 1", x=float("nan")) is False


@pytest.mark.parametrize("source", ["1 + 1.0", "1 * 2.0", "'a' < 1", "'a' == 1", "true == 1", "1 == true"])
def test_other_mixes_still_have_no_overload(source: str) -> None:
    with pytest.raises(ExpressionError, match=r"no (matching|such) overload"):
        value(source)


def test_arithmetic_stays_integer() -> None:
    assert value("7 / 2") == 3 and isinstance(value("7 / 2"), int)
    assert value("double(x) * 2.0 > 1.5", x=1) is True


def test_a_skip_rule_on_a_float_the_apiserver_stored_as_an_integer() -> None:
    rule = compile_expression(
        "spec.phases[1].skipWhen[0].expression", "params.lr > 1.0 && size(params.h) > 1"
    )
    # `lr: 100.0` as the manifest says, and as the apiserver returns it
    assert rule.holds(params={"lr": 100.0, "h": [64, 32]}) is True
    assert rule.holds(params={"lr": 100, "h": [64, 32]}) is True
    assert rule.holds(params={"lr": 1, "h": [64, 32]}) is False
