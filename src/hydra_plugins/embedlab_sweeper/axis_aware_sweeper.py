"""A basic sweeper that runs a model without an axis once, not once per value of that axis.

``model=bm25,minilm pooling=mean,cls`` would otherwise launch BM25 twice with identical results:
BM25 has no pooling, dimension, precision, index, encoder or fusion. A model yaml names the axes
it does not have (``sweep_ignores: [pooling, ...]``); this sweeper composes each job's config,
drops the overrides of those axes for such a model (the job runs with the group defaults, which it
ignores) and launches each remaining distinct job once, in the basic sweeper's order.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.types import Override

log = logging.getLogger(__name__)
PLAN_FILE = "sweep_plan.json"  # read by embedlab.report.hydra_callback.planned_overrides


@dataclass
class AxisAwareSweeperConf:
    _target_: str = "hydra_plugins.embedlab_sweeper.axis_aware_sweeper.AxisAwareSweeper"
    # no PEP 604 / future annotations here: Hydra imports plugin modules outside sys.modules,
    # where dataclasses cannot resolve string annotations
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[dict[str, str]] = None  # noqa: UP045


ConfigStore.instance().store(
    group="hydra/sweeper", name="axis_aware", node=AxisAwareSweeperConf, provider="embedlab"
)


def _key(override: str) -> str:
    """The config key an override string sets: ``+pooling=cls`` -> ``pooling``."""
    return override.split("=", 1)[0].lstrip("+~")


def drop_ignored_axes(job: list[str], ignored: list[str]) -> list[str]:
    """``job``'s overrides without those of the ``ignored`` groups (and their keys)."""
    return [o for o in job if not any(_key(o) == a or _key(o).startswith(f"{a}.") for a in ignored)]


class AxisAwareSweeper(BasicSweeper):
    """Hydra's basic sweeper, minus the jobs that only vary an axis their model does not have."""

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        kept: dict[tuple[str, ...], list[str]] = {}
        ignored_by_model: dict[str, list[str]] = {}
        for job in jobs:
            model = next((o.split("=", 1)[1] for o in job if _key(o) == "model"), None)
            if model not in ignored_by_model:
                ignored_by_model[model] = self._ignored_axes(job)
            reduced = drop_ignored_axes(job, ignored_by_model[model])
            kept.setdefault(tuple(reduced), reduced)
        if len(kept) < len(jobs):
            skipped = {m: axes for m, axes in ignored_by_model.items() if axes}
            log.info("sweep: %d jobs -> %d distinct (%s)", len(jobs), len(kept), _describe(skipped))
        unique = list(kept.values())
        self._write_plan(unique)
        size = max_batch_size or len(unique) or 1
        return [unique[i : i + size] for i in range(0, len(unique), size)]

    def _write_plan(self, jobs: list[list[str]]) -> None:
        """``<sweep dir>/sweep_plan.json``: the jobs this sweep launches, in order (job i = line i), so
        the report can list a job that never started or was killed before writing anything."""
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PLAN_FILE).write_text(json.dumps(jobs, indent=1) + "\n")

    def _ignored_axes(self, job: list[str]) -> list[str]:
        """The axes the job's model declares it ignores, read from the job's composed config."""
        assert self.hydra_context is not None and self.config is not None
        cfg: Any = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
        return list(cfg.model.get("sweep_ignores", None) or []) if "model" in cfg else []


def _describe(skipped: dict[str | None, list[str]]) -> str:
    return "; ".join(f"model={m} has no {', '.join(axes)} axis" for m, axes in skipped.items())
