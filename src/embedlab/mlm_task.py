"""run_mlm(cfg): continued masked-LM training of an encoder's backbone on a corpus.

Like ``run.train``, this is where a composed Hydra config meets plain code. It loads the
corpus, measures held-out perplexity (fixed masks) and the encoder's held-out
embeddings, trains the masked-LM model with Lightning, measures again, writes the
trained backbone back into the sentence encoder, saves it as a sentence-transformers
folder under ``<output_dir>/model``, and plots t-SNE maps before and after. When the
corpus has labels, a k-NN probe of the held-out embeddings says whether the domain
structure of the embeddings improved.

Continual updates can forget. A general-quality probe (STS-B validation and test
Spearman; the embedded Lee ratings when STS-B is absent) runs before and after, and a
guard keeps the previous encoder when the validation score drops by more than
``objective.guard.tolerance``: the saved model is then the pre-update one, results.json
says ``guard_triggered: true`` with both scores, and the log says so. Replay
(``objective.replay``) mixes general sentences into the MLM training texts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from embedlab.data.text_corpus import CorpusSpec
from embedlab.errors import ConfigError
from embedlab.models.encoder import EncoderSpec

if TYPE_CHECKING:
    from embedlab.data.sts import STSData, STSSpec
    from embedlab.encode.encoder import EncodeSettings

log = logging.getLogger(__name__)

GUARD_METRICS: tuple[str, ...] = ("spearman_cosine", "pearson_cosine")
STAGE_TITLES = {
    "before": "before MLM",
    "after": "after MLM",
    "after_finetune": "after MLM + fine-tuning",
    "finetuned_without_mlm": "fine-tuned without MLM",
}


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


# --- forgetting: general-quality probe and guard -------------------------------------


def general_probe_spec(root: str | Path | None, *, max_pairs: int | None = None, seed: int = 42) -> STSSpec:
    """STS-B under ``root`` when it is there; otherwise the embedded Lee ratings (logged as a warning).

    The Lee set ships with gensim, so the probe (and the guard, and fine-tuning after the
    update) still work offline; its scores are not comparable with STS-B's.
    """
    from embedlab.data.sts import STSSpec
    from embedlab.data.text_corpus import stsb_spec

    path = Path(root).expanduser() if root else None
    if path is not None and all((path / f).is_file() for f in ("sts-dev.csv", "sts-test.csv")):
        return stsb_spec(path, max_pairs=max_pairs, seed=seed)
    log.warning(
        "General-quality probe: STS-B not found at %s (sts-dev.csv, sts-test.csv); using the embedded "
        "Lee document-similarity ratings (gensim) instead. Set EMBEDLAB_DATA to the folder holding stsb/ "
        "to probe on STS-B.",
        path,
    )
    return STSSpec(name="lee", format="lee", score_range=(0.0, 1.0), split_fractions=(0.7, 0.15, 0.15),
                   split_seed=42, max_pairs_per_split=max_pairs)  # fmt: skip


def general_probe_data(root: str | Path | None, *, max_pairs: int | None = None, seed: int = 42) -> STSData:
    """The probe's validation + test splits (see :func:`general_probe_spec`)."""
    from embedlab.data.sts import load_sts

    return load_sts(general_probe_spec(root, max_pairs=max_pairs, seed=seed), splits=("validation", "test"))


def probe_general(encoder: Any, data: STSData, *, settings: EncodeSettings) -> dict[str, float]:
    """Cosine Spearman / Pearson on the probe's validation and test splits, keyed split/name/metric;
    ``encoder`` (a SentenceTransformer) encodes as ``settings`` say (the run's ``encode`` config)."""
    from embedlab.encode.encoder import Encoder
    from embedlab.eval.sts import evaluate_sts

    out: dict[str, float] = {}
    for split, prefix in (("validation", "val"), ("test", "test")):
        result = evaluate_sts(Encoder(encoder, settings), data.splits[split], n_worst=0)
        for name in GUARD_METRICS:
            out[f"{prefix}/{data.name}/{name}"] = float(result.metrics[name])
    return out


