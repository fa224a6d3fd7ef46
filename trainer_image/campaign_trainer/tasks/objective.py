"""The ``objective`` task: a cheap, deterministic stand-in for training, for benchmarks and tests.

A trial's hyperparameters ``x1, x2, ...`` are a point of a known test function (``function``:
``branin``, ``hartmann6`` or ``rosenbrock``); its "training" reports, every epoch, that function's
value at the point plus a learning curve that decays to zero at the last epoch, plus small
deterministic noise. Early epochs therefore rank trials roughly but not perfectly like their final
values (each trial's curve has its own height and speed), which is what early termination (ASHA,
median stopping) needs to be meaningful; nothing is trained, so thousands of trials cost seconds.

``value`` is the whole model, pure and numpy-only (importing this module imports neither torch nor
Lightning): a benchmark may call it directly. ``build`` wraps it as a task for the harness.

The metric at epoch ``e`` of ``E`` (1 <= e <= E), with ``f`` the function's value at the point::

    gap   = curve_gap * (f - minimum + SCALE) * (0.5 + u1)      # u1, u2 in [0, 1): from (seed, point)
    rate  = curve_rate * (0.5 + u2)
    curve = gap * (exp(-rate * e / E) - exp(-rate)) / (1 - exp(-rate))    # 0 at e = E
    value = f + curve + noise * (2 * u3 - 1)                     # u3 in [0, 1): from (seed, point, e)

so ``|value - (f + curve)| <= noise`` and the last epoch reports ``f`` within ``noise``. A worse
point starts higher (its gap grows with its regret ``f - minimum``); ``SCALE`` is the function's
typical spread. The draws hash the function, the seed, the epoch and the point's exact floats
(blake2b), so they are the same in every process and on every machine.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from campaign_trainer.tasks.base import TaskConfig

DEFAULT_FUNCTION = "branin"
DEFAULT_NOISE = 0.01
"""Half-width of the per-epoch noise, in the function's units."""
DEFAULT_CURVE_GAP = 1.0
DEFAULT_CURVE_RATE = 3.0
_COORDINATE = re.compile(r"^x([1-9][0-9]*)$")


@dataclass(frozen=True)
class TestFunction:
    """A known test function: its dimension (None: any >= 2), usual domain per coordinate (one
    pair for every coordinate of an n-d function), minimum and a point reaching it, and the typical
    spread that scales its learning curve."""

    name: str
    dims: int | None
    domain: tuple[tuple[float, float], ...]
    minimum: float
    argmin: tuple[float, ...]
    scale: float
    fn: Callable[[np.ndarray], float]

    def __call__(self, x: np.ndarray) -> float:
        return self.fn(x)

    def bounds(self, dims: int | None = None) -> list[tuple[float, float]]:
        """(low, high) of x1..xn: a search space for the function (``dims`` for an n-d one)."""
        n = self.dims or dims
        if n is None or n < 2 or (self.dims is not None and dims not in (None, self.dims)):
            raise ValueError(f"{self.name}: {dims} dimensions (it has {self.dims or 'n >= 2'})")
        return list(self.domain) if self.dims else [self.domain[0]] * n


