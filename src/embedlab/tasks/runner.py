"""The runner: specs -> task -> model -> trainer -> fit -> evaluate -> results.json and its meta. It
owns what every task shares and never asks which task it runs; a ``finally`` always finishes the W&B
run, so jobs of a sweep never share one."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.devices import trainer_device
from embedlab.errors import ConfigError
from embedlab.models.encoder import model_fingerprint
from embedlab.tasks.base import EvalOutput, Task
from embedlab.tasks.card import fill_model_card
from embedlab.tasks.model import make_encoder
from embedlab.tasks.registry import task_class
from embedlab.tracking.results import git_state, package_versions, redact, write_results
from embedlab.tracking.wandb_logger import finish_wandb

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs

log = logging.getLogger(__name__)


def run(specs: RunSpecs) -> tuple[dict[str, float], dict[str, Any]]:
    """One run from plain specs (what ``train`` does after reading the config)."""
    import lightning as L

    start = time.perf_counter()
    L.seed_everything(specs.run.seed, workers=True)
    out = Path(specs.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    task: Task = task_class(specs.task)(specs)
    model, resolved = task.build_model()  # (None, None): a model without weights (bm25)
    model_fp = model_fingerprint(resolved) if resolved is not None else None
    loggers = [spec.build() for spec in specs.run.loggers]
    exit_code = 1
    try:  # from here on the W&B run exists: the finally block must finish it
        trainer, module, datamodule, extra, before = None, None, None, {}, None
        if specs.run.fit:
            datamodule = task.build_datamodule(model)
            module = task.build_module(model)
            trainer = make_trainer(specs, loggers, with_callbacks=True)
            if specs.run.eval_before_fit and trainer.is_global_zero:  # the same path as after training
                model.eval()
                before = task.evaluate(make_encoder(specs, model), []).metrics
            extra = fit(task, trainer, model, module, datamodule, loggers)
        else:
            trainer = make_trainer(specs, loggers, with_callbacks=False)
        if specs.weights.name != "fp32":  # what the weights really are, read from the model
            from embedlab.models.weight_precision import weight_precision_summary

            extra["weights"] = weight_precision_summary(model)
        metrics: dict[str, float] = {}
        if trainer.is_global_zero:
            if model is not None:
                model.eval()
            encoder = None if model is None else make_encoder(specs, model)  # on the run's device again
            result = task.evaluate(encoder, loggers)
            if encoder is not None:  # meta.device.evaluate (meta.device.train: fit)
                extra.setdefault("device", {})["evaluate"] = encoder.describe()
            if model is not None:  # after evaluate: a task may update the model there (MLM's guard)
                extra.update(save_model(specs, model, out, result.metrics))
            metrics = result.metrics
            if before is not None:
                extra["before_fit"] = before_fit_record(before, metrics, str(specs.data_cfg.get("metric")))
            bounds = {
                f"{k}/ci95_{end}": v[end] for k, v in result.intervals.items() for end in ("low", "high")
            }
            for lg in loggers:
                lg.log_metrics(metrics | bounds, step=int(trainer.global_step))
            meta = collect_meta(specs, resolved, model_fp, result, time.perf_counter() - start, extra)
            write_results(
                out / "results.json",
                metrics,
                meta,
                intervals=result.intervals,
                comparisons=result.comparisons,
            )
            headline = f"/{specs.data_cfg.get('metric')}"
            log.info("Results: %s", {k: round(v, 4) for k, v in metrics.items() if k.endswith(headline)})
            log.info("Wrote %s", out / "results.json")
        exit_code = 0
        objects = dict(model=model, encoder=model, module=module, trainer=trainer, datamodule=datamodule)
        return metrics, objects | {"task": task, **task.objects()}
    finally:
        finish_wandb(loggers, exit_code)


def before_fit_record(before: dict[str, float], after: dict[str, float], metric: str) -> dict[str, Any]:
    """``meta.before_fit``: every metric of the initial model, and for the headline metric of each scored
    split its value before and after fine-tuning and the difference (after - before); logged too."""
    headline = {}
    for key in sorted(k for k in before.keys() & after.keys() if k.endswith(f"/{metric}")):
        h = headline[key] = {
            "before": before[key],
            "after": after[key],
            "difference": after[key] - before[key],
        }
        log.info("%s: %.4f before fine-tuning -> %.4f after (%+.4f)", key, *h.values())
    return {"headline": headline, "metrics": before}


def make_trainer(specs: RunSpecs, loggers: list[Any], *, with_callbacks: bool) -> Any:
    callbacks = [c.build() for c in specs.run.callbacks] if with_callbacks else []
    if not loggers:  # Lightning refuses a LearningRateMonitor without a logger
        from lightning.pytorch.callbacks import LearningRateMonitor

        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = specs.run.trainer.build(callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(redact(dict(specs.run.config)))
    return trainer


def fit(
    task: Task, trainer: Any, model: Any, module: Any, datamodule: Any, loggers: list[Any]
) -> dict[str, Any]:
    """Count truncated training texts, train (resumably), record steps and the cluster."""
    from embedlab.encode.stats import token_lengths

    record: dict[str, Any] = {}
    texts = task.train_texts(datamodule)
    if texts:
        lengths = token_lengths(model, texts)
        n_long = int((lengths > model.max_seq_length).sum())
        if n_long:
            log.warning(
                "%d distinct training texts exceed %d tokens and are truncated.", n_long, model.max_seq_length
            )
        record = {"n_truncated_texts": n_long, "max_tokens": int(lengths.max())}
    task.before_fit(model, module, loggers)
    fit_start = time.perf_counter()
    model.train()  # built in eval mode; Lightning keeps submodule modes, so dropout needs this
    out, ckpt_path = Path(task.specs.run.output_dir), task.specs.run.ckpt_path
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)  # SLURM counts requeues of this job
    if restarts and ckpt_path is None and (out / "checkpoints" / "last.ckpt").is_file():
        log.info("Requeued job (restart %d): resuming from its last checkpoint.", restarts)
        ckpt_path = "last"
    fit_resumable(trainer, module, datamodule, ckpt_path, out)
    task.after_fit(module, trainer)
    record.update(seconds=time.perf_counter() - fit_start, steps=int(trainer.global_step))
    record.update(resumed_from=ckpt_path, slurm_restarts=restarts)
    strategy, job = trainer.strategy, os.environ.get("SLURM_JOB_ID")
    cluster = type(getattr(strategy, "cluster_environment", None)).__name__
    distributed = dict(world_size=int(trainer.world_size), num_nodes=int(trainer.num_nodes), slurm_job_id=job)
    return {
        "train": record,
        "distributed": distributed | dict(strategy=type(strategy).__name__, cluster_environment=cluster),
        "device": {"train": trainer_device(trainer)},
    }


def fit_resumable(trainer: Any, module: Any, datamodule: Any, ckpt_path: str | None, out: Path) -> None:
    """``trainer.fit`` resuming from ``ckpt_path`` ("last": ``<out>/checkpoints/last.ckpt``) loaded with
    ``weights_only=True``: a checkpoint holding pickled objects is refused (unpickling runs code)."""
    import pickle

    if ckpt_path == "last":
        last = out / "checkpoints" / "last.ckpt"
        if last.is_file():
            log.info("Resuming from %s", last)
        else:
            log.warning(
                "ckpt_path=last but %s does not exist: training from scratch. To resume a run, "
                "point hydra.run.dir (or hydra.sweep.dir for a sweep) at that run's folder.",
                last,
            )
    elif ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: no such checkpoint file. Use a .ckpt path or ckpt_path=last."
        )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        culprit = next((ln for ln in lines if "GLOBAL" in ln), lines[0] if lines else "")
        raise ConfigError(
            f"Refusing checkpoint ckpt_path={ckpt_path}: it holds pickled Python objects, not only tensors "
            f"and plain values, and embedlab loads checkpoints with torch.load(weights_only=True). Resume only "
            f"from checkpoints that embedlab wrote (<run dir>/checkpoints/last.ckpt). torch: {culprit}"
        ) from exc


def save_model(specs: RunSpecs, model: Any, out: Path, metrics: dict[str, float]) -> dict[str, Any]:
    """``<out>/model``, a sentence-transformers folder whose README.md is a filled model card."""
    if specs.run.save_model and specs.weights.name != "fp32":
        log.info("Model not saved: its %s weights are for evaluation only.", specs.weights.name)
    elif specs.run.save_model:
        fill_model_card(model, specs, metrics)
        model.save(str(out / "model"))
        return {"saved_model": str(out / "model")}
    return {}


def collect_meta(
    specs: RunSpecs, resolved: Any, model_fp: str, result: EvalOutput, seconds: float, extra: dict[str, Any]
) -> dict[str, Any]:
    source, path = (resolved.source, str(resolved.path)) if resolved is not None else (specs.model_kind, None)
    model = dict(name=specs.model.name, source=source, path=path, fingerprint=model_fp)
    meta = {"task": specs.run.task_name, "run_name": specs.run.run_name, "config": dict(specs.run.config)}
    meta |= {
        "packages": package_versions(),
        "git": git_state(Path(__file__).resolve().parent),
        "model": model,
    }
    meta |= {"data": result.data_meta, "wall_time_s": seconds, **extra, **result.extra_meta}
    return meta | {"eval": result.details, "cells": result.cells, "files": result.files}