@dataclass(frozen=True)
class GuardDecision:
    """Whether a continual update lost too much general quality (and so is rejected)."""

    metric: str  # e.g. "val/stsb/spearman_cosine"
    before: float
    after: float
    tolerance: float  # the largest allowed drop (before - after)

    @property
    def drop(self) -> float:
        return self.before - self.after

    @property
    def triggered(self) -> bool:
        # NaN after the update (e.g. collapsed, constant embeddings) counts as a failure too
        return not self.after == self.after or self.drop > self.tolerance

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "drop": self.drop, "guard_triggered": self.triggered}


def guard_settings(cfg: DictConfig) -> tuple[DictConfig | None, DictConfig | None, DictConfig | None]:
    """(general_probe, guard, replay) from ``cfg.objective``; absent or null sections are off."""
    obj = cfg.objective
    probe, guard, replay = obj.get("general_probe"), obj.get("guard"), obj.get("replay")
    if guard is not None and guard.get("tolerance") is None:
        guard = None
    if guard is not None:
        if probe is None:
            raise ConfigError(
                "objective.guard needs the general-quality probe it decides on: set objective.general_probe "
                "(e.g. root=${paths.data_dir}/stsb) or turn the guard off with objective.guard.tolerance=null."
            )
        if guard.get("metric", "spearman_cosine") not in GUARD_METRICS:
            raise ConfigError(f"objective.guard.metric must be one of {GUARD_METRICS}, got {guard.metric!r}.")
    if replay is not None and not float(replay.get("fraction") or 0.0):
        replay = None
    return probe, guard, replay


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
        title=f"{corpus.name}: held-out embeddings, {STAGE_TITLES.get(stage, stage)} ({len(labels)} texts)",
        seed=seed,
    )  # fmt: skip
    log_image_to_loggers(loggers, f"val/{corpus.name}/tsne_{stage}", path)
    return metrics, str(path)


def _apply_guard(
    guard_cfg: DictConfig,
    probe_name: str,
    before: dict[str, float],
    after: dict[str, float],
    encoder: Any,
    previous: dict[str, Any],
    saved_to: Path,
) -> GuardDecision:
    """Decide on the validation probe; on a too-large drop put the pre-update weights back."""
    metric = f"val/{probe_name}/{guard_cfg.get('metric', 'spearman_cosine')}"
    decision = GuardDecision(metric, before[metric], after[metric], float(guard_cfg.tolerance))
    if decision.triggered:
        encoder.load_state_dict(previous)
        log.warning(
            "FORGETTING GUARD TRIGGERED: %s fell from %.4f to %.4f (drop %.4f > tolerance %.4f). "
            "The update is rejected: %s holds the PREVIOUS (pre-update) encoder; the after-metrics in "
            "results.json describe the rejected update.",
            metric, decision.before, decision.after, decision.drop, decision.tolerance, saved_to,
        )  # fmt: skip
    else:
        log.info(
            "Forgetting guard passed: %s %.4f -> %.4f (drop %.4f <= tolerance %.4f); the updated encoder is saved.",
            metric, decision.before, decision.after, decision.drop, decision.tolerance,
        )  # fmt: skip
    return decision


