"""The training loop wiring: a task's Lightning module under Ray Train V2, with the campaign's
per-epoch metrics, stop rules, reporting and checkpoints.

Two entry points:

* ``train_fn(trial, reporter, *, checkpoint_root=None)`` -- the core: builds the task, runs
  Lightning in *this* process, reports every epoch, returns the Outcome (never raises for a task
  error). It touches no Ray API, so a Ray Tune function trainable can call it as-is (benchmarks).
* ``run_trial(trial, reporter, *, checkpoint_root=None)`` -- runs ``train_fn`` under
  ``ray.train.torch.TorchTrainer`` and always reports the outcome exactly once. ``workers: 0``
  is Train V2 local mode (in-process, no Ray cluster or actors needed: cheap inside a Ray task);
  ``workers >= 1`` runs DDP workers with ``RayDDPStrategy`` on a running Ray cluster (or a local one
  started here).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from campaign_operator.api.base import MESSAGE_BUDGET, bounded
from campaign_operator.api.common import TrialState
from campaign_operator.lifecycle.bounds import watched_metrics
from campaign_operator.lifecycle.outcomes import DATA_ERROR, INPUT_MISSING, NON_FINITE_LOSS, point_label
from campaign_operator.lifecycle.transitions import (
    OUTPUTS_USABLE,
    is_better,
    training_verdict,
)
from campaign_trainer import artifacts, checkpoints, stoprules
from campaign_trainer.config import TrialConfig, best_effort_name, parse_trial
from campaign_trainer.data.loaders import DataError
from campaign_trainer.halt import HaltWatch
from campaign_trainer.metrics import scalar_metrics
from campaign_trainer.outcome import HISTORY_LIMIT, Outcome, error_message, failure, now_rfc3339
from campaign_trainer.reporters import Reporter, ReportFailed
from campaign_trainer.resources import choose_precision, scaling_kwargs
from campaign_trainer.tasks import TaskConfig, resolve_task
from campaign_trainer.tasks.base import WritesOutputs

log = logging.getLogger("campaign_trainer")

# Full history kept in memory and checkpoints (stop rules, thinning); reporters bound what they publish.
_HISTORY_KEEP = max(HISTORY_LIMIT, 100_000)


def _quiet_lightning() -> None:
    # Lightning's per-Trainer banners ("GPU available: ...") and dataloader hints are noise in trial logs.
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*predict_dataloader.*")
    # Task metrics computed in numpy are rank-local by design (rank 0's are reported and decide).
    warnings.filterwarnings("ignore", ".*sync_dist=True.*")


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, list | tuple) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, Mapping) and batch:
        return _batch_size(next(iter(batch.values())))
    return 0


class CampaignCallback(pl.Callback):
    """Per-epoch bookkeeping: metrics (+ samples/s, lr), stop rules, reporting, checkpoints.

    Its state (history, best) travels in the Lightning checkpoint so a resumed trial keeps its
    stop-rule patience counters and best epoch.
    """

    def __init__(
        self,
        cfg: TrialConfig,
        reporter: Reporter,
        store: checkpoints.CheckpointStore | None,
        workdir: Path,
        halt: HaltWatch | None = None,
    ) -> None:
        self.cfg = cfg
        self.reporter = reporter
        self.store = store
        self.workdir = workdir
        self.halt = halt or HaltWatch(None)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.decision: stoprules.StopDecision | None = None
        self.last_checkpoint: str | None = None
        self._t0 = 0.0
        self._t_last = 0.0
        self._samples = 0

    def state_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "history": self.history,
            "best": self.best,
            "last_checkpoint": self.last_checkpoint,
            # plain types only: checkpoints must load with torch's weights_only unpickler too
            "decision": {"state": str(d.state), "reason": d.reason, "message": d.message, "epoch": d.epoch}
            if d
            else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history") or [])
        self.best = state_dict.get("best")
        self.last_checkpoint = state_dict.get("last_checkpoint")
        d = state_dict.get("decision")
        self.decision = (
            stoprules.StopDecision(TrialState(d["state"]), d["reason"], d["message"], int(d.get("epoch", 0)))
            if d
            else None
        )

    def finished(self) -> bool:
        """The restored state is terminal: a decision was made, or every epoch ran."""
        last = int(self.history[-1]["epoch"]) if self.history else 0
        return self.decision is not None or last >= self.cfg.epochs

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.halt.check()
        self._t0 = self._t_last = time.perf_counter()
        self._samples = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._samples += _batch_size(batch)
        self._t_last = time.perf_counter()
        self.halt.check()

    def _epoch_metrics(self, trainer: pl.Trainer) -> dict[str, float]:
        m = scalar_metrics(trainer.callback_metrics)
        train_s = max(self._t_last - self._t0, 1e-9)
        # Training throughput of this rank (validation time excluded).
        m["samples_per_sec"] = self._samples / train_s
        m["epoch_time_s"] = time.perf_counter() - self._t0
        if trainer.optimizers and trainer.optimizers[0].param_groups:  # gbm: Lightning's empty mock optimizer
            m["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        return m

    def _decide(self, metrics: Mapping[str, float]) -> stoprules.StopDecision | None:
        for key in ("loss", "val_loss"):
            v = metrics.get(key)
            if v is not None and not math.isfinite(v):
                epoch = int(self.history[-1]["epoch"])
                return stoprules.StopDecision(
                    TrialState.FAILED, NON_FINITE_LOSS, f"{key} is {v} at epoch {epoch}", epoch
                )
        return stoprules.evaluate(self.cfg.stop_rules, self.cfg.early_stopping, self.history)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        metrics = self._epoch_metrics(trainer)
        self.history.append({"epoch": epoch, "metrics": metrics})
        del self.history[:-_HISTORY_KEEP]
        value = metrics.get(self.cfg.objective_metric)
        best_value: float | None = self.best["metrics"].get(self.cfg.objective_metric) if self.best else None
        if value is not None and is_better(value, best_value, self.cfg.objective_mode):
            self.best = {"epoch": epoch, "metrics": dict(metrics)}
        decision = self._decide(metrics)
        if trainer.world_size > 1:
            # One decision for all ranks (rank 0's metrics are the reported ones).
            decision = trainer.strategy.broadcast(decision, src=0)
        self.decision = decision
        if trainer.is_global_zero:
            self.reporter.report_epoch(epoch, metrics)
        final = decision is not None or epoch >= (trainer.max_epochs or epoch)
        if self.store is not None and checkpoints.should_checkpoint(
            epoch, self.cfg.checkpoint.every_epochs, final
        ):
            self._checkpoint(trainer, epoch)
        if decision is not None:
            trainer.should_stop = True

    def _checkpoint(self, trainer: pl.Trainer, epoch: int) -> None:
        assert self.store is not None
        local = self.workdir / f"save-rank{trainer.global_rank}.ckpt"
        name = checkpoints.checkpoint_name(epoch)
        self.last_checkpoint = checkpoints.uri_of(self.store, name)  # recorded before save: it is in the file
        trainer.save_checkpoint(local, weights_only=False)  # every rank: the strategy decides who writes
        if trainer.is_global_zero:
            checkpoints.save(self.store, local, epoch, self.cfg.checkpoint.keep)
            local.unlink(missing_ok=True)
        trainer.strategy.barrier("campaign-checkpoint")


def _checkpoint_uri(cfg: TrialConfig, checkpoint_root: str | None) -> str | None:
    if cfg.checkpoint.uri:
        return cfg.checkpoint.uri
    if checkpoint_root:
        return f"{checkpoint_root.rstrip('/')}/{cfg.name}"
    return None


def _lightning_trainer(cfg: TrialConfig, callback: CampaignCallback, distributed: bool) -> pl.Trainer:
    use_cuda = cfg.resources.gpu > 0 and torch.cuda.is_available()
    bf16 = use_cuda and torch.cuda.is_bf16_supported()
    kwargs: dict[str, Any] = {
        "max_epochs": cfg.epochs,
        "accelerator": "gpu" if use_cuda else "cpu",
        "precision": choose_precision(use_cuda, cfg.precision, bf16),
        "callbacks": [callback],
        "logger": False,
        "enable_checkpointing": False,  # checkpoints are ours: every k epochs, to the trial's store
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "deterministic": not use_cuda,  # bit-for-bit reruns on CPU; GPU keeps its fast kernels
    }
    if distributed:
        from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

        # ray.train.lightning is untyped: its strategy objects and prepare_trainer come back as Any.
        strategy, environment = RayDDPStrategy(), RayLightningEnvironment()  # type: ignore[no-untyped-call]
        kwargs.update(devices="auto", strategy=strategy, plugins=[environment])
        prepared: pl.Trainer = prepare_trainer(pl.Trainer(**kwargs))
        return prepared
    kwargs["devices"] = 1
    return pl.Trainer(**kwargs)


def train_fn(
    trial: Any,
    reporter: Reporter,
    *,
    checkpoint_root: str | None = None,
    distributed: bool = False,
    halt_file: str | None = None,
) -> Outcome:
    """Train one trial in this process; report each epoch; return (not report) the Outcome.

    ``trial``: a Trial object/spec mapping, JSON/YAML text, the API model, or a parsed TrialConfig.
    ``halt_file``: once it exists, training unwinds with ``halt.Halted`` (the shell's stop).
    """
    cfg = trial if isinstance(trial, TrialConfig) else None
    callback: CampaignCallback | None = None
    workdir = checkpoints.scratch_dir()
    resumed_from: int | None = None
    try:
        cfg = cfg or parse_trial(trial)
        _quiet_lightning()
        # Intra-op threads = the CPUs the trial asked for: small models on oversubscribed nodes run
        # many times slower with extra OpenMP threads (measured 15x on a loaded 2-core box).
        torch.set_num_threads(max(1, math.floor(cfg.resources.cpu)))
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        builder = resolve_task(cfg.task)
        inputs = artifacts.fetch_inputs(cfg.inputs, workdir / "inputs")
        outputs_dir = workdir / artifacts.OUTPUTS_DIR
        outputs_dir.mkdir()
        task_cfg = TaskConfig(
            cfg.parameters, cfg.dataset, cfg.batch_size, cfg.epochs, cfg.seed, inputs, outputs_dir
        )
        module, datamodule = builder(task_cfg)
        uri = _checkpoint_uri(cfg, checkpoint_root)
        store = checkpoints.open_store(uri) if uri else None
        ckpt_path: str | None = None
        if store is not None:
            latest = checkpoints.fetch_latest(store, workdir)
            if latest is not None:
                resumed_from, local = latest
                ckpt_path = str(local)
                log.info("trial %s resumes from epoch %d", cfg.name, resumed_from)
        callback = CampaignCallback(cfg, reporter, store, workdir, HaltWatch(halt_file))
        if ckpt_path is not None:
            prior = _callback_state(ckpt_path)
            if prior is not None:
                callback.load_state_dict(prior)
                if callback.finished():
                    # A restart after the end (pod restarted before the operator saw the outcome):
                    # report the same outcome again instead of training past a stop decision.
                    again = _outcome(cfg, callback, resumed_from)
                    again.outputs = _published_outputs(again, uri)
                    return again
        trainer = _lightning_trainer(cfg, callback, distributed)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        outcome = _outcome(cfg, callback, resumed_from)
        if uri and trainer.is_global_zero and outcome.state in OUTPUTS_USABLE:
            outcome.outputs = _publish_outputs(cfg, module, datamodule, outputs_dir, uri, outcome)
        return outcome
    except Exception as exc:  # the outcome must always be reportable, whatever the task did
        if isinstance(exc, DataError | artifacts.InputMissing):
            log.error("trial failed: %s", exc)  # the message says it all; a traceback is noise
        else:
            log.exception("trial failed")
        name = cfg.name if cfg else "trial"
        out = _failure(cfg, name, exc)
        if callback is not None and callback.history:
            out.epoch = int(callback.history[-1]["epoch"])
            out.metrics = dict(callback.history[-1]["metrics"])
            out.history, out.best, out.checkpoint = (
                list(callback.history),
                callback.best,
                callback.last_checkpoint,
            )
        out.resumed_from_epoch = resumed_from
        out.keep_first = _keep_first(cfg) if cfg else ()
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _failure(cfg: TrialConfig | None, name: str, exc: Exception) -> Outcome:
    """Data and input errors are told apart (not retried: the same file fails the same way) and
    name the trial by its identifying parameters; a refused progress report stops training:
    nobody would see the rest of it."""
    if isinstance(exc, DataError | artifacts.InputMissing):
        who = point_label(cfg.sweep_point) if cfg and cfg.sweep_point else f"trial {name}"
        out = failure(name, exc, reason=DATA_ERROR if isinstance(exc, DataError) else INPUT_MISSING)
        out.message = bounded(f"{who}: {' '.join(str(exc).split())}", MESSAGE_BUDGET)
        return out
    return failure(name, exc, reason="ReportFailed" if isinstance(exc, ReportFailed) else "TaskError")


def _publish_outputs(
    cfg: TrialConfig,
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    local: Path,
    checkpoint_uri: str,
    outcome: Outcome,
) -> str | None:
    """The task's outputs (built-in tasks write theirs here; a user task may have written into
    TaskConfig.outputs_dir) stored next to the checkpoints; None when the task wrote nothing."""
    if isinstance(module, WritesOutputs):
        module.eval()  # predictions without dropout
        module.write_outputs(local, datamodule)
    if not any(local.iterdir()):
        return None
    uri = artifacts.outputs_uri(checkpoint_uri)
    about = {"trial": cfg.name, "task": cfg.task, "state": outcome.state, "epoch": outcome.epoch}
    try:
        return artifacts.publish(local, uri, about)
    except Exception as exc:
        raise RuntimeError(f"cannot store the trial's outputs at {uri}: {error_message(exc)}") from exc


def _published_outputs(outcome: Outcome, checkpoint_uri: str | None) -> str | None:
    if not checkpoint_uri or outcome.state not in OUTPUTS_USABLE:
        return None
    uri = artifacts.outputs_uri(checkpoint_uri)
    return uri if artifacts.published(uri) else None


def _callback_state(path: str) -> dict[str, Any] | None:
    # mmap: only the small callback entry is materialised, not the model/optimizer tensors.
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    state = (ckpt.get("callbacks") or {}).get(CampaignCallback.__qualname__)
    return dict(state) if isinstance(state, Mapping) else None


def _outcome(cfg: TrialConfig, cb: CampaignCallback, resumed_from: int | None) -> Outcome:
    last: dict[str, Any] = cb.history[-1] if cb.history else {"epoch": 0, "metrics": {}}
    d = training_verdict(
        cb.decision,
        cb.best is not None,
        int(last["epoch"]),
        cfg.epochs,
        last["metrics"],
        cfg.objective_metric,
    )
    return Outcome(
        trial=cfg.name,
        state=d.state,
        reason=d.reason,
        message=d.message,
        epoch=int(last["epoch"]),
        metrics=dict(last["metrics"]),
        best=cb.best,
        history=list(cb.history),
        checkpoint=cb.last_checkpoint,
        completion_time=now_rfc3339(),
        resumed_from_epoch=resumed_from,
        keep_first=_keep_first(cfg),
    )


def _keep_first(cfg: TrialConfig) -> tuple[str, ...]:
    return (cfg.objective_metric, *watched_metrics(cfg.stop_rules, cfg.early_stopping, cfg.keep_metrics))


def _train_loop_per_worker(config: dict[str, Any]) -> Outcome:
    return train_fn(
        config["trial"],
        config["reporter"],
        checkpoint_root=config["checkpoint_root"],
        distributed=config["distributed"],
        halt_file=config.get("halt_file"),
    )


def ensure_ray() -> None:
    """Join the Ray cluster we are in (RAY_ADDRESS, or an already initialised driver), else start a
    private local one: no dashboard, quiet, never attaching to someone else's cluster by accident."""
    import ray

    if ray.is_initialized():
        return
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**common)
    else:
        ray.init(address="local", include_dashboard=False, **common)


