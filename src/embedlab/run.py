"""train(cfg) / evaluate(cfg): the only place where Hydra configs meet the code.

A run instantiates data, model, module, callbacks, loggers and trainer in that order,
fits (unless ``fit=false``), evaluates every split in ``eval_splits`` with the same
function ``evaluate.py`` uses, saves the model, and writes ``results.json``. A
``finally`` block always finishes the W&B run, so jobs of a sweep never share one.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from embedlab.data.sts import STSSpec
from embedlab.errors import ConfigError
from embedlab.eval.variants import cells_record
from embedlab.models.encoder import EncoderSpec

log = logging.getLogger(__name__)

SPLIT_KEY = {"train": "train", "validation": "val", "test": "test"}
MAX_BATCH = 65536  # a sanity bound on data.batch_size / eval_batch_size, far above any useful value


# --- config -> plain specs -------------------------------------------------------------


def encoder_spec(cfg: DictConfig) -> EncoderSpec:
    m, dim = cfg.model, cfg.dimension
    if dim.method not in {"truncate", "projection", "pca"}:
        raise ConfigError(f"Unknown dimension.method '{dim.method}'. Choose truncate, projection or pca.")
    return EncoderSpec(
        name=m.name,
        name_or_path=m.name_or_path,
        packaged=m.packaged,
        revision=m.revision,
        tiny_architecture=m.tiny_architecture,
        max_seq_length=int(m.max_seq_length),
        pooling=cfg.pooling.mode,
        projection_dim=int(dim.size) if dim.method == "projection" and dim.size else None,
        trust_remote_code=bool(m.trust_remote_code),
    )


def sts_spec(cfg: DictConfig) -> STSSpec:
    d = cfg.data
    return STSSpec(
        name=d.name,
        format=d.format,
        score_range=tuple(float(x) for x in d.score_range),  # type: ignore[arg-type]
        root=d.root,
        files=dict(d.files or {}),
        columns=dict(d.columns),
        delimiter=d.delimiter,
        has_header=bool(d.has_header),
        split_fractions=tuple(float(x) for x in d.split_fractions),  # type: ignore[arg-type]
        split_seed=int(d.split_seed),
        hub_id=d.hub_id,
        hub_revision=d.hub_revision,
        on_invalid=d.on_invalid,
        max_pairs_per_split=d.max_pairs_per_split,
    )


def check_config(cfg: DictConfig) -> None:
    """Reject combinations that cannot work, before anything heavy is loaded."""
    q, task = cfg.quantization, cfg.data.task
    if task not in {"sts", "retrieval", "bitext", "mlm"}:
        raise ConfigError(f"Unknown data.task '{task}'. Choose sts, retrieval, bitext or mlm.")
    if cfg.model.get("kind", "transformer") == "fasttext":
        from embedlab.models.fasttext import check_fasttext_settings

        dim = cfg.dimension
        projection = int(dim.size) if dim.method == "projection" and dim.size else None
        check_fasttext_settings(
            pooling=cfg.pooling.mode, fit=bool(cfg.fit), projection_dim=projection, task=task
        )
    if (cfg.objective.loss == "mlm") != (task == "mlm"):
        raise ConfigError(
            f"objective={cfg.objective.name} with data={cfg.data.name} (task {task}): continued MLM needs "
            f"objective=mlm with a text corpus (data=medical, mlm_lee), and MLM corpora train only with objective=mlm."
        )
    if task == "bitext" and cfg.fit:
        raise ConfigError(
            f"data={cfg.data.name} is a bitext evaluation set: run it with evaluate.py (or fit=false)."
        )
    if q.weights not in {"fp32", "bf16", "int8"}:
        raise ConfigError(f"quantization.weights={q.weights} is unknown. Choose fp32, bf16 or int8.")
    if q.weights != "fp32" and (cfg.fit or task == "mlm"):  # reduced weights are for scoring only
        raise ConfigError(
            f"quantization.weights={q.weights} is evaluation-only: it cannot be combined with fit=true or "
            f"data={cfg.data.name} (task {task}). Fine-tune in fp32, then evaluate the saved model: "
            f"evaluate.py model=saved model.name_or_path=<run>/model quantization.weights={q.weights}."
        )
    if q.weights != "fp32" and cfg.model.get("kind", "transformer") != "transformer":
        raise ConfigError(
            f"quantization.weights={q.weights} applies to transformer encoders; model={cfg.model.name} is "
            f"{cfg.model.kind}. Use quantization.weights=fp32."
        )
    from embedlab.eval.precision import PRECISIONS

    if q.embeddings not in PRECISIONS:
        raise ConfigError(
            f"quantization={q.name}: embedding precision {q.embeddings} is unknown. Choose one of {PRECISIONS}."
        )
    if q.embeddings != "float32" and task not in {"retrieval", "sts"}:  # scored by retrieval and STS
        raise ConfigError(
            f"quantization={q.name} (embedding precision {q.embeddings}) applies to retrieval and STS data; "
            f"data={cfg.data.name} is a {task} set. Use quantization=none."
        )
    ranking = cfg.objective.loss in {"mnrl"}
    if cfg.fit and task == "retrieval" and not ranking:
        raise ConfigError(
            f"data={cfg.data.name} is a retrieval set: fine-tune it with objective=mnrl (or mnrl_hard), "
            f"or evaluate it with evaluate.py; objective={cfg.objective.name} needs scored pairs."
        )
    if cfg.fit and task == "retrieval" and not cfg.data.get("train_split"):
        raise ConfigError(
            f"data={cfg.data.name} has no training judgements (data.train_split is null): evaluate it with "
            f"evaluate.py, or fine-tune on a set that has them (data=scifact)."
        )
    if cfg.fit and task == "sts" and ranking:
        raise ConfigError(
            f"objective={cfg.objective.name} trains on (query, positive) pairs: use retrieval data "
            f"(data=scifact) or a pair objective (objective=cosine, cosent) for data={cfg.data.name}."
        )
    if cfg.dimension.size is not None and int(cfg.dimension.size) < 1:
        raise ConfigError(f"dimension.size must be a positive integer, got {cfg.dimension.size}.")
    for key in ("batch_size", "eval_batch_size"):
        value = cfg.data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH
        ):
            raise ConfigError(
                f"data.{key}={value!r}: use an integer from 1 to {MAX_BATCH} (typical: 16-256). One batch is "
                f"encoded at once, so a huge one needs memory for every text of the split together."
            )
    if cfg.model.from_saved_modules and cfg.fit:
        log.info("Fine-tuning a saved model: its own pooling/projection modules are kept.")
    for split in cfg.eval_splits if task == "sts" else ():
        if split not in SPLIT_KEY:
            raise ConfigError(f"eval_splits holds unknown split '{split}'; use train, validation or test.")


def sweep_id() -> str | None:
    """A multirun's id (its sweep folder, relative to outputs/), or None for a single run."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        from embedlab.report.scan import sweep_group_for_dir

        return sweep_group_for_dir(hc.sweep.dir)  # the report's summary run uses the same group
    except Exception:
        return None


