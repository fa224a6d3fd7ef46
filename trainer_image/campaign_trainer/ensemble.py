"""Vectorised seed ensembles (issue 12, item 1, the trainer-side core): N members of one built-in
regression configuration that differ only in seed, trained at once with ``torch.func``
(``stack_module_state`` + ``functional_call`` + ``vmap``), each member with its own metrics, history,
stop decision and final weights.

What makes a member the same as the separate trial with its seed (``harness.train_fn``):

* **init** -- each member's module *and data* come from the regression task's own ``build``, called
  right after ``pl.seed_everything(seed)`` as the harness does; then the parameters are stacked. A
  synthetic dataset without its own seed is drawn from the trial's seed, so members may train on
  different rows: the rows are kept per member.
* **data order** -- each member's batches are the trial's own ``train_dataloader()`` (the same
  DataLoader, RandomSampler and seeded generator), over a dataset of row indices instead of rows;
  one iterator per epoch, as Lightning takes, so the generator advances exactly as in the trial (per
  epoch one base-seed draw by the DataLoader iterator, then one ``randperm``).
* **optimiser** -- one ``torch.optim`` optimizer from the task's own ``make_optimizer`` (adamw, adam,
  sgd with momentum and weight decay) over the stacked leaf tensors. Those updates are elementwise --
  each element moves by its own gradient and its own moment buffers -- and the step count is shared
  by members that step together, so this is exactly one optimiser per member, without re-implementing
  any of them. (An optimizer that mixes elements, e.g. with global gradient-norm clipping, would not
  be; the regression task has none.) The loss minimised is the sum of the members' losses, whose
  gradient with respect to member m's parameters is member m's own gradient.
* **stopping** -- per member and per epoch, as ``CampaignCallback``: a non-finite loss/val_loss fails
  the member (NonFiniteLoss), then the stop rules and early stopping (``stoprules.evaluate``), then an
  optional ``decide`` hook. A decided member's final weights are kept and it is *dropped*: removed
  from the stacked parameters, the optimiser state and the batches (``active`` says who is left), so
  it neither costs time nor touches the others -- which run on exactly as without it.

Tolerance: float32. A batched matmul (one per layer for all members) rounds differently from the
trial's unbatched one, and Adam carries such last-bit differences on through the steps, so a member
matches its separate trial to rtol 1e-4 per epoch, not bit for bit (measured: ~1e-7 after 24 steps,
5e-5 after 150 steps of 20 members in bench/ensemble_vs_separate.py). Same seeds give the same
results bit for bit; dropping a member leaves the others bit for bit as they were while at least two
train (one left alone takes torch's unbatched kernels again).

Per-epoch metrics: ``loss`` (batch-size weighted mean of the batch losses, as Lightning's epoch
value), ``val_loss`` (MSE over the validation rows), the task's ``regression_metrics``, ``lr``, and
``epoch_time_s`` / ``samples_per_sec`` (the ensemble's shared wall time: members train together).

Not supported (a clear ValueError): ``dropout`` (members would need one mask stream each, so they
could not match their trials) and ``group_column`` / the per-day loss terms (python loops over days,
not vectorisable).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.data import DataLoader, Dataset

from campaign_operator.api.common import EarlyStopping, StopRule, TrialState
from campaign_operator.lifecycle.outcomes import NON_FINITE_LOSS
from campaign_operator.lifecycle.transitions import (
    is_better,
    training_verdict,
)
from campaign_trainer import metrics as task_metrics
from campaign_trainer import stoprules
from campaign_trainer.tasks.base import ArrayDataModule, TaskConfig, make_optimizer
from campaign_trainer.tasks.regression import RegressionModule, build

BatchHook = Callable[
    [int, int, tuple[int, ...], torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]
"""(epoch, step, seeds of the active members, x [A, B, F], y [A, B]) -> (x, y): a test hook."""
Decide = Callable[["Member"], stoprules.StopDecision | None]
Report = Callable[[int, int, Mapping[str, float]], None]
"""(seed, epoch, metrics): called for every active member after every epoch."""


@dataclass
class Member:
    """One member's own result: what its separate trial's callback would hold."""

    seed: int
    history: list[dict[str, Any]] = field(default_factory=list)
    """``{"epoch", "metrics"}`` per epoch trained."""
    best: dict[str, Any] | None = None
    decision: stoprules.StopDecision | None = None
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    """Final weights on the CPU (at its stop, or after the last epoch): RegressionModule's keys."""

    @property
    def epoch(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    def outcome_fields(self, epochs: int, objective_metric: str = "val_loss") -> tuple[str, str, str]:
        """(state, reason, message) as ``harness._outcome`` makes them."""
        last = self.history[-1]["metrics"] if self.history else {}
        d = training_verdict(self.decision, self.best is not None, self.epoch, epochs, last, objective_metric)
        return d.state, d.reason, d.message


class _RowIndices(Dataset[int]):
    """Rows 0..n-1 as the dataset: the trial's own DataLoader then yields the batch indices."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index

    def __getitems__(self, indices: list[int]) -> list[int]:  # the whole batch at once (no per-row calls)
        return indices


def _for_seed(cfg: TaskConfig, seed: int) -> TaskConfig:
    params = dict(cfg.parameters)
    if "seed" in params:
        params["seed"] = seed
    return dataclasses.replace(cfg, seed=seed, parameters=params)


def check_supported(cfg: TaskConfig) -> None:
    """Raise ValueError for a configuration whose members could not match their separate trials."""
    if float(cfg.param("dropout", 0.0)) > 0:
        raise ValueError("a seed ensemble cannot train with dropout > 0 (one mask stream per member)")
    if cfg.param("group_column", None) is not None:
        raise ValueError("a seed ensemble cannot train whole-day batches (group_column): not vectorisable")


def _order_loader(datamodule: ArrayDataModule) -> DataLoader[Any]:
    """The trial's own training DataLoader, over row indices instead of rows."""
    order = copy.copy(datamodule)
    order.train_set = _RowIndices(len(datamodule.train_set))  # type: ignore[assignment]
    return order.train_dataloader()


class SeedEnsemble:
    """Train the members of ``cfg`` (its seed ignored) for ``seeds`` together; ``fit()`` -> members.

    ``stop_rules`` / ``early_stopping``: the trial's, evaluated per member. ``decide``: an extra
    per-member rule after those. ``report``: called per active member after each epoch.
    ``transform_batch``: a hook that may change a training batch (tests poison one member with it).
    Note: building the members seeds the global RNGs (``pl.seed_everything``), as the harness does.
    """

    def __init__(
        self,
        cfg: TaskConfig,
        seeds: Sequence[int],
        *,
        stop_rules: Sequence[StopRule | Mapping[str, Any]] | None = None,
        early_stopping: EarlyStopping | Mapping[str, Any] | None = None,
        objective_metric: str = "val_loss",
        objective_mode: str = "min",
        decide: Decide | None = None,
        report: Report | None = None,
        transform_batch: BatchHook | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"a seed ensemble needs distinct seeds, got {list(seeds)}")
        check_supported(cfg)
        self.cfg = cfg
        self.device = torch.device(device)
        self.stop_rules, self.early_stopping = list(stop_rules or ()), early_stopping
        self.objective_metric, self.objective_mode = objective_metric, objective_mode
        self.decide, self.report, self.transform_batch = decide, report, transform_batch
        self.members = [Member(int(s)) for s in seeds]
        modules: list[RegressionModule] = []
        orders: list[DataLoader[Any]] = []
        rows: list[tuple[torch.Tensor, ...]] = []  # per member: train x, train y, val x, val y
        for member in self.members:
            pl.seed_everything(member.seed, workers=True, verbose=False)  # as harness.train_fn, then build
            module, datamodule = build(_for_seed(cfg, member.seed))
            assert isinstance(module, RegressionModule) and isinstance(datamodule, ArrayDataModule)
            modules.append(module)
            orders.append(_order_loader(datamodule))
            rows.append((*datamodule.train_set.tensors, *datamodule.val_set.tensors))
        self._orders = orders
        stacked = [torch.stack(column).to(self.device) for column in zip(*rows, strict=True)]
        self._train_x, self._train_y, self._val_x, self._val_y = stacked
        self._template = copy.deepcopy(modules[0]).to("meta")  # structure only; weights come stacked
        params, self._buffers = stack_module_state(modules)
        self._params = {k: v.to(self.device).detach().requires_grad_() for k, v in params.items()}
        self._optimizer = make_optimizer(list(self._params.values()), cfg)
        self._active = list(range(len(self.members)))  # positions in self.members, in stacked order
        self._train_loss = vmap(self._member_loss)
        self._predict = vmap(self._member_forward)

    @property
    def active(self) -> list[bool]:
        """Per member (in seed order): still training."""
        return [i in self._active for i in range(len(self.members))]

    def _member_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(self._template, (params, self._buffers), (x,))
        return out.float()

    def _member_loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._template.fit_loss(self._member_forward(params, x), y)

    def fit(self) -> list[Member]:
        for epoch in range(1, self.cfg.epochs + 1):
            if not self._active:
                break
            self._epoch(epoch)
        for pos, i in enumerate(self._active):  # trained every epoch: their weights at the end
            self.members[i].state_dict = self._weights(pos)
        return self.members

    def _epoch(self, epoch: int) -> None:
        t0 = time.perf_counter()
        rows = torch.tensor(self._active, device=self.device)
        seeds = tuple(self.members[i].seed for i in self._active)
        loss_sum = torch.zeros(len(self._active), dtype=torch.float64, device=self.device)
        seen = 0
        params = list(self._params.values())
        # One iterator per member per epoch, in lockstep (same row count -> same batch sizes).
        for step, batches in enumerate(zip(*(iter(self._orders[i]) for i in self._active), strict=True)):
            idx = torch.stack(batches).to(self.device)  # [A, B]
            x, y = self._train_x[rows[:, None], idx], self._train_y[rows[:, None], idx]
            if self.transform_batch is not None:
                x, y = self.transform_batch(epoch, step, seeds, x, y)
            losses = self._train_loss(self._params, x, y)
            self._optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(losses.sum(), inputs=params)
            self._optimizer.step()
            loss_sum += losses.detach().double() * idx.shape[1]
            seen += idx.shape[1]
        train_s = max(time.perf_counter() - t0, 1e-9)
        with torch.no_grad():
            pred = self._predict(self._params, self._val_x[rows])
            val_loss = ((pred - self._val_y[rows]) ** 2).mean(dim=1)
        pred_np, target_np = pred.cpu().numpy(), self._val_y[rows].cpu().numpy()
        loss_np, val_np = (loss_sum / max(seen, 1)).cpu().numpy(), val_loss.cpu().numpy()
        lr = float(self._optimizer.param_groups[0]["lr"])
        epoch_s = time.perf_counter() - t0
        keep: list[int] = []
        for pos, i in enumerate(self._active):
            m: dict[str, float] = {"loss": float(loss_np[pos]), "val_loss": float(val_np[pos])}
            m.update(task_metrics.regression_metrics(pred_np[pos], target_np[pos]))
            m.update(lr=lr, samples_per_sec=seen / train_s, epoch_time_s=epoch_s)
            if self._record(self.members[i], epoch, m):
                keep.append(pos)
            else:
                self.members[i].state_dict = self._weights(pos)
        if len(keep) < len(self._active):
            self._drop(keep)

    def _record(self, member: Member, epoch: int, m: dict[str, float]) -> bool:
        """Append the epoch to the member's history and decide; True while it keeps training."""
        member.history.append({"epoch": epoch, "metrics": m})
        value = m.get(self.objective_metric)
        best = member.best["metrics"].get(self.objective_metric) if member.best else None
        if value is not None and is_better(value, best, self.objective_mode):
            member.best = {"epoch": epoch, "metrics": dict(m)}
        member.decision = self._decision(member, m)
        if self.report is not None:
            self.report(member.seed, epoch, m)
        return member.decision is None

    def _decision(self, member: Member, m: Mapping[str, float]) -> stoprules.StopDecision | None:
        for key in ("loss", "val_loss"):  # as CampaignCallback._decide
            v = m[key]
            if not math.isfinite(v):
                return stoprules.StopDecision(
                    TrialState.FAILED, NON_FINITE_LOSS, f"{key} is {v} at epoch {member.epoch}", member.epoch
                )
        decision = stoprules.evaluate(self.stop_rules, self.early_stopping, member.history)
        if decision is None and self.decide is not None:
            decision = self.decide(member)
        return decision

    def _weights(self, pos: int) -> dict[str, torch.Tensor]:
        return {k: v[pos].detach().cpu().clone() for k, v in self._params.items()}

    def _drop(self, keep: list[int]) -> None:
        """Keep only the stacked members at positions ``keep``: parameters and optimiser state."""
        index = torch.tensor(keep, device=self.device)
        state = self._optimizer.state_dict()
        for i, p in enumerate(self._params.values()):
            for k, v in state["state"].get(i, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape:  # moments; the shared step count stays
                    state["state"][i][k] = v[index].clone()
        self._params = {k: v.detach()[index].clone().requires_grad_() for k, v in self._params.items()}
        self._optimizer = make_optimizer(list(self._params.values()), self.cfg)
        self._optimizer.load_state_dict(state)
        self._active = [self._active[p] for p in keep]


def train_ensemble(cfg: TaskConfig, seeds: Sequence[int], **options: Any) -> list[Member]:
    """``SeedEnsemble(cfg, seeds, **options).fit()``: the members in seed order."""
    return SeedEnsemble(cfg, seeds, **options).fit()


__all__ = ["Member", "SeedEnsemble", "check_supported", "train_ensemble"]
