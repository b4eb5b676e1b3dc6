"""Retrieval: fine-tune with MNRL on a set's training judgements; score IR metrics for every
(dimension x embedding precision x index) cell of the evaluation split."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedlab.encode.encoder import Encoder
from embedlab.errors import ConfigError
from embedlab.tasks.base import EvalOutput, Task, cache_counts, register
from embedlab.tasks.model import load_retrieval, prefetch_poolings, retrieval_texts

log = logging.getLogger(__name__)


@register("retrieval")
class RetrievalTask(Task):
    scores_embedding_precision = True
    val_set: Any = None  # held-out training queries, scored after fine-tuning

    @classmethod
    def check(cls, specs) -> None:
        super().check(specs)
        if specs.run.fit and specs.objective.loss != "mnrl":
            raise ConfigError(
                f"data={specs.data_name} is a retrieval set: fine-tune it with objective=mnrl (or mnrl_hard), "
                f"or evaluate it with evaluate.py; objective={specs.objective.name} needs scored pairs."
            )
        if specs.run.fit and not specs.data_cfg.get("train_split"):
            raise ConfigError(
                f"data={specs.data_name} has no training judgements (data.train_split is null): evaluate it with "
                f"evaluate.py, or fine-tune on a set that has them (data=scifact)."
            )

    def build_datamodule(self, model: Any) -> Any:
        """(query, positive[, negatives]) training data from the set's training judgements."""
        from embedlab.data import datamodules as rp

        s, d = self.specs, self.specs.data_cfg
        hn = s.objective.extra.get("hard_negatives") or {"num": 0}
        full = load_retrieval(s, d["train_split"])
        train_set, self.val_set = rp.split_queries(full, float(d["val_fraction"]), s.run.seed)
        examples = rp.ranking_examples(train_set)
        if int(hn["num"]) > 0:
            examples = rp.mine_negatives(
                examples,
                model,
                list(full.corpus.values()),
                num_negatives=int(hn["num"]),
                range_min=int(hn["range_min"]),
                range_max=int(hn["range_max"]),
                relative_margin=hn["relative_margin"],
                batch_size=int(d["eval_batch_size"]),
            )
        n_val = len(self.val_set.queries)
        log.info(f"Retrieval fine-tuning: {len(examples)} training pairs, {n_val} held-out val queries")
        return rp.RankingDataModule(examples, batch_size=int(d["batch_size"]), seed=s.run.seed)

    def train_texts(self, datamodule: Any) -> list[str]:
        return list(
            dict.fromkeys(t for e in datamodule.examples for t in (e.query, e.positive, *e.negatives))
        )

    def settings(self) -> Any:
        from embedlab.eval.retrieval_task import RetrievalEvalSettings, parse_ks

        s, d = self.specs, self.specs.data_cfg
        return RetrievalEvalSettings(
            ks=parse_ks(d["ks"]),
            dims=s.dimension.truncate_dims,
            pca_dims=s.dimension.pca_dims,
            precision=s.precision.embeddings,
            rescore_multiplier=s.precision.rescore_multiplier,
            index=s.index.spec,
            index_k=s.index.k,
            n_latency_queries=s.index.n_latency_queries,
            index_save=s.index.save,
            index_device=s.index.device,
            answer_ks=parse_ks(d["answer_ks"]),
            fusion=s.fusion,
            bm25=s.bm25,
        )

    def build_model(self) -> tuple[Any, Any]:
        if self.specs.model_kind == "bm25":  # nothing to load: BM25 indexes the corpus when it scores
            return None, None
        return super().build_model()

    def evaluate(self, encoder: Encoder | None, loggers: list[Any]) -> EvalOutput:
        """The evaluation split with the configured index, precision and fusion; the val split (after
        fine-tuning) with exact search only, since it picks checkpoints. BM25 (``encoder`` None)
        scores the evaluation split alone. Per-query values, the run file and intervals go beside."""
        from embedlab.eval.retrieval_task import evaluate_lexical, evaluate_retrieval
        from embedlab.eval.variants import cells_record
        from embedlab.tasks.uncertainty import retrieval_record

        s, d = self.specs, self.specs.data_cfg
        data, settings = load_retrieval(s), self.settings()
        prefix = f"{d['metric_split']}/{s.data_name}"
        meta = {"name": data.name, "fingerprint": data.revision, "n_docs": len(data.corpus)}
        out = EvalOutput({}, data_meta=meta | {"n_queries": len(data.queries), "stats": dict(data.stats)})
        if encoder is None:
            result = evaluate_lexical(data, settings)
        else:
            prefetch_poolings(s, encoder, list(retrieval_texts(data).items()))
            tune = (
                settings.fusion is not None
                and settings.fusion.name == "convex"
                and settings.fusion.weight is None
            )
            train = load_retrieval(s, d["train_split"]) if tune and d.get("train_split") else None
            result = evaluate_retrieval(encoder, data, settings, train=train)
        out.metrics.update({f"{prefix}/{k}": float(v) for k, v in result.metrics.items()})
        out.details[prefix] = result.details
        out.cells = cells_record(result.cells)
        record = retrieval_record(
            prefix, result, data, Path(s.run.output_dir), headline=d["metric"], seed=s.run.seed
        )
        out.intervals, out.comparisons, out.files = (
            record["intervals"],
            record["comparisons"],
            record["files"],
        )
        if encoder is not None and self.val_set is not None:
            exact = replace(settings, index=None, precision="float32", dims=(), fusion=None)
            val = evaluate_retrieval(encoder, self.val_set, exact)
            out.metrics.update({f"val/{s.data_name}/{k}": float(v) for k, v in val.metrics.items()})
            out.details[f"val/{s.data_name}"] = val.details
        if encoder is not None:
            out.metrics.update(cache_counts(prefix, encoder.cache))
            stats = encoder.cache.stats
            log.info(f"Embeddings: {stats.n_encoded} texts encoded, {stats.n_from_cache} read from the cache")
        return out
