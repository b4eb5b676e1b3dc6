"""STS pairs: fine-tune a siamese encoder on scored pairs; score Spearman / Pearson per split."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedlab.encode.encoder import Encoder
from embedlab.errors import ConfigError, DataError
from embedlab.tasks.base import EvalOutput, Task, cache_counts, register
from embedlab.tasks.model import prefetch_poolings

log = logging.getLogger(__name__)

SPLIT_KEY = {"train": "train", "validation": "val", "test": "test"}


@register("sts")
class STSTask(Task):
    scores_embedding_precision = True

    @classmethod
    def check(cls, specs) -> None:
        super().check(specs)
        if specs.run.fit and specs.objective.loss == "mnrl":
            raise ConfigError(
                f"objective={specs.objective.name} trains on (query, positive) pairs: use retrieval data "
                f"(data=scifact) or a pair objective (objective=cosine, cosent) for data={specs.data_name}."
            )
        for split in specs.run.eval_splits:
            if split not in SPLIT_KEY:
                raise ConfigError(
                    f"eval_splits holds unknown split '{split}'; use train, validation or test."
                )

    def __init__(self, specs) -> None:
        from embedlab.data.datamodules import PairDataModule

        super().__init__(specs)
        sizes = {k: int(specs.data_cfg[k]) for k in ("batch_size", "eval_batch_size")}
        self.datamodule = PairDataModule(specs.data, **sizes, seed=specs.run.seed)
        self.datamodule.setup()

    def build_datamodule(self, model: Any) -> Any:
        missing = [x for x in ("train", "validation") if x not in self.datamodule.data.splits]
        if missing:  # validation picks the checkpoint (the monitor), so fine-tuning needs both
            raise DataError(
                f"Fine-tuning on data={self.specs.data_name} needs train and validation pairs; it has no "
                f"{' or '.join(missing)}. Fix: data.files.train=<file> data.files.validation=<file>, or one "
                f"data.files.all=<file> to split, or score the file only with evaluate.py data.files.test=<file>."
            )
        return self.datamodule

    def objects(self) -> dict[str, Any]:
        return {"datamodule": self.datamodule}

    def train_texts(self, datamodule: Any) -> list[str]:
        train = datamodule.data.splits["train"]
        return list(dict.fromkeys(list(train.sentence1) + list(train.sentence2)))

    def evaluate(self, encoder: Encoder, loggers: list[Any]) -> EvalOutput:
        """Score every split in ``eval_splits`` through the embedding cache, so cells that differ
        only in dimension or embedding precision encode nothing after the first. PCA is fitted
        on the train split's sentences."""
        from embedlab.eval.sts import evaluate_sts, fit_sts_pca, split_texts
        from embedlab.eval.variants import cells_record
        from embedlab.tasks.uncertainty import sts_record
        from embedlab.tracking.per_query import PER_QUERY_FILE, write_per_query

        s, data, cache = self.specs, self.datamodule.data, encoder.cache
        splits = scored_splits(s.run.eval_splits, data)
        prefetch_poolings(s, encoder, [("sentences", split_texts(data.splits[x])) for x in splits])
        pca, fit = None, encoder.replace(cache=type(cache)(cache.root))  # counted apart: not the scored texts
        if s.dimension.pca_dims:
            if "train" not in data.splits:
                raise DataError(
                    f"dimension={s.dimension.name} fits PCA on the train split; data={s.data_name} has none. "
                    f"Fix: data.files.train=<file>, or dimension=full / a truncation."
                )
            prefetch_poolings(s, fit, [("sentences", split_texts(data.splits["train"]))])
            pca = fit_sts_pca(fit, data.splits["train"], s.dimension.pca_dims[0], dataset=s.data_name)
        pairs = {k: len(v) for k, v in data.splits.items()}
        meta = {"name": data.name, "fingerprint": data.fingerprint(), "pairs": pairs}
        out = EvalOutput({}, data_meta=meta | {"dropped_invalid": dict(data.dropped)})
        dims, precisions = list(s.dimension.truncate_dims), [s.precision.embeddings]
        pair_rows: list[dict[str, Any]] = []
        for split in splits:
            prefix = f"{SPLIT_KEY[split]}/{s.data_name}"
            n_worst = s.run.n_worst_pairs
            result = evaluate_sts(
                encoder, data.splits[split], dims=dims, precisions=precisions, pca=pca, n_worst=n_worst
            )
            out.metrics.update({f"{prefix}/{k}": v for k, v in result.metrics.items()})
            out.metrics[f"{prefix}/n_pairs"] = float(len(data.splits[split]))
            stats = result.encode_stats
            if stats is not None:  # None: a cache entry stored without its encode stats
                out.metrics[f"{prefix}/encode_texts_per_s"] = stats.n_encoded / max(stats.seconds, 1e-9)
                out.metrics[f"{prefix}/n_truncated_texts"] = float(stats.n_truncated)
            out.details[prefix] = {
                "encode": stats.as_dict() if stats else "cached",
                "worst_pairs": result.worst_pairs,
            }
            out.cells = cells_record(result.cells)  # every split scores the same grid
            gold, out_dir = data.splits[split].scores, Path(s.run.output_dir)
            record = sts_record(
                prefix, gold, result.predictions, out_dir, seed=s.run.seed, split=SPLIT_KEY[split]
            )
            out.intervals |= record["intervals"]
            pair_rows += record["rows"]
            log_worst_pairs(loggers, prefix, result.worst_pairs)
        if pair_rows:  # per pair: gold score and each cell's predicted similarity (the report's tests)
            write_per_query(Path(s.run.output_dir) / PER_QUERY_FILE, pair_rows)
            out.files = {"per_query": PER_QUERY_FILE}
        keys = [f"{SPLIT_KEY[x]}/{s.data_name}" for x in splits]
        prefix = next((k for k in keys if s.run.monitor.startswith(f"{k}/")), keys[0] if keys else None)
        if prefix is not None:
            out.metrics.update(cache_counts(prefix, cache))
            if pca is not None:
                out.metrics[f"{prefix}/n_pca_fit_texts_encoded"] = float(fit.cache.stats.n_encoded)
        return out


def scored_splits(eval_splits: Sequence[str], data: Any) -> list[str]:
    """The splits of ``eval_splits`` the data holds: a set with only a test file scores test (a log line
    names the rest); none of them is an error."""
    splits = [x for x in eval_splits if x in data.splits]
    skipped = [x for x in eval_splits if x not in data.splits]
    if not splits:
        raise DataError(
            f"eval_splits={list(eval_splits)} but data '{data.name}' holds only {sorted(data.splits)}. "
            f"Fix: eval_splits=[{','.join(data.splits)}], or name a file for each split (data.files.<split>=...)."
        )
    if skipped:
        log.info("Scoring %s: data '%s' has no %s split", splits, data.name, " or ".join(skipped))
    return splits


def log_worst_pairs(loggers: list[Any], key: str, rows: list[dict[str, Any]]) -> None:
    for lg in loggers:
        if hasattr(lg, "log_table"):
            cols = list(rows[0]) if rows else []
            lg.log_table(key=f"{key}/worst_pairs", columns=cols, data=[list(r.values()) for r in rows])
