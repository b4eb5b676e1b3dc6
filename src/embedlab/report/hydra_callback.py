"""Hydra callback (configs/hydra ``callbacks.report``): the decision report in every multirun folder.
Hydra's basic sweeper raises after a failed batch without ``on_multirun_end``, so an exit hook writes
the files then; ``on_job_end`` saves a failed job's exception as error.txt. Report errors are logged."""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from embedlab.report.recommend import Budget
from embedlab.report.render import generate_report
from embedlab.report.scan import get, load_yaml

log = logging.getLogger(__name__)


def planned_overrides(multirun_dir: str | Path) -> list[list[str]] | None:
    """Every job a multirun planned, so a killed sweep lists its never-started jobs: the axis-aware
    sweeper's ``sweep_plan.json``, else ``multirun.yaml`` expanded as Hydra's basic sweeper does
    (cartesian product, first override slowest). None for adaptive sweepers (Optuna, ...)."""
    plan = Path(multirun_dir) / "sweep_plan.json"
    if plan.is_file():
        return [list(job) for job in json.loads(plan.read_text())]
    conf = load_yaml(Path(multirun_dir) / "multirun.yaml")
    sweeper = get(conf, "hydra", "sweeper", default={}) or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    task = [str(o) for o in (get(conf, "hydra", "overrides", "task", default=[]) or [])]
    choices: dict[str, list[str]] = {}  # a later override of a key replaces an earlier one, in place
    try:
        for o in OverridesParser.create().parse_overrides(params + task):
            key = o.get_key_element()
            values = o.sweep_string_iterator() if o.is_sweep_override() else [o.get_value_element_as_str()]
            choices[key] = [f"{key}={v}" for v in values]
    except Exception as exc:  # a plan we cannot parse only costs the not-started list
        log.warning("Could not expand the sweep plan in %s: %s", multirun_dir, exc)
        return None
    return [list(job) for job in itertools.product(*choices.values())]


@dataclass(eq=False)
class ReportCallback(Callback):
    """Runs :func:`embedlab.report.render.generate_report` on ``hydra.sweep.dir``. ``wandb="auto"``
    logs the summary run unless the sweep's ``logger.wandb`` mode is ``disabled``; budget arguments
    mirror report.py's options."""

    enabled: bool = True
    metric: str | None = None
    max_latency_ms: float | None = None
    min_throughput: float | None = None
    max_memory_mb: float | None = None
    out_dir: str | None = None
    wandb: bool | str = "auto"
    publish_wandb_report: bool = False
    write_job_errors: bool = True
    _sweep_dir: str | None = field(default=None, init=False)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            self._sweep_dir = str(config.hydra.sweep.dir)
            atexit.register(self._report_at_exit)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.enabled:
            self._sweep_dir = None  # done: the exit hook has nothing left to do
            # The sweep's logger.wandb node; interpolations cannot be resolved outside a job: dropped.
            node = OmegaConf.select(config, "logger.wandb", default=None)
            items = (
                OmegaConf.to_container(node, resolve=False).items() if isinstance(node, DictConfig) else []
            )
            section = {k: v for k, v in items if not (isinstance(v, str) and "${" in v)}
            auto = bool(section) and section.get("mode") != "disabled"
            wanted = self.wandb if isinstance(self.wandb, bool) else auto
            self.run_report(str(config.hydra.sweep.dir), use_wandb=wanted, wandb_cfg=section)

    def _report_at_exit(self) -> None:
        """The sweep stopped without on_multirun_end (a job failed): files only, no W&B, whose own
        exit hooks may already be tearing down."""
        if self._sweep_dir is not None:
            log.info("Sweep ended early (a job failed?): writing the report anyway.")
            sweep_dir, self._sweep_dir = self._sweep_dir, None
            self.run_report(sweep_dir, use_wandb=False)

    def run_report(
        self, sweep_dir: str, *, use_wandb: bool, wandb_cfg: dict[str, Any] | None = None
    ) -> Path | None:
        """Generate the report; any error is logged, never raised. Returns report.md's path."""
        budget = Budget(self.max_latency_ms, self.min_throughput, self.max_memory_mb)
        where = {f"wandb_{k}": (wandb_cfg or {}).get(k) for k in ("project", "entity", "mode")}
        try:
            outcome = generate_report(
                sweep_dir,
                metric=self.metric,
                budget=budget,
                out_dir=self.out_dir,
                wandb=use_wandb,
                publish_wandb=self.publish_wandb_report and use_wandb,
                running_window_s=0.0,  # the sweep is over: nothing is still running
                planner=planned_overrides,
                **where,
            )
        except Exception as exc:
            log.error("Sweep report for %s failed (the sweep itself is unaffected): %s", sweep_dir, exc)
            log.debug("Report traceback:\n%s", traceback.format_exc())
            return None
        for rec in outcome.report.recommendations:
            log.info("Report: %s", rec.text)
        log.info("Sweep report written to %s", outcome.files.markdown)
        return outcome.files.markdown

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Record a failed job's exception in ``<job dir>/error.txt`` for the report."""
        failed = getattr(job_return, "status", None) == JobStatus.FAILED
        if not (self.enabled and self.write_job_errors and failed):
            return
        try:
            exc = job_return._return_value  # the exception; `.return_value` would re-raise it
            out = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir") or job_return.working_dir))
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            (out / "error.txt").write_text(text, encoding="utf-8")
        except Exception as err:  # never mask the job's own failure
            log.warning("Could not record the failed job's error: %s", err)
