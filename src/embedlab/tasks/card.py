"""The model card (README.md) of a saved model: sentence-transformers writes it from the model's
``model_card_data``, which its own trainer fills; a Lightning run fills it here: base model, data,
objective, hyperparameters and the run's validation and test metrics (also as Hub ``model-index``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs

SPLITS = {"val": "validation", "test": "test"}
DESCRIPTIONS = {"sts": "Semantic Similarity", "retrieval": "Information Retrieval", "bitext": "Bitext Mining"}
COUNTERS = ("encode_", "bytes_per_vector", "n_texts_")  # throughput and cache counters, not quality


@dataclass(frozen=True)
class SplitEvaluation:
    """What the card reads from an evaluator: one column of the metrics table per split."""

    name: str
    description: str
    primary_metric: str


def fill_model_card(model: Any, specs: RunSpecs, metrics: dict[str, float]) -> None:
    """Fill ``model.model_card_data`` before ``model.save`` writes README.md; no Hub look-ups."""
    card = model.model_card_data
    card.local_files_only = True
    data, objective, fit = specs.data_name, specs.objective, specs.run.fit
    card.model_name = f"{specs.model.name} {'fine-tuned on' if fit else 'evaluated on'} {data} (embedlab)"
    if fit:  # the card would call an evaluation-only copy "finetuned from" itself
        card.base_model = specs.model.name_or_path or specs.model.name
        columns = list(specs.data_cfg.get("columns") or {}) or ["query", "document"]
        loss = {"fullname": f"embedlab objective={objective.name} (loss={objective.loss})"}
        card.train_datasets = [{"name": data, "columns": columns, "loss": loss}]
        trainer = dict(specs.run.trainer.kwargs)
        card.all_hyperparameters = {
            "objective": objective.name,
            "epochs": trainer.get("max_epochs"),
            "max_steps": trainer.get("max_steps", -1),
            "batch_size": specs.data_cfg.get("batch_size"),
            "learning_rate": objective.lr,
            "weight_decay": objective.weight_decay,
            "warmup_ratio": objective.warmup_ratio,
            "max_seq_length": specs.model.max_seq_length,
            "pooling": specs.pooling,
            "seed": specs.run.seed,
        }
        headline = ("objective", "epochs", "batch_size", "learning_rate")
        card.non_default_hyperparameters = {k: card.all_hyperparameters[k] for k in headline}
    card.eval_results_dict = split_results(metrics, specs)


def split_results(metrics: dict[str, float], specs: RunSpecs) -> dict[SplitEvaluation, dict[str, float]]:
    """``split/dataset/metric`` keys as one evaluator-like entry per (split, dataset)."""
    grouped: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for key, value in metrics.items():
        split, _, rest = key.partition("/")
        dataset, _, name = rest.partition("/")
        if split in SPLITS and name and not name.startswith(COUNTERS):
            grouped[(SPLITS[split], dataset)][name] = value
    description = DESCRIPTIONS.get(specs.task, specs.task)
    primary = str(specs.data_cfg.get("metric", ""))
    return {
        SplitEvaluation(f"{dataset}-{split}", description, primary): values
        for (split, dataset), values in grouped.items()
    }
