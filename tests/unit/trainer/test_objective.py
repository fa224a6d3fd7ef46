"""The objective task's pure core: the test functions' known optima, the learning curve, the noise
bound, determinism across calls and processes, and that importing it pulls in neither torch nor
Lightning."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from campaign_trainer.tasks.objective import FUNCTIONS, curve_and_value, point, value

pytestmark = pytest.mark.unit


def coords(xs: tuple[float, ...] | list[float]) -> dict[str, float]:
    return {f"x{i}": float(x) for i, x in enumerate(xs, 1)}


@pytest.mark.parametrize(
    ("name", "argmin", "minimum"),
    [
        ("branin", (-math.pi, 12.275), 0.397887),
        ("branin", (math.pi, 2.275), 0.397887),
        ("branin", (9.42478, 2.475), 0.397887),
        ("hartmann6", (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573), -3.32237),
        ("rosenbrock", (1.0, 1.0), 0.0),
        ("rosenbrock", (1.0,) * 5, 0.0),
    ],
)
def test_each_function_reaches_its_known_minimum(
    name: str, argmin: tuple[float, ...], minimum: float
) -> None:
    f = FUNCTIONS[name]
    assert f(point(name, coords(argmin))) == pytest.approx(minimum, abs=1e-5)
    assert f.minimum == pytest.approx(minimum, abs=1e-6)
    assert f(point(name, coords(f.argmin if f.dims else argmin))) == pytest.approx(f.minimum, abs=1e-5)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_no_point_of_the_domain_is_below_the_minimum(name: str) -> None:
    f = FUNCTIONS[name]
    bounds = np.array(f.bounds(f.dims or 3))
    rng = np.random.default_rng(0)
    for x in rng.uniform(bounds[:, 0], bounds[:, 1], size=(2000, len(bounds))):
        assert f(x) >= f.minimum - 1e-5


def test_values_against_independent_formulas() -> None:
    # Branin at the origin: (-6)^2 + 10 (1 - 1/(8 pi)) cos 0 + 10; Rosenbrock at 0: (n - 1) * 1.
    assert value("branin", coords((0, 0)), 1, 1, noise=0) == pytest.approx(
        36 + 10 * (1 - 1 / (8 * math.pi)) + 10
    )
    assert value("rosenbrock", coords((0, 0, 0, 0)), 1, 1, noise=0) == pytest.approx(3.0)
    assert value("rosenbrock", coords((-1, 1)), 1, 1, noise=0) == pytest.approx(4.0)
    assert value("hartmann6", coords((0.5,) * 6), 1, 1, noise=0) == pytest.approx(
        FUNCTIONS["hartmann6"](np.full(6, 0.5))
    )


POINTS: list[tuple[str, dict[str, Any]]] = [
    ("branin", coords((2.5, 7.5))),
    ("branin", coords((-3.0, 12.0))),
    ("hartmann6", coords((0.2, 0.15, 0.47, 0.27, 0.31, 0.65))),
    ("hartmann6", coords((0.9, 0.1, 0.5, 0.5, 0.9, 0.0))),
    ("rosenbrock", coords((0.3, -1.2, 2.0))),
]


@pytest.mark.parametrize(("name", "params"), POINTS)
def test_the_curve_decays_to_the_function_value_within_the_noise(name: str, params: dict[str, Any]) -> None:
    f = FUNCTIONS[name](point(name, params))
    epochs, noise = 20, 0.05
    curves, values = zip(
        *(curve_and_value(name, params, e, epochs, 3, noise) for e in range(1, 21)), strict=True
    )
    assert list(curves) == sorted(curves, reverse=True)  # the noiseless curve only decays
    assert curves[0] > f + 0.25 * FUNCTIONS[name].scale  # epoch 1 is far from the end
    assert curves[-1] == pytest.approx(f, abs=1e-9)
    assert abs(values[-1] - f) <= noise
    assert all(abs(v - c) <= noise for c, v in zip(curves, values, strict=True))
    assert len(set(values)) == epochs  # each epoch draws its own noise


def test_noise_is_bounded_spread_and_zero_when_off() -> None:
    params = coords((1.0, 3.0))
    offsets = [
        value("branin", params, e, 50, seed, 0.1) - curve_and_value("branin", params, e, 50, seed, 0.0)[0]
        for seed in range(20)
        for e in range(1, 51)
    ]
    assert max(abs(o) for o in offsets) <= 0.1
    assert min(offsets) < -0.08 and max(offsets) > 0.08  # it uses its whole band
    assert abs(float(np.mean(offsets))) < 0.01  # centred
    assert value("branin", params, 5, 10, 0, 0.0) == curve_and_value("branin", params, 5, 10, 0, 0.0)[0]


def test_the_same_inputs_give_the_same_value_and_other_seeds_other_ones() -> None:
    params = {**coords((0.4, 0.1, 0.5, 0.2, 0.3, 0.6)), "label": "ignored", "lr": 0.1}
    first = [value("hartmann6", params, e, 10, 7) for e in range(1, 11)]
    assert first == [value("hartmann6", dict(reversed(params.items())), e, 10, 7) for e in range(1, 11)]
    assert first != [value("hartmann6", params, e, 10, 8) for e in range(1, 11)]
    assert value("hartmann6", params, 10, 10, 7) != value("hartmann6", params, 10, 10, 8)


def test_a_value_is_the_same_in_another_process() -> None:
    code = (
        "from campaign_trainer.tasks.objective import value;"
        "print(repr(value('branin', {'x1': 1.5, 'x2': 4.25}, 3, 9, 11, 0.2)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == value("branin", {"x1": 1.5, "x2": 4.25}, 3, 9, 11, 0.2)


def test_importing_the_core_pulls_in_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, campaign_trainer.tasks.objective;"
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_early_epochs_rank_points_roughly_but_not_perfectly() -> None:
    # What makes early termination meaningful: epoch 1 of 10 correlates with the final value
    # (rank correlation well above 0) yet misorders some pairs.
    rng = np.random.default_rng(1)
    points = [coords(x) for x in rng.uniform([-5, 0], [10, 15], size=(200, 2))]
    early = np.array([value("branin", p, 2, 10) for p in points])
    final = np.array([value("branin", p, 10, 10) for p in points])
    rho = np.corrcoef(np.argsort(np.argsort(early)), np.argsort(np.argsort(final)))[0, 1]
    assert 0.6 < rho < 0.999


@pytest.mark.parametrize(
    ("function", "params", "message"),
    [
        ("ackley", coords((0, 0)), "function: 'ackley' is not one of branin, hartmann6, rosenbrock"),
        ("branin", {"x1": 0.0}, "needs hyperparameters x1, x2; missing x2"),
        ("branin", coords((0, 0, 0)), "has 2 coordinates (x1..x2); x3 is not one"),
        ("rosenbrock", {"x1": 0.0}, "x1, x2, ... (at least two); missing x2"),
        ("rosenbrock", {}, "missing x1, x2"),
        ("rosenbrock", {"x1": 0.0, "x3": 1.0}, "missing x2"),
        ("branin", {"x1": 0.0, "x2": "a"}, "x2: expected a finite number, got 'a'"),
        ("branin", {"x1": 0.0, "x2": math.nan}, "x2: expected a finite number"),
    ],
)
def test_a_bad_point_is_an_error_naming_the_hyperparameter(
    function: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        value(function, params, 1, 1)


def test_bad_epochs_and_curve_parameters_are_errors() -> None:
    p = coords((0, 0))
    for epoch, epochs in ((0, 5), (6, 5), (1, 0)):
        with pytest.raises(ValueError, match="not within"):
            value("branin", p, epoch, epochs)
    with pytest.raises(ValueError, match="noise"):
        value("branin", p, 1, 5, noise=-1)
    with pytest.raises(ValueError, match="curve_rate"):
        value("branin", p, 1, 5, curve_rate=0)


def test_bounds_are_a_search_space() -> None:
    assert FUNCTIONS["branin"].bounds() == [(-5.0, 10.0), (0.0, 15.0)]
    assert FUNCTIONS["hartmann6"].bounds() == [(0.0, 1.0)] * 6
    assert FUNCTIONS["rosenbrock"].bounds(4) == [(-5.0, 10.0)] * 4
    with pytest.raises(ValueError):
        FUNCTIONS["rosenbrock"].bounds()