def run_trial(
    trial: Any, reporter: Reporter, *, checkpoint_root: str | None = None, halt_file: str | None = None
) -> Outcome:
    """Run one trial under Ray Train V2 and report its outcome (always, exactly once, unless the shell
    halts it through `halt_file`: then ``halt.Halted`` propagates and nothing is reported)."""
    try:
        cfg = trial if isinstance(trial, TrialConfig) else parse_trial(trial)
    except Exception as exc:
        outcome = failure(best_effort_name(trial), exc, reason="InvalidTrial")
        reporter.report_outcome(outcome)
        return outcome
    try:
        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative dataset paths keep working
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        scaling = scaling_kwargs(cfg.resources)
        distributed = scaling["num_workers"] >= 1
        if not distributed:
            # "Running in local mode..." on every trial is noise: local mode is the normal small-trial path.
            logging.getLogger("ray.train.v2.api.config").setLevel(logging.WARNING)
        if distributed:
            ensure_ray()
        trainer = TorchTrainer(
            _train_loop_per_worker,  # type: ignore[arg-type]  # V2 passes the return value through
            train_loop_config={
                "trial": cfg,
                "reporter": reporter,
                "checkpoint_root": checkpoint_root,
                "distributed": distributed,
                "halt_file": halt_file,
            },
            scaling_config=ScalingConfig(**scaling),
            run_config=RunConfig(
                # Unique per attempt: Train V2 auto-resumes a reused (storage_path, name); our own
                # checkpoints handle resumption, so Ray's must never pick up a stale run.
                name=f"{cfg.name}-{uuid.uuid4().hex[:8]}",
                storage_path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "campaign-ray-train"),
                failure_config=FailureConfig(max_failures=0),  # retries are the campaign's policy
            ),
        )
        returned = getattr(trainer.fit(), "return_value", None)  # V2 Result; the static type is V1's
        if not isinstance(returned, Outcome):
            raise RuntimeError(f"train function returned {type(returned).__name__}, not an Outcome")
        outcome = returned
    except Exception as exc:
        outcome = failure(cfg.name, exc)
    reporter.report_outcome(outcome)
    return outcome


__all__ = ["CampaignCallback", "Outcome", "ensure_ray", "error_message", "run_trial", "train_fn"]
