"""The Task interface the runner drives, its result type, and the task registry: a new task is one
module subclassing :class:`Task` under ``@register("<data.task>")`` plus a data yaml with that ``task:``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from embedlab.errors import ConfigError

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs
    from embedlab.encode.encoder import Encoder

TASKS: dict[str, type[Task]] = {}


@dataclass
class EvalOutput:
    """Flat metrics (``split/dataset/metric[@cell]``), per-key details (meta["eval"]), the data's
    identity (meta["data"]), the cells scored (meta["cells"]) and task-specific meta entries."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    data_meta: dict[str, Any] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    extra_meta: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric key -> bootstrap interval
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {other key: paired test}
    files: dict[str, str] = field(default_factory=dict)  # per-query / per-pair file, run file (run dir names)


class Task:
    """One kind of work. Hooks have defaults so a task implements only what differs."""

    name: ClassVar[str] = ""
    can_fit: ClassVar[bool] = True
    scores_embedding_precision: ClassVar[bool] = False  # scores quantization= (int8, binary) cells

    def __init__(self, specs: RunSpecs) -> None:
        self.specs = specs

    @classmethod
    def check(cls, specs: RunSpecs) -> None:
        """This task's rules on the other axes (objective, fit, precision), before anything loads."""
        if specs.run.fit and not cls.can_fit:
            raise ConfigError(
                f"data={specs.data_name} is a {cls.name} evaluation set: run it with evaluate.py (or fit=false)."
            )
        if specs.precision.embeddings != "float32" and not cls.scores_embedding_precision:
            raise ConfigError(
                f"quantization={specs.precision.name} (embedding precision {specs.precision.embeddings}) applies to "
                f"retrieval and STS data; data={specs.data_name} is a {cls.name} set. Use quantization=none."
            )

    def build_model(self) -> tuple[Any, Any]:
        """(SentenceTransformer, ResolvedModel) for this run."""
        from embedlab.tasks.model import build_model

        return build_model(self.specs)

    def build_datamodule(self, model: Any) -> Any:
        """The training data (called only when fitting)."""
        raise ConfigError(f"data={self.specs.data_name}: task {self.name} has no training data.")

    def build_module(self, model: Any) -> Any:
        """The LightningModule trained on :meth:`build_datamodule`'s data."""
        from embedlab.modules.siamese import SiameseModule

        o = self.specs.objective
        return SiameseModule(
            model,
            loss=o.loss,
            lr=o.lr,
            weight_decay=o.weight_decay,
            warmup_ratio=o.warmup_ratio,
            cosent_scale=o.scale,
            dataset_name=self.specs.data_name,
            matryoshka_dims=o.matryoshka_dims and list(o.matryoshka_dims),
            matryoshka_weights=o.matryoshka_weights and list(o.matryoshka_weights),
        )

    def train_texts(self, datamodule: Any) -> list[str]:
        """Distinct training texts whose truncation the runner counts (none: not counted)."""
        return []

    def before_fit(self, model: Any, module: Any, loggers: list[Any]) -> None:
        """Measurements before training (MLM: perplexity and probes)."""

    def after_fit(self, module: Any, trainer: Any) -> None:
        """State to keep from training (MLM: the step count)."""

    def evaluate(self, encoder: Encoder, loggers: list[Any]) -> EvalOutput:
        raise NotImplementedError

    def objects(self) -> dict[str, Any]:
        """Task-specific objects the runner returns beside model, trainer and data (for callers, tests)."""
        return {}


def register(name: str):
    """Class decorator: ``data.task: <name>`` runs this Task."""

    def add(cls: type[Task]) -> type[Task]:
        cls.name = name
        TASKS[name] = cls
        return cls

    return add


def cache_counts(prefix: str, cache: Any) -> dict[str, float]:
    """Once per job under one prefix: the report counts encode passes from these."""
    return {
        f"{prefix}/n_texts_encoded": float(cache.stats.n_encoded),
        f"{prefix}/n_texts_from_cache": float(cache.stats.n_from_cache),
    }