def run_name() -> str:
    """The job's override string (what distinguishes it inside a sweep)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        name = HydraConfig.get().job.override_dirname
    except Exception:
        name = ""
    return name or "defaults"


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


# --- pieces ----------------------------------------------------------------------------


def build_model(cfg: DictConfig):
    """The encoder for this config; checks the requested dimension against the model."""
    from embedlab.models.encoder import build_encoder, drop_unused_pooler, embedding_dimension, locate

    spec = encoder_spec(cfg)
    if cfg.model.get("kind", "transformer") == "fasttext":
        model, resolved = build_fasttext(cfg)
    elif cfg.model.from_saved_modules:
        from safetensors import SafetensorError
        from sentence_transformers import SentenceTransformer

        resolved = locate(spec)
        try:
            model = SentenceTransformer(
                str(resolved.path), device="cpu", trust_remote_code=spec.trust_remote_code
            )
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            from embedlab.errors import ModelUnavailableError

            raise ModelUnavailableError(
                f"Saved model '{spec.name}' at {resolved.path} could not be loaded ({type(exc).__name__}: "
                f"{str(exc)[:300]}). Fix: point model.name_or_path at a folder a run wrote (<run dir>/model); "
                f"if its files are truncated or corrupt, write it again."
            ) from exc
        drop_unused_pooler(model[0].auto_model)
    else:
        model, resolved = build_encoder(spec)
    if cfg.quantization.weights != "fp32":
        from embedlab.models.weight_precision import apply_weight_precision

        apply_weight_precision(model, cfg.quantization.weights)  # evaluation only (check_config)
    full = embedding_dimension(model)
    size = cfg.dimension.size
    if size is not None and cfg.dimension.method in ("truncate", "pca") and int(size) > full:
        raise ConfigError(
            f"dimension={cfg.dimension.name} asks for {size} dimensions but model={cfg.model.name} "
            f"with this pooling gives {full}. Fix: dimension=full or a size <= {full}."
        )
    return model, resolved


def build_fasttext(cfg: DictConfig):
    """A fastText encoder trained (or read from the cache) on ``model.fasttext.corpus``."""
    from embedlab.models.fasttext import FastTextParams, build_fasttext_encoder, training_texts

    ft, d = cfg.model.fasttext, cfg.data
    texts, corpus = training_texts(
        ft.corpus,
        task=d.task,
        sts=sts_spec(cfg) if d.task == "sts" else None,
        retrieval=(d.format, d.root, d.split, d.name) if d.task == "retrieval" else None,
        file=ft.corpus_file,
    )
    params = FastTextParams.from_mapping(OmegaConf.to_container(ft.params, resolve=True))  # type: ignore[arg-type]
    return build_fasttext_encoder(
        texts, params, corpus_name=corpus, pooling=cfg.pooling.mode, max_seq_length=int(cfg.model.max_seq_length),
        cache_dir=Path(cfg.paths.cache_dir) if ft.cache else None,
    )  # fmt: skip


def instantiate_list(section: DictConfig | None) -> list[Any]:
    from hydra.utils import instantiate

    if not section:
        return []
    return [instantiate(c) for c in section.values() if c is not None and "_target_" in c]


def build_loggers(cfg: DictConfig) -> list[Any]:
    section = cfg.get("logger")
    if not section:
        return []
    section = OmegaConf.to_container(section, resolve=True)
    for conf in section.values():  # type: ignore[union-attr]
        if isinstance(conf, dict) and "make_wandb_logger" in str(conf.get("_target_")):
            conf["name"] = conf.get("name") or run_name()
            conf["group"] = conf.get("group") or sweep_id()
    return instantiate_list(OmegaConf.create(section))


def evaluate_splits(cfg: DictConfig, encoder, data, loggers: list[Any]) -> tuple[dict[str, float], dict]:
    """Score every split in ``eval_splits``; returns flat metrics and per-split details.

    Embeddings go through the embedding cache (retrieval's key scheme), so cells that
    differ only in dimension or embedding precision encode nothing after the first;
    ``n_texts_encoded`` / ``n_texts_from_cache`` (once per job, under the monitored
    split) say what happened. PCA is fitted on the train split's sentences.
    """
    from embedlab.eval.sts import evaluate_sts, fit_sts_pca

    dim, emb_precision = cfg.dimension, cfg.quantization.embeddings
    dims = [int(dim.size)] if dim.method == "truncate" and dim.size else []
    cache = encoder.cache
    # counted apart: the fit texts are not the scored ones
    pca, fit = None, encoder.replace(cache=type(cache)(cache.root))
    from embedlab.eval.sts import split_texts

    prefetch_poolings_from_cfg(
        cfg, encoder, [("sentences", split_texts(data.splits[s])) for s in cfg.eval_splits]
    )
    if dim.method == "pca" and dim.size:
        prefetch_poolings_from_cfg(cfg, fit, [("sentences", split_texts(data.splits["train"]))])
        pca = fit_sts_pca(fit, data.splits["train"], int(dim.size), dataset=cfg.data.name)
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    for split in cfg.eval_splits:
        key = f"{SPLIT_KEY[split]}/{cfg.data.name}"
        result = evaluate_sts(
            encoder,
            data.splits[split],
            dims=dims,
            precisions=[emb_precision],
            pca=pca,
            n_worst=cfg.n_worst_pairs,
        )
        for name, value in result.metrics.items():
            metrics[f"{key}/{name}"] = value
        stats = result.encode_stats
        metrics[f"{key}/n_pairs"] = float(len(data.splits[split]))
        if stats is not None:  # None: a cache entry stored without its encode stats
            metrics[f"{key}/encode_texts_per_s"] = stats.n_encoded / max(stats.seconds, 1e-9)
            metrics[f"{key}/n_truncated_texts"] = float(stats.n_truncated)
        details[key] = {"encode": stats.as_dict() if stats else "cached", "worst_pairs": result.worst_pairs}
        details["cells"] = cells_record(result.cells)  # every split scores the same grid
        for lg in loggers:
            if hasattr(lg, "log_table"):
                cols = list(result.worst_pairs[0]) if result.worst_pairs else []
                lg.log_table(
                    key=f"{key}/worst_pairs",
                    columns=cols,
                    data=[list(r.values()) for r in result.worst_pairs],
                )
    keys = [f"{SPLIT_KEY[s]}/{cfg.data.name}" for s in cfg.eval_splits]
    prefix = next((k for k in keys if str(cfg.monitor).startswith(f"{k}/")), keys[0] if keys else None)
    if prefix is not None:  # once per job: the report counts encode passes from it
        metrics[f"{prefix}/n_texts_encoded"] = float(cache.stats.n_encoded)
        metrics[f"{prefix}/n_texts_from_cache"] = float(cache.stats.n_from_cache)
        if pca is not None:
            metrics[f"{prefix}/n_pca_fit_texts_encoded"] = float(fit.cache.stats.n_encoded)
    return metrics, details


def index_spec_from_cfg(cfg: DictConfig):
    from embedlab.eval.index import index_spec

    node = cfg.get("index")
    if not node or not node.get("kind"):
        return None
    return index_spec(node.kind, **OmegaConf.to_container(node.params, resolve=True))  # type: ignore[arg-type]


def retrieval_settings(cfg: DictConfig):
    from embedlab.eval.retrieval_task import RetrievalEvalSettings, parse_ks

    d, index = cfg.data, index_spec_from_cfg(cfg)
    return RetrievalEvalSettings(
        ks=parse_ks(d.ks),
        dims=(int(cfg.dimension.size),) if cfg.dimension.method == "truncate" and cfg.dimension.size else (),
        pca_dims=(int(cfg.dimension.size),) if cfg.dimension.method == "pca" and cfg.dimension.size else (),
        precision=cfg.quantization.embeddings,
        rescore_multiplier=int(cfg.quantization.rescore_multiplier),
        index=index,
        index_k=int(cfg.index.k) if index is not None else 10,
        n_latency_queries=int(cfg.index.n_latency_queries) if index is not None else 0,
        answer_ks=parse_ks(d.answer_ks),
    )


def encode_settings(cfg: DictConfig):
    """``cfg.encode`` as plain settings; the batch size is ``data.eval_batch_size``."""
    from embedlab.encode.encoder import EncodeSettings

    enc = cfg.get("encode") or {}
    return EncodeSettings(
        backend=enc.get("backend", "reference"), precision=enc.get("precision", "bf16"),
        token_budget=enc.get("token_budget", 8192), threads=enc.get("threads"),
        batch_size=int(cfg.data.get("eval_batch_size") or 32), weight_precision=cfg.quantization.weights,
    )  # fmt: skip


def encoder_from_cfg(cfg: DictConfig, model):
    """The run's one Encoder: ``cfg.encode`` settings and the run's embedding cache
    (embedlab.encode_corpus fills the same entries)."""
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.encode.encoder import Encoder

    cache = EmbeddingCache(Path(cfg.paths.cache_dir) / "embeddings" if cfg.embedding_cache else None)
    return Encoder(model, encode_settings(cfg), cache)


def prefetch_poolings_from_cfg(cfg: DictConfig, encoder, text_sets) -> None:
    """With ``encode.share_poolings`` (a sweep's poolings), one transformer pass fills the
    cache for all of them, so the other poolings' jobs encode nothing (encode/pooling_share.py)."""
    modes = list((cfg.get("encode") or {}).get("share_poolings") or [])
    if not modes or cfg.fit or cfg.model.get("kind", "transformer") != "transformer":
        return
    from embedlab.encode.pooling_share import prefetch_poolings

    prefetch_poolings(encoder, text_sets, modes)


def evaluate_retrieval_data(cfg: DictConfig, encoder, val_set=None) -> tuple[dict[str, float], dict, dict]:
    """Score the evaluation split (and held-out val queries after fine-tuning).

    Returns (metrics, details, data meta). The index and precision apply to the
    evaluation split; the val split gets exact search only (it picks checkpoints).
    """
    from dataclasses import replace

    from embedlab.data.retrieval import load_retrieval_set
    from embedlab.eval.retrieval_task import evaluate_retrieval

    d = cfg.data
    data = load_retrieval_set(d.format, d.root, split=d.split, name=d.name)
    settings = retrieval_settings(cfg)
    cache = encoder.cache
    prefetch_poolings_from_cfg(cfg, encoder, [
        ("documents", [data.corpus[i] for i in data.doc_ids]), ("queries", [data.queries[q] for q in data.query_ids]),
    ])  # fmt: skip
    jobs = [(f"{d.metric_split}/{d.name}", data, settings)]
    if val_set is not None:
        jobs.append((f"val/{d.name}", val_set, replace(settings, index=None, precision="float32", dims=())))
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    for prefix, rset, sett in jobs:
        result = evaluate_retrieval(encoder, rset, sett)
        metrics.update({f"{prefix}/{k}": float(v) for k, v in result.metrics.items()})
        details[prefix] = result.details
        details.setdefault("cells", cells_record(result.cells))  # the evaluation split's grid
    prefix = jobs[0][0]
    metrics[f"{prefix}/n_texts_encoded"] = float(cache.stats.n_encoded)
    metrics[f"{prefix}/n_texts_from_cache"] = float(cache.stats.n_from_cache)
    log.info(
        "Embeddings: %d texts encoded, %d read from the cache",
        cache.stats.n_encoded,
        cache.stats.n_from_cache,
    )
    data_meta = {"name": data.name, "fingerprint": data.revision, "n_docs": len(data.corpus),
                 "n_queries": len(data.queries), "stats": dict(data.stats)}  # fmt: skip
    return metrics, details, data_meta


def evaluate_bitext_data(cfg: DictConfig, encoder) -> tuple[dict[str, float], dict, dict]:
    from embedlab.eval.bitext_task import evaluate_bitext

    d, cache = cfg.data, encoder.cache
    raw, revisions = evaluate_bitext(encoder, list(d.langs), d.root)
    prefix = f"{d.metric_split}/{d.name}"
    metrics = {f"{prefix}/{k}": v for k, v in raw.items()}
    metrics[f"{prefix}/n_texts_encoded"] = float(cache.stats.n_encoded)
    metrics[f"{prefix}/n_texts_from_cache"] = float(cache.stats.n_from_cache)
    return metrics, {}, {"name": d.name, "fingerprint": revisions}


def ranking_datamodule(cfg: DictConfig, model):
    """(query, positive[, negatives]) training data from the set's training judgements."""
    from embedlab.data.retrieval import load_retrieval_set
    from embedlab.data.retrieval_pairs import (
        RankingDataModule,
        mine_negatives,
        ranking_examples,
        split_queries,
    )

    d, hn = cfg.data, cfg.objective.hard_negatives
    full = load_retrieval_set(d.format, d.root, split=d.train_split, name=d.name)
    train_set, val_set = split_queries(full, float(d.val_fraction), int(cfg.seed))
    examples = ranking_examples(train_set)
    if int(hn.num) > 0:
        examples = mine_negatives(
            examples, model, list(full.corpus.values()), num_negatives=int(hn.num), range_min=int(hn.range_min),
            range_max=int(hn.range_max), relative_margin=hn.relative_margin, batch_size=int(d.eval_batch_size),
        )  # fmt: skip
    log.info(
        "Retrieval fine-tuning: %d training pairs, %d held-out val queries",
        len(examples),
        len(val_set.queries),
    )
    return RankingDataModule(examples, batch_size=int(d.batch_size), seed=int(cfg.seed)), val_set


def fit_resumable(trainer, module, datamodule, ckpt_path: str | None, out: Path) -> None:
    """``trainer.fit`` that resumes from ``ckpt_path`` ("last": ``<out>/checkpoints/last.ckpt``,
    the run's own mid-epoch checkpoint) and loads it with ``weights_only=True``: a checkpoint
    holding pickled Python objects is refused, since unpickling it could run any code."""
    import pickle

    if ckpt_path == "last":
        last = out / "checkpoints" / "last.ckpt"
        if last.is_file():
            log.info("Resuming from %s", last)
        else:
            log.warning(
                "ckpt_path=last but %s does not exist: training from scratch. To resume a run, "
                "point hydra.run.dir (or hydra.sweep.dir for a sweep) at that run's folder.",
                last,
            )
    elif ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: no such checkpoint file. Use a .ckpt path or ckpt_path=last."
        )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        culprit = next((ln for ln in lines if "GLOBAL" in ln), lines[0] if lines else "")
        raise ConfigError(
            f"Refusing checkpoint ckpt_path={ckpt_path}: it holds pickled Python objects, not only tensors "
            f"and plain values, and embedlab loads checkpoints with torch.load(weights_only=True). Resume only "
            f"from checkpoints that embedlab wrote (<run dir>/checkpoints/last.ckpt). torch: {culprit}"
        ) from exc


def sts_data_meta(data) -> dict[str, Any]:
    return {
        "name": data.name,
        "fingerprint": data.fingerprint(),
        "pairs": {k: len(v) for k, v in data.splits.items()},
        "dropped_invalid": dict(data.dropped),
    }


def collect_meta(
    cfg: DictConfig, resolved, model_fp: str, data_meta: dict, seconds: float, extra: dict
) -> dict[str, Any]:
    from embedlab.tracking.results import git_state, package_versions

    return {
        "task": cfg.task_name,
        "run_name": run_name(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "packages": package_versions(),
        "git": git_state(Path(__file__).resolve().parent),
        "model": {
            "name": cfg.model.name,
            "source": resolved.source,
            "path": str(resolved.path),
            "fingerprint": model_fp,
        },
        "data": data_meta,
        "wall_time_s": seconds,
        **extra,
    }


# --- entry points ----------------------------------------------------------------------


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fine-tune (unless ``fit=false``) and evaluate; returns (metrics, objects)."""
    import lightning as L
    from hydra.utils import instantiate

    from embedlab.data.pair_datamodule import PairDataModule
    from embedlab.encode.stats import token_lengths
    from embedlab.models.encoder import model_fingerprint
    from embedlab.modules.siamese import SiameseModule
    from embedlab.tracking.results import redact, write_results
    from embedlab.tracking.wandb_logger import finish_wandb

    start = time.perf_counter()
    check_config(cfg)
    if cfg.data.task == "mlm":
        from embedlab.mlm_task import run_mlm

        return run_mlm(cfg)
    L.seed_everything(int(cfg.seed), workers=True)
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)

    is_sts = cfg.data.task == "sts"
    datamodule = None
    if is_sts:
        datamodule = PairDataModule(
            sts_spec(cfg),
            batch_size=int(cfg.data.batch_size),
            eval_batch_size=int(cfg.data.eval_batch_size),
            seed=int(cfg.seed),
        )
        datamodule.setup()
    model, resolved = build_model(cfg)
    model_fp = model_fingerprint(resolved)
    obj = cfg.objective
    module = SiameseModule(
        model,
        loss=obj.loss,
        lr=float(obj.lr),
        weight_decay=float(obj.weight_decay),
        warmup_ratio=float(obj.warmup_ratio),
        cosent_scale=float(obj.scale),
        dataset_name=cfg.data.name,
        matryoshka_dims=None if obj.get("matryoshka_dims") is None else list(obj.matryoshka_dims),
        matryoshka_weights=None if obj.get("matryoshka_weights") is None else list(obj.matryoshka_weights),
    )
    loggers = build_loggers(cfg)
    exit_code = 1
    try:  # from here on the W&B run exists: the finally block must finish it
        callbacks = instantiate_list(cfg.get("callbacks")) if cfg.fit else []
        if not loggers:  # Lightning refuses a LearningRateMonitor without a logger
            from lightning.pytorch.callbacks import LearningRateMonitor

            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        val_set = None
        if not is_sts and cfg.fit:
            datamodule, val_set = ranking_datamodule(cfg, model)
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        for lg in loggers:
            lg.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        extra: dict[str, Any] = {}
        if cfg.quantization.weights != "fp32":  # what the weights really are, read from the model
            from embedlab.models.weight_precision import weight_precision_summary

            extra["weights"] = weight_precision_summary(model)
        if cfg.fit:
            assert datamodule is not None
            if is_sts:
                train_split = datamodule.data.splits["train"]
                train_texts = list(train_split.sentence1) + list(train_split.sentence2)
            else:
                train_texts = [t for e in datamodule.examples for t in (e.query, e.positive, *e.negatives)]
            lengths = token_lengths(model, list(dict.fromkeys(train_texts)))
            n_long = int((lengths > model.max_seq_length).sum())
            if n_long:
                log.warning(
                    "%d distinct training texts exceed %d tokens and are truncated.",
                    n_long,
                    model.max_seq_length,
                )
            extra["train"] = {"n_truncated_texts": n_long, "max_tokens": int(lengths.max())}
            fit_start = time.perf_counter()
            model.train()  # built in eval mode; Lightning keeps submodule modes, so dropout needs this
            fit_resumable(trainer, module, datamodule, cfg.ckpt_path, out)
            extra["train"]["seconds"] = time.perf_counter() - fit_start
            extra["train"]["steps"] = int(trainer.global_step)
            extra["distributed"] = {
                "world_size": int(trainer.world_size),
                "num_nodes": int(trainer.num_nodes),
                "strategy": type(trainer.strategy).__name__,
                "cluster_environment": type(getattr(trainer.strategy, "cluster_environment", None)).__name__,
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            }
        metrics: dict[str, float] = {}
        details: dict[str, Any] = {}
        if trainer.is_global_zero:
            model.eval()
            encoder = encoder_from_cfg(cfg, model)  # after fit: its cache key hashes the trained weights
            if is_sts:
                assert datamodule is not None and datamodule.data is not None
                metrics, details = evaluate_splits(cfg, encoder, datamodule.data, loggers)
                data_meta = sts_data_meta(datamodule.data)
            elif cfg.data.task == "bitext":
                metrics, details, data_meta = evaluate_bitext_data(cfg, encoder)
            else:
                metrics, details, data_meta = evaluate_retrieval_data(cfg, encoder, val_set)
            if cfg.save_model and cfg.quantization.weights != "fp32":
                log.info("Model not saved: its %s weights are for evaluation only.", cfg.quantization.weights)
            elif cfg.save_model:
                model.save(str(out / "model"))
                extra["saved_model"] = str(out / "model")
            for lg in loggers:
                lg.log_metrics(metrics, step=int(trainer.global_step))
            meta = collect_meta(cfg, resolved, model_fp, data_meta, time.perf_counter() - start, extra)
            meta["cells"] = details.pop("cells", [])  # the variant cells the metric keys name
            meta["eval"] = details
            write_results(out / "results.json", metrics, meta)
            headline = {k: round(v, 4) for k, v in metrics.items() if k.endswith(f"/{cfg.data.metric}")}
            log.info("Results: %s", headline)
            log.info("Wrote %s", out / "results.json")
        exit_code = 0
        return metrics, {"model": model, "module": module, "trainer": trainer, "datamodule": datamodule}
    finally:
        finish_wandb(loggers, exit_code)


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Evaluate a model without training (``fit=false``)."""
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    cfg.fit = False
    return train(cfg)
