"""run_mlm(cfg): continued masked-LM training of an encoder's backbone on a corpus.

Like ``run.train``, this is where a composed Hydra config meets plain code. It loads the
corpus, measures held-out perplexity (fixed masks) and the encoder's held-out
embeddings, trains the masked-LM model with Lightning, measures again, writes the
trained backbone back into the sentence encoder, saves it as a sentence-transformers
folder under ``<output_dir>/model``, and plots t-SNE maps before and after. When the
corpus has labels, a k-NN probe of the held-out embeddings says whether the domain
structure of the embeddings improved.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from embedlab.data.text_corpus import CorpusSpec
from embedlab.models.encoder import EncoderSpec

log = logging.getLogger(__name__)


def corpus_spec(cfg: DictConfig) -> CorpusSpec:
    """The corpus a `data/` config describes (missing keys take CorpusSpec's defaults)."""
    d = cfg.data
    defaults = CorpusSpec(name=d.name)
    max_texts = d.get("max_texts", d.get("max_pairs"))
    return CorpusSpec(
        name=d.name,
        format=d.get("format", defaults.format),
        root=d.get("root"),
        file=d.get("file"),
        text_column=d.get("text_column", defaults.text_column),
        label_column=d.get("label_column"),
        label_names_file=d.get("label_names_file"),
        delimiter=d.get("delimiter"),
        has_header=bool(d.get("has_header", True)),
        encoding=d.get("encoding", defaults.encoding),
        on_empty=d.get("on_empty", defaults.on_empty),
        val_fraction=float(d.get("val_fraction", defaults.val_fraction)),
        split_seed=int(d.get("split_seed", cfg.seed)),
        max_texts=None if max_texts is None else int(max_texts),
        min_words=int(d.get("min_words", defaults.min_words)),
    )


def mlm_encoder_spec(cfg: DictConfig) -> EncoderSpec:
    m = cfg.model
    pooling = cfg.pooling.mode if cfg.get("pooling") else "mean"
    return EncoderSpec(
        name=m.name,
        name_or_path=m.get("name_or_path"),
        packaged=m.get("packaged"),
        revision=m.get("revision"),
        tiny_architecture=m.get("tiny_architecture"),
        max_seq_length=int(m.max_seq_length),
        pooling=pooling,
    )


def knn_accuracy(embeddings: Any, labels: list[str], *, k: int = 5, seed: int = 0) -> float:
    """5-fold cross-validated k-NN (cosine) accuracy of labels from embeddings.

    A cheap domain probe: do texts of the same class sit together in embedding space?
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    counts = np.unique(labels, return_counts=True)[1]
    folds = int(min(5, counts.min()))
    if folds < 2:
        return float("nan")
    clf = KNeighborsClassifier(n_neighbors=min(k, len(labels) - len(labels) // folds - 1), metric="cosine")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, np.asarray(embeddings), labels, cv=cv, n_jobs=1).mean())


def _embed_and_plot(
    encoder: Any, corpus: Any, out: Path, stage: str, *, batch_size: int, seed: int, loggers: list[Any]
) -> tuple[dict[str, float], str | None]:
    """Held-out embeddings -> (k-NN accuracy metrics, t-SNE PNG path), for labelled corpora."""
    from embedlab.viz.tsne import log_image_to_loggers, tsne_plot

    labels = corpus.heldout_labels
    if labels is None:
        return {}, None
    emb = encoder.encode(
        corpus.heldout_texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
    )  # (N, D)
    metrics = {f"val/{corpus.name}/knn_accuracy_{stage}": knn_accuracy(emb, labels, seed=seed)}
    path = tsne_plot(
        emb, labels, out / "plots" / f"tsne_{stage}.png",
        title=f"{corpus.name}: held-out embeddings {stage} MLM ({len(labels)} texts)", seed=seed,
    )  # fmt: skip
    log_image_to_loggers(loggers, f"val/{corpus.name}/tsne_{stage}", path)
    return metrics, str(path)


def run_mlm(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Continued MLM on ``cfg.data``; returns (metrics, objects) as ``run.train`` does."""
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor

    from embedlab.data.mlm_datamodule import MLMDataModule
    from embedlab.data.text_corpus import load_corpus
    from embedlab.models.encoder import build_encoder, model_fingerprint
    from embedlab.modules.mlm import MLMModule, copy_backbone_to_encoder, perplexity
    from embedlab.run import build_loggers, collect_meta
    from embedlab.tracking.results import redact, write_results
    from embedlab.tracking.wandb_logger import finish_wandb

    start = time.perf_counter()
    seed = int(cfg.seed)
    L.seed_everything(seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    obj, d = cfg.objective, cfg.data
    max_length = int(cfg.model.max_seq_length)
    eval_batch_size = int(d.get("eval_batch_size", 32))

    corpus = load_corpus(corpus_spec(cfg))
    encoder, resolved = build_encoder(mlm_encoder_spec(cfg))
    model_fp = model_fingerprint(resolved)
    module = MLMModule(
        resolved.path,
        lr=float(obj.lr),
        weight_decay=float(obj.weight_decay),
        warmup_ratio=float(obj.warmup_ratio),
        dataset_name=corpus.name,
    )
    ppl = dict(
        mlm_probability=float(obj.mlm_probability),
        whole_word_mask=bool(obj.whole_word_mask),
        seed=seed,  # the same masks before and after: the numbers are comparable
        batch_size=eval_batch_size,
        max_length=max_length,
    )
    key = f"val/{corpus.name}"
    metrics: dict[str, float] = {}
    plots: dict[str, str] = {}
    loggers = build_loggers(cfg)
    exit_code = 1
    try:  # from here on a W&B run may exist: the finally block must finish it
        metrics[f"{key}/perplexity_before"] = perplexity(
            module.model, module.tokenizer, corpus.heldout_texts, **ppl
        )
        encoder.eval()
        probe, png = _embed_and_plot(
            encoder, corpus, out, "before", batch_size=eval_batch_size, seed=seed, loggers=loggers
        )
        metrics.update(probe)
        if png:
            plots["before"] = png
        datamodule = MLMDataModule(
            module.tokenizer,
            corpus.train_texts,
            corpus.heldout_texts,
            max_length=max_length,
            batch_size=int(d.batch_size),
            eval_batch_size=eval_batch_size,
            mlm_probability=float(obj.mlm_probability),
            whole_word_mask=bool(obj.whole_word_mask),
            seed=seed,
        )
        datamodule.setup()
        callbacks = [LearningRateMonitor(logging_interval="step")] if loggers else []
        # The config's ModelCheckpoint monitors the siamese metric; the MLM run keeps the final
        # weights (saved below as a sentence-transformers folder) and no Lightning checkpoints.
        trainer: L.Trainer = instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_checkpointing=False
        )
        for lg in loggers:
            lg.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        fit_seconds = time.perf_counter() - fit_start
        if trainer.is_global_zero:
            metrics[f"{key}/perplexity_after"] = perplexity(
                module.model, module.tokenizer, corpus.heldout_texts, **ppl
            )
            copy = copy_backbone_to_encoder(module.model, encoder)
            encoder.to(torch.device("cpu"))
            encoder.eval()
            encoder.save(str(out / "model"))
            probe, png = _embed_and_plot(
                encoder, corpus, out, "after", batch_size=eval_batch_size, seed=seed, loggers=loggers
            )
            metrics.update(probe)
            if png:
                plots["after"] = png
            assert datamodule.train_tokens is not None and datamodule.val_tokens is not None
            metrics[f"{key}/n_train_texts"] = float(len(corpus.train_idx))
            metrics[f"{key}/n_heldout_texts"] = float(len(corpus.heldout_idx))
            metrics[f"{key}/n_truncated_train_texts"] = float(datamodule.train_tokens.n_truncated)
            metrics[f"{key}/n_truncated_heldout_texts"] = float(datamodule.val_tokens.n_truncated)
            for lg in loggers:
                lg.log_metrics(metrics, step=int(trainer.global_step))
            extra = {
                "mlm": {
                    "head_newly_initialised": list(module.head_report.new_head_keys),
                    "missing_backbone_keys": list(module.head_report.missing_backbone_keys),
                    "backbone_tensors_copied": copy.n_tensors,
                    "steps": int(trainer.global_step),
                    "fit_seconds": fit_seconds,
                },
                "saved_model": str(out / "model"),
                "plots": plots,
            }
            meta = collect_meta(cfg, resolved, model_fp, corpus.meta(), time.perf_counter() - start, extra)
            write_results(out / "results.json", metrics, meta)
            log.info(
                "Perplexity on %d held-out texts: %.2f before, %.2f after %d steps%s",
                len(corpus.heldout_idx), metrics[f"{key}/perplexity_before"],
                metrics[f"{key}/perplexity_after"], trainer.global_step,
                " (the MLM head started at random)" if module.head_report.head_is_new else "",
            )  # fmt: skip
        exit_code = 0
        return metrics, {
            "encoder": encoder,
            "module": module,
            "trainer": trainer,
            "datamodule": datamodule,
            "corpus": corpus,
            "plots": plots,
        }
    finally:
        finish_wandb(loggers, exit_code)