def branin(x: np.ndarray) -> float:
    """Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]: minimum 0.397887 at (-pi, 12.275), (pi, 2.275)
    and (9.42478, 2.475)."""
    x1, x2 = float(x[0]), float(x[1])
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(x: np.ndarray) -> float:
    """Hartmann 6-d on [0, 1]^6: minimum -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332,
    0.311652, 0.6573)."""
    inner = np.sum(_H6_A * (np.asarray(x, dtype=float) - _H6_P) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


def rosenbrock(x: np.ndarray) -> float:
    """Rosenbrock in n >= 2 dimensions, usually on [-5, 10]^n: minimum 0 at (1, ..., 1)."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


FUNCTIONS: dict[str, TestFunction] = {
    "branin": TestFunction(
        "branin", 2, ((-5.0, 10.0), (0.0, 15.0)), 0.397887, (-math.pi, 12.275), 10.0, branin
    ),
    "hartmann6": TestFunction(
        "hartmann6",
        6,
        ((0.0, 1.0),) * 6,
        -3.32237,
        (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573),
        1.0,
        hartmann6,
    ),
    "rosenbrock": TestFunction("rosenbrock", None, ((-5.0, 10.0),), 0.0, (1.0, 1.0), 100.0, rosenbrock),
}
"""The functions by name (rosenbrock's argmin is the 2-d one: (1, ..., 1) in any dimension)."""


def function_named(name: str) -> TestFunction:
    if name not in FUNCTIONS:
        raise ValueError(f"hyperparameter function: {name!r} is not one of {', '.join(FUNCTIONS)}")
    return FUNCTIONS[name]


def point(function: str, params: Mapping[str, Any]) -> np.ndarray:
    """The point ``(x1, ..., xn)`` among a trial's hyperparameters (other names are ignored).
    Rosenbrock's dimension is the number of coordinates given (x1..xn, n >= 2)."""
    f = function_named(function)
    given = {int(m.group(1)): v for k, v in params.items() if (m := _COORDINATE.match(str(k)))}
    dims = f.dims if f.dims is not None else max([2, *given])
    names = [f"x{i}" for i in range(1, dims + 1)]
    missing = [n for i, n in enumerate(names, 1) if i not in given]
    if missing:
        need = ", ".join(names) if f.dims is not None else "x1, x2, ... (at least two)"
        raise ValueError(f"function {function} needs hyperparameters {need}; missing {', '.join(missing)}")
    extra = sorted(f"x{i}" for i in given if i > dims)
    if extra:
        raise ValueError(
            f"function {function} has {dims} coordinates (x1..x{dims}); {', '.join(extra)} is not one"
        )
    coords = []
    for i, name in enumerate(names, 1):
        v = given[i]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"hyperparameter {name}: expected a finite number, got {v!r}")
        coords.append(float(v))
    return np.array(coords)


def _uniform(*key: object) -> float:
    """A draw in [0, 1) from the key's exact text (floats as their hex): the same everywhere."""
    text = "|".join(v.hex() if isinstance(v, float) else str(v) for v in key)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def value(
    function: str,
    params: Mapping[str, Any],
    epoch: int,
    epochs: int,
    seed: int = 0,
    noise: float = DEFAULT_NOISE,
    *,
    curve_gap: float = DEFAULT_CURVE_GAP,
    curve_rate: float = DEFAULT_CURVE_RATE,
) -> float:
    """The metric a trial at ``params`` reports at ``epoch`` (1..epochs); see the module's doc."""
    curve = curve_and_value(
        function, params, epoch, epochs, seed, noise, curve_gap=curve_gap, curve_rate=curve_rate
    )
    return curve[1]


def curve_and_value(
    function: str,
    params: Mapping[str, Any],
    epoch: int,
    epochs: int,
    seed: int = 0,
    noise: float = DEFAULT_NOISE,
    *,
    curve_gap: float = DEFAULT_CURVE_GAP,
    curve_rate: float = DEFAULT_CURVE_RATE,
) -> tuple[float, float]:
    """``(f + curve, value)``: the noiseless learning curve at ``epoch`` and the reported value."""
    if epochs < 1 or not 1 <= epoch <= epochs:
        raise ValueError(f"epoch {epoch} is not within 1..{epochs}")
    for name, v in (("noise", noise), ("curve_gap", curve_gap)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"hyperparameter {name}: expected a finite number >= 0, got {v!r}")
    if not (math.isfinite(curve_rate) and curve_rate > 0):
        raise ValueError(f"hyperparameter curve_rate: expected a finite number > 0, got {curve_rate!r}")
    f = function_named(function)
    x = point(function, params)
    final = f(x)
    key = (f.name, int(seed), *(float(c) for c in x))
    gap = curve_gap * (max(final - f.minimum, 0.0) + f.scale) * (0.5 + _uniform("gap", *key))
    rate = curve_rate * (0.5 + _uniform("rate", *key))
    decay = (math.exp(-rate * epoch / epochs) - math.exp(-rate)) / -math.expm1(-rate)
    curve = final + gap * decay
    return curve, curve + noise * (2 * _uniform("noise", *key, int(epoch)) - 1)


def _number(cfg: TaskConfig, name: str, default: float) -> float:
    v = cfg.param(name, default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"hyperparameter {name}: expected a number, got {v!r}")
    return float(v)


@functools.cache
def _lightning_classes() -> tuple[type[pl.LightningModule], type[pl.LightningDataModule]]:
    """The task's Lightning classes, defined on first use so the core above stays torch-free."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.strategies import ParallelStrategy
    from torch.utils.data import DataLoader, TensorDataset

    class ObjectiveModule(pl.LightningModule):
        """No parameters and no optimizer: each epoch's one step logs ``value`` at that epoch."""

        def __init__(self, cfg: TaskConfig) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.function = str(cfg.param("function", DEFAULT_FUNCTION))
            self.params = dict(cfg.parameters)
            self.epochs, self.seed = cfg.epochs, cfg.seed
            self.noise = _number(cfg, "noise", DEFAULT_NOISE)
            self.curve_gap = _number(cfg, "curve_gap", DEFAULT_CURVE_GAP)
            self.curve_rate = _number(cfg, "curve_rate", DEFAULT_CURVE_RATE)
            self.epoch_seconds = _number(cfg, "epoch_seconds", 0.0)
            if self.epoch_seconds < 0:
                raise ValueError(f"hyperparameter epoch_seconds: expected >= 0, got {self.epoch_seconds}")
            self.lr = _number(cfg, "lr", 0.0)
            self._at(1)  # a bad function, point or curve parameter fails before the first epoch

        def _at(self, epoch: int) -> tuple[float, float]:
            return curve_and_value(
                self.function,
                self.params,
                epoch,
                self.epochs,
                self.seed,
                self.noise,
                curve_gap=self.curve_gap,
                curve_rate=self.curve_rate,
            )

        def setup(self, stage: str) -> None:
            if isinstance(self.trainer.strategy, ParallelStrategy):
                raise ValueError(
                    "the objective task trains nothing to distribute: set resources.workers to 0"
                )

        def training_step(self, batch: Any, batch_idx: int) -> None:
            if self.epoch_seconds:
                time.sleep(self.epoch_seconds)
            loss, val_loss = self._at(self.current_epoch + 1)
            for name, v in (("loss", loss), ("val_loss", val_loss), ("lr", self.lr)):
                # float64: the reported value is value(...) exactly, not its float32 rounding
                self.log(
                    name, torch.tensor(v, dtype=torch.float64), on_step=False, on_epoch=True, batch_size=1
                )

        def configure_optimizers(self) -> None:
            return None  # nothing to optimise

    class ObjectiveDataModule(pl.LightningDataModule):
        """One batch of one row per epoch (the epoch's step); no validation loader."""

        def train_dataloader(self) -> DataLoader[Any]:
            return DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)

    return ObjectiveModule, ObjectiveDataModule


def build(cfg: TaskConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    import warnings

    warnings.filterwarnings("ignore", ".*configure_optimizers.*returned `None`.*")
    module_class, datamodule_class = _lightning_classes()
    module: pl.LightningModule = module_class(cfg)
    return module, datamodule_class()