def _finetune_stage(
    cfg: DictConfig,
    settings: Any,
    encoder: Any,
    previous: dict[str, Any],
    corpus: Any,
    probe_data: STSData,
    out: Path,
    metrics: dict[str, float],
    plots: dict[str, str],
    *,
    kept_previous: bool,
    batch_size: int,
    loggers: list[Any],
) -> dict[str, Any]:
    """Fine-tune the kept encoder (and, to compare, the pre-update one); add their probes to ``metrics``.

    Keys: ``<probe key>_after_finetune`` / ``knn_accuracy_after_finetune`` for the encoder the
    guard kept (the MLM update, or the pre-update encoder when the guard rejected it),
    ``..._finetuned_without_mlm`` for the baseline fine-tuned from the pre-update weights.
    """
    import copy

    from embedlab.mlm_finetune import finetune_on_pairs
    from embedlab.run import encode_settings

    seed = int(cfg.seed)
    spec = general_probe_spec(
        cfg.objective.general_probe.get("root"), max_pairs=settings.max_pairs, seed=seed
    )
    record: dict[str, Any] = {**asdict(settings), "pairs_from": spec.name}
    stages = [("after_finetune", encoder, "MLM-updated" if not kept_previous else "kept (pre-update)")]
    if settings.compare_without_mlm and kept_previous:
        log.info(
            "The guard kept the pre-update encoder: fine-tuning it IS the without-MLM baseline; run once."
        )
        record["without_mlm"] = "same as with_mlm: the guard rejected the MLM update"
    elif settings.compare_without_mlm:
        baseline = copy.deepcopy(encoder)
        baseline.load_state_dict(previous)
        stages.append(("finetuned_without_mlm", baseline, "pre-update"))
    for stage, model, label in stages:
        step = finetune_on_pairs(model, spec, settings, cfg, seed=seed, label=label)
        step["encoder"] = label  # "with_mlm" holds the encoder the guard kept: pre-update if it rejected
        record["with_mlm" if stage == "after_finetune" else "without_mlm"] = step
        probe, png = _embed_and_plot(
            model, corpus, out, stage, batch_size=batch_size, seed=seed, loggers=loggers
        )
        metrics.update(probe)
        if png:
            plots[stage] = png
        general = probe_general(model, probe_data, settings=encode_settings(cfg))
        metrics.update({f"{k}_{stage}": v for k, v in general.items()})
        name = f"val/{probe_data.name}/spearman_cosine"
        log.info(
            "Fine-tuned %s encoder: %s %.4f, test %.4f, k-NN %s",
            label, name, general[name], general[f"test/{probe_data.name}/spearman_cosine"],
            probe.get(f"val/{corpus.name}/knn_accuracy_{stage}", "n/a"),
        )  # fmt: skip
    return record


