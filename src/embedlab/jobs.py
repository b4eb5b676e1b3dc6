"""One Hydra job as train.py / evaluate.py / encode_corpus.py run it: skipped when its folder holds a
successful results.json (unless ``redo=true``), so re-running a sweep runs only what failed or never
finished. A failing job writes a *failed* results.json; in a multirun it then returns so the sweep goes
on (Hydra's basic launcher would stop and skip ``on_multirun_end``); a single run re-raises, except a
known user error (``EmbedlabError``): one message on stderr and its family's exit code, no traceback
(``HYDRA_FULL_ERROR=1`` shows it)."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from embedlab.config import build_specs
from embedlab.config.axes import RunSpecs
from embedlab.config.specs import hydra_job_names
from embedlab.errors import ConfigError, EmbedlabError
from embedlab.models.encoder import locate
from embedlab.tasks.runner import run

log = logging.getLogger(__name__)

FAILED = "failed"
FAILED_EXIT_CODE = 1  # what the job's process would have exited with on its own


def in_multirun() -> bool:
    return hydra_job_names()[1] is not None  # only a multirun job has a sweep id


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


def write_failure(path: Path, exc: BaseException, cfg: DictConfig) -> dict[str, Any]:
    """A failed results.json: no metrics, the error, and the config that caused it."""
    from embedlab.tracking.results import atomic_write_text, redact

    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # a bad interpolation may be what failed: keep it unresolved
        config = OmegaConf.to_container(cfg, resolve=False)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    code = getattr(exc, "exit_code", FAILED_EXIT_CODE)
    error = {"type": type(exc).__name__, "message": str(exc), "exit_code": code, "traceback": tb}
    meta = {"task": cfg.get("task_name"), "config": redact(config)}
    payload = {"status": FAILED, "metrics": {}, "error": error, "meta": meta}
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
    return payload


def run_job(cfg: DictConfig, task: Callable[[DictConfig], tuple[dict[str, float], Any]]) -> float | None:
    """Run ``task(cfg)`` as one job; returns the monitored metric (None if absent or failed)."""
    results = Path(cfg.paths.output_dir) / "results.json"
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
            exit_on_user_error(exc, results)
            raise
        report = log.error if isinstance(exc, EmbedlabError) else log.exception  # a known error: no traceback
        report(f"Job failed ({type(exc).__name__}: {exc}); recorded in {results}, the sweep goes on.")
        return None
    return metrics.get(cfg.monitor)


def exit_on_user_error(exc: BaseException, details: Path | None = None) -> None:
    """Exit with ``exc``'s message and family exit code when it is a known user error (not a bug) and
    ``HYDRA_FULL_ERROR=1`` is not set; Hydra would print a traceback first, burying the fix."""
    if not isinstance(exc, EmbedlabError) or os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    where = f"; details in {details}" if details is not None else ""
    print(f"Error ({type(exc).__name__}): {exc}", file=sys.stderr)
    print(f"(exit code {exc.exit_code}{where}; HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
    raise SystemExit(exc.exit_code) from None


def unset_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the required values (``???``) in a plain, unresolved config."""
    if node == "???":
        return [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [k for key, value in items for k in unset_keys(value, f"{prefix}.{key}".lstrip("."))]


def checked_specs(cfg: DictConfig, fit: bool | None = None) -> RunSpecs:
    """The run's specs, failing early: a required value left unset (``???``) is named, and the model is
    found before the run imports torch and Lightning (seconds), so a missing one fails at once
    (resolving it again in the run is a cheap folder or cache look-up)."""
    if missing := unset_keys(OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError(
            f"Required value(s) not set: {', '.join(missing)}. "
            f"Fix: give them on the command line, e.g. {missing[0]}=..."
        )
    specs = build_specs(cfg, fit=fit)
    if specs.model_kind == "transformer" and not specs.model.tiny_architecture:
        locate(specs.model)
    return specs


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fine-tune (unless ``fit=false``) and evaluate; returns (metrics, objects)."""
    return run(checked_specs(cfg))


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Evaluate a model without training (``fit=false``)."""
    return run(checked_specs(cfg, fit=False))


def encode_corpus_job(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """encode_corpus.py's job: the run's specs plus configs/encode_corpus.yaml's shard keys."""
    from embedlab.tasks.encode_corpus import ShardSettings, encode_corpus

    keys = ShardSettings.__dataclass_fields__
    shard = ShardSettings(**{k: cfg[k] for k in keys if k in cfg})
    return encode_corpus(checked_specs(cfg), shard, overrides)
