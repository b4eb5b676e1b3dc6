"""One Hydra job, as train.py / evaluate.py run it: skip it if done, record it if it fails.

Hydra's basic launcher runs a sweep's jobs one after another in one process; it catches a
job's exception, runs the remaining jobs of the batch, then re-raises the first one, so
the multirun exits with an error and never calls ``on_multirun_end``. A job that fails
(an exception, a Python ``MemoryError``, torch's out-of-memory error, a ``ConfigError``
from a value that composes but cannot work) therefore writes a *failed* ``results.json``
here (error type, message, traceback, exit code) and, inside a multirun, returns
normally: the sweep goes on and ends with its report, which lists the job as failed.
A single run re-raises, so its exit code still says it failed.

A job whose folder already holds a successful ``results.json`` is skipped (its stored
monitor value is returned) unless ``redo=true``: re-running a sweep with the same
``hydra.sweep.dir`` runs only the jobs that failed or never finished. Job folders are
``<sweep dir>/<job num>_<overrides>``, the same for the same command line.

Not covered in-process: a job killed by the kernel (OOM killer, SIGKILL) takes the
basic launcher's whole process with it. Re-run the sweep with the same
``hydra.sweep.dir`` to finish it, or use a launcher that runs each job in its own
process (``hydra/launcher=joblib``, ``submitit_local``, ``submitit_slurm``).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from embedlab.config import build_specs
from embedlab.tasks.runner import run

log = logging.getLogger(__name__)

FAILED = "failed"
FAILED_EXIT_CODE = 1  # what the job's process would have exited with on its own


def in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # no Hydra context (tests, a REPL): a single run
        return False


def completed_metrics(results: Path) -> dict[str, Any] | None:
    """The metrics of a successful results.json, or None (missing, unreadable or failed)."""
    try:
        payload = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("status") == FAILED:
        return None
    metrics = payload.get("metrics")
    return metrics if isinstance(metrics, dict) else None


def _config_snapshot(cfg: DictConfig) -> Any:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # a bad interpolation may be what failed: keep it unresolved
        return OmegaConf.to_container(cfg, resolve=False)


def write_failure(path: Path, exc: BaseException, cfg: DictConfig) -> dict[str, Any]:
    """A failed results.json: no metrics, the error, and the config that caused it."""
    from embedlab.tracking.results import atomic_write_text, redact

    payload = {
        "status": FAILED,
        "metrics": {},
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "exit_code": FAILED_EXIT_CODE,
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        },
        "meta": {"task": cfg.get("task_name"), "config": redact(_config_snapshot(cfg))},
    }
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
    return payload


def run_job(cfg: DictConfig, task: Callable[[DictConfig], tuple[dict[str, float], Any]]) -> float | None:
    """Run ``task(cfg)`` as one job; returns the monitored metric (None if absent or failed)."""
    out = Path(cfg.paths.output_dir)
    results = out / "results.json"
    if not cfg.get("redo", False):
        done = completed_metrics(results)
        if done is not None:
            log.info("Skipping: %s already holds this job's results (redo=true runs it again).", results)
            value = done.get(cfg.monitor)
            return float(value) if value is not None else None
    try:
        metrics, _ = task(cfg)
    except Exception as exc:
        try:
            write_failure(results, exc, cfg)
        except Exception as err:  # never mask the job's own error
            log.warning("Could not record the failure in %s: %s", results, err)
        if not in_multirun():
            raise
        log.exception(
            "Job failed (%s: %s); recorded in %s, the sweep goes on.", type(exc).__name__, exc, results
        )
        return None
    return metrics.get(cfg.monitor)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fine-tune (unless ``fit=false``) and evaluate; returns (metrics, objects)."""
    return run(build_specs(cfg))


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Evaluate a model without training (``fit=false``)."""
    return run(build_specs(cfg, fit=False))


def encode_corpus_job(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """encode_corpus.py's job: the run's specs plus configs/encode_corpus.yaml's shard keys."""
    from embedlab.tasks.encode_corpus import ShardSettings, encode_corpus

    keys = ShardSettings.__dataclass_fields__
    shard = ShardSettings(**{k: cfg[k] for k in keys if k in cfg})
    return encode_corpus(build_specs(cfg), shard, overrides)