def run_mlm(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Continued MLM on ``cfg.data``; returns (metrics, objects) as ``run.train`` does."""
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor

    from embedlab.data.mlm_datamodule import MLMDataModule
    from embedlab.data.text_corpus import general_sentences, load_corpus, mix_replay
    from embedlab.mlm_finetune import finetune_settings
    from embedlab.models.encoder import build_encoder, model_fingerprint
    from embedlab.modules.mlm import MLMModule, copy_backbone_to_encoder, perplexity
    from embedlab.run import build_loggers, collect_meta, encode_settings, fit_resumable, instantiate_list
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

    probe_cfg, guard_cfg, replay_cfg = guard_settings(cfg)
    finetune = finetune_settings(cfg)
    corpus = load_corpus(corpus_spec(cfg))
    train_texts, replay_meta = corpus.train_texts, None
    if replay_cfg is not None:
        general, where = general_sentences(
            replay_cfg.source, stsb_root=probe_cfg.get("root") if probe_cfg is not None else None
        )
        mix = mix_replay(train_texts, general, float(replay_cfg.fraction), seed=seed, source=where)
        train_texts = list(mix.texts)
        replay_meta = {
            "source": where,
            "fraction": mix.fraction,
            "n_domain": mix.n_domain,
            "n_replay": mix.n_replay,
        }
    probe_data = None
    if probe_cfg is not None:
        max_pairs = probe_cfg.get("max_pairs")
        probe_data = general_probe_data(
            probe_cfg.get("root"), max_pairs=None if max_pairs is None else int(max_pairs), seed=seed
        )
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
        previous: dict[str, torch.Tensor] | None = None
        if probe_data is not None:
            general_before = probe_general(encoder, probe_data, settings=encode_settings(cfg))
            metrics.update({f"{k}_before": v for k, v in general_before.items()})
            # the guard may have to put the pre-update encoder back: keep a copy of its weights
            previous = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
        datamodule = MLMDataModule(
            module.tokenizer,
            train_texts,
            corpus.heldout_texts,
            max_length=max_length,
            batch_size=int(d.batch_size),
            eval_batch_size=eval_batch_size,
            mlm_probability=float(obj.mlm_probability),
            whole_word_mask=bool(obj.whole_word_mask),
            seed=seed,
        )
        datamodule.setup()
        # The config's callbacks: resume_checkpoint writes <run dir>/checkpoints/last.ckpt mid-epoch
        # (weights, optimizer, data position, masking and dropout RNG), so ckpt_path=last resumes.
        callbacks = instantiate_list(cfg.get("callbacks"))
        if not loggers:  # Lightning refuses a LearningRateMonitor without a logger
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        for lg in loggers:
            lg.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        fit_start = time.perf_counter()
        fit_resumable(trainer, module, datamodule, cfg.get("ckpt_path"), out)
        fit_seconds = time.perf_counter() - fit_start
        if trainer.is_global_zero:
            metrics[f"{key}/perplexity_after"] = perplexity(
                module.model, module.tokenizer, corpus.heldout_texts, **ppl
            )
            copy = copy_backbone_to_encoder(module.model, encoder)
            encoder.to(torch.device("cpu"))
            encoder.eval()
            probe, png = _embed_and_plot(
                encoder, corpus, out, "after", batch_size=eval_batch_size, seed=seed, loggers=loggers
            )
            metrics.update(probe)
            if png:
                plots["after"] = png
            guard_meta: dict[str, object] | None = None
            if probe_data is not None:
                general_after = probe_general(encoder, probe_data, settings=encode_settings(cfg))
                metrics.update({f"{k}_after": v for k, v in general_after.items()})
                if guard_cfg is not None:
                    assert previous is not None
                    decision = _apply_guard(guard_cfg, probe_data.name, general_before, general_after,
                                            encoder, previous, out / "model")  # fmt: skip
                    metrics[f"val/{probe_data.name}/guard_triggered"] = float(decision.triggered)
                    guard_meta = decision.as_dict()
                    guard_meta["saved"] = "previous encoder" if decision.triggered else "updated encoder"
            finetune_meta = None
            if finetune is not None:
                assert probe_data is not None and previous is not None
                kept_previous = bool(guard_meta and guard_meta["guard_triggered"])
                finetune_meta = _finetune_stage(
                    cfg, finetune, encoder, previous, corpus, probe_data, out, metrics, plots,
                    kept_previous=kept_previous, batch_size=eval_batch_size, loggers=loggers,
                )  # fmt: skip
                if guard_meta is not None:
                    guard_meta["saved"] += ", then fine-tuned"
            encoder.save(str(out / "model"))
            if replay_meta is not None:
                metrics[f"{key}/n_replay_texts"] = float(replay_meta["n_replay"])
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
                "general_probe": None if probe_data is None else {
                    "name": probe_data.name, "fingerprint": probe_data.fingerprint(),
                    "pairs": {k: len(v) for k, v in probe_data.splits.items()},
                },
                "guard": guard_meta,
                "replay": replay_meta,
                "finetune": finetune_meta,
            }  # fmt: skip
            meta = collect_meta(cfg, resolved, model_fp, corpus.meta(), time.perf_counter() - start, extra)
            write_results(out / "results.json", metrics, meta)
            log.info(
                "Perplexity on %d held-out texts: %.2f before, %.2f after %d steps%s",
                len(corpus.heldout_idx), metrics[f"{key}/perplexity_before"],
                metrics[f"{key}/perplexity_after"], trainer.global_step,
                " (the MLM head started at random)" if module.head_report.head_is_new else "",
            )  # fmt: skip
            if probe_data is not None:
                log.info(
                    "General quality (%s cosine Spearman): validation %.4f -> %.4f, test %.4f -> %.4f",
                    probe_data.name, general_before[f"val/{probe_data.name}/spearman_cosine"],
                    general_after[f"val/{probe_data.name}/spearman_cosine"],
                    general_before[f"test/{probe_data.name}/spearman_cosine"],
                    general_after[f"test/{probe_data.name}/spearman_cosine"],
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
