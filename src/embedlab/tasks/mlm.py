"""Continued masked-LM training of an encoder's backbone on a text corpus (domain adaptation).

Perplexity (fixed masks), k-NN accuracy and t-SNE maps are measured before and after; the backbone goes
back into the sentence encoder. Forgetting is watched by a general-quality probe (STS-B, else Lee), a
guard that keeps the previous encoder on a too-large drop, and replay; an optional siamese fine-tune
follows (``compare_without_mlm``: also of the pre-update encoder, the baseline)."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.data.sts import STSSpec, load_sts, stsb_spec
from embedlab.data.text_corpus import general_sentences, load_corpus, mix_replay
from embedlab.encode.encoder import Encoder
from embedlab.errors import ConfigError
from embedlab.models.encoder import build_encoder
from embedlab.tasks.base import EvalOutput, Task, register
from embedlab.tasks.model import run_device

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs

log = logging.getLogger(__name__)

GUARD_METRICS: tuple[str, ...] = ("spearman_cosine", "pearson_cosine")
PAIR_LOSSES: tuple[str, ...] = ("cosine", "cosent")
STAGE_TITLES = {
    "before": "before MLM",
    "after": "after MLM",
    "after_finetune": "after MLM + fine-tuning",
    "finetuned_without_mlm": "fine-tuned without MLM",
}


def knn_accuracy(embeddings: Any, labels: list[str], *, k: int = 5, seed: int = 0) -> float:
    """5-fold cross-validated k-NN (cosine) accuracy: do texts of a class sit together?"""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    folds = int(min(5, np.unique(labels, return_counts=True)[1].min()))
    if folds < 2:
        return float("nan")
    clf = KNeighborsClassifier(n_neighbors=min(k, len(labels) - len(labels) // folds - 1), metric="cosine")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, np.asarray(embeddings), labels, cv=cv, n_jobs=1).mean())


def general_probe_spec(root: str | Path | None, *, max_pairs: int | None = None, seed: int = 42) -> STSSpec:
    """STS-B under ``root`` when it is there; else the embedded Lee ratings (offline; not comparable)."""
    path = Path(root).expanduser() if root else None
    if path is not None and all((path / f).is_file() for f in ("sts-dev.csv", "sts-test.csv")):
        return stsb_spec(path, max_pairs=max_pairs, seed=seed)
    log.warning(
        "General-quality probe: STS-B not found at %s (sts-dev.csv, sts-test.csv); using the embedded "
        "Lee document-similarity ratings (gensim) instead. Set EMBEDLAB_DATA to the folder holding stsb/ "
        "to probe on STS-B.",
        path,
    )
    fractions = (0.7, 0.15, 0.15)
    return STSSpec(
        "lee", "lee", score_range=(0.0, 1.0), split_fractions=fractions, max_pairs_per_split=max_pairs
    )


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


def guard_settings(extra: Any) -> tuple[dict | None, dict | None, dict | None]:
    """(general_probe, guard, replay) from ``objective``; absent or null sections are off."""
    probe, guard, replay = extra.get("general_probe"), extra.get("guard"), extra.get("replay")
    if guard is not None and guard.get("tolerance") is None:
        guard = None
    if guard is not None and probe is None:
        raise ConfigError(
            "objective.guard needs the general-quality probe it decides on: set objective.general_probe "
            "(e.g. root=${paths.data_dir}/stsb) or turn the guard off with objective.guard.tolerance=null."
        )
    if guard is not None and guard.get("metric", "spearman_cosine") not in GUARD_METRICS:
        raise ConfigError(f"objective.guard.metric must be one of {GUARD_METRICS}, got {guard['metric']!r}.")
    if replay is not None and not float(replay.get("fraction") or 0.0):
        replay = None
    return probe, guard, replay


@dataclass(frozen=True)
class FinetuneSettings:
    """``objective.finetune``: how the encoder is fine-tuned after the MLM update."""

    loss: str = "cosine"
    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    max_pairs: int | None = None  # a seeded subsample of the train pairs, for quick runs
    compare_without_mlm: bool = False  # also fine-tune the pre-update encoder (the baseline)


def finetune_settings(specs: RunSpecs) -> FinetuneSettings | None:
    """The fine-tuning step's settings, or None when ``objective.finetune`` is null / off."""
    ft = specs.objective.extra.get("finetune")
    if ft is None or not ft.get("enabled", True):
        return None
    if specs.objective.extra.get("general_probe") is None:
        raise ConfigError(
            "objective.finetune trains on the general probe's pair set (STS-B train pairs): set "
            "objective.general_probe (e.g. root=${paths.data_dir}/stsb) or turn fine-tuning off with "
            "objective.finetune=null."
        )
    s = FinetuneSettings(**{k: ft[k] for k in FinetuneSettings.__dataclass_fields__ if ft.get(k) is not None})
    if s.loss not in PAIR_LOSSES:
        raise ConfigError(
            f"objective.finetune.loss={s.loss!r}: fine-tuning on scored pairs takes one of {PAIR_LOSSES}."
        )
    if int(s.epochs) < 1 or int(s.batch_size) < 2:
        raise ConfigError(
            f"objective.finetune needs epochs >= 1 and batch_size >= 2 (got {s.epochs}, {s.batch_size})."
        )
    trainer = specs.run.trainer.kwargs
    devices = trainer.get("devices", 1)
    if trainer.get("num_nodes", 1) != 1 or (isinstance(devices, int) and devices > 1):
        raise ConfigError(
            "objective.finetune runs in one process after the MLM update; with trainer=ddp run the update "
            "alone (objective.finetune=null), then fine-tune the saved model: train.py experiment=stsb_sbert "
            "model=saved model.name_or_path=<mlm run>/model trainer=ddp."
        )
    return s


@register("mlm")
class MLMTask(Task):
    def __init__(self, specs: RunSpecs) -> None:
        super().__init__(specs)
        self.probe_cfg, self.guard_cfg, self.replay_cfg = guard_settings(specs.objective.extra)
        self.finetune = finetune_settings(specs)
        self.corpus = load_corpus(specs.data)
        self.batch = int(specs.data_cfg.get("eval_batch_size", 32))
        self.out, self.key = Path(specs.run.output_dir), f"val/{self.corpus.name}"
        self.metrics: dict[str, float] = {}
        self.plots: dict[str, str] = {}
        self.probe_data, self.previous, self.before, self.steps, self.replay_meta = None, None, {}, 0, None
        o = specs.objective.extra  # the same (seeded) masks for training data and both perplexities
        self.mlm_kw = {
            "mlm_probability": float(o["mlm_probability"]),
            "whole_word_mask": bool(o["whole_word_mask"]),
        }
        self.mlm_kw |= {"seed": specs.run.seed, "max_length": specs.model.max_seq_length}
        self.probe_root = (self.probe_cfg or {}).get("root")
        if self.probe_cfg is not None:
            mp = self.probe_cfg.get("max_pairs")
            spec = general_probe_spec(self.probe_root, max_pairs=mp and int(mp), seed=specs.run.seed)
            self.probe_data = load_sts(spec, splits=("validation", "test"))

    @classmethod
    def check(cls, specs: RunSpecs) -> None:
        super().check(specs)
        if not specs.run.fit:
            raise ConfigError(
                f"data={specs.data_name} is an MLM corpus: continued MLM trains, run it with train.py."
            )
        guard_settings(specs.objective.extra)
        finetune_settings(specs)

    def build_model(self) -> tuple[Any, Any]:
        model, self.resolved = build_encoder(replace(self.specs.model, projection_dim=None))
        return model.to(run_device(self.specs)), self.resolved

    def build_datamodule(self, model: Any) -> Any:
        from embedlab.data.datamodules import MLMDataModule
        from embedlab.modules.mlm import MLMModule

        s, o = self.specs, self.specs.objective
        optim = {"lr": o.lr, "weight_decay": o.weight_decay, "warmup_ratio": o.warmup_ratio}
        self.module = MLMModule(self.resolved.path, **optim, dataset_name=self.corpus.name)
        texts = list(self.corpus.train_texts)
        if self.replay_cfg is not None:
            general, where = general_sentences(self.replay_cfg["source"], stsb_root=self.probe_root)
            fraction = float(self.replay_cfg["fraction"])
            mix = mix_replay(texts, general, fraction, seed=s.run.seed, source=where)
            texts = list(mix.texts)
            self.replay_meta = {"source": where, "fraction": mix.fraction, "n_domain": mix.n_domain}
            self.replay_meta["n_replay"] = mix.n_replay
        batches = {"batch_size": int(s.data_cfg["batch_size"]), "eval_batch_size": self.batch}
        dm = MLMDataModule(self.module.tokenizer, texts, self.corpus.heldout_texts, **batches, **self.mlm_kw)
        dm.setup()
        self.datamodule = dm
        return dm

    def build_module(self, model: Any) -> Any:
        return self.module

    def perplexity(self) -> float:
        """Held-out perplexity with the same (seeded) masks before and after training."""
        from embedlab.modules.mlm import perplexity

        texts = self.corpus.heldout_texts
        return perplexity(
            self.module.model, self.module.tokenizer, texts, batch_size=self.batch, **self.mlm_kw
        )

    def probe(self, model: Any, stage: str) -> dict[str, float]:
        """Cosine Spearman / Pearson on the probe's validation and test splits (``<split>/<name>/<metric>``),
        encoded as the run's ``encode`` config says; recorded as ``..._<stage>`` metrics."""
        from embedlab.eval.sts import evaluate_sts

        out, data = {}, self.probe_data
        assert data is not None
        for split, prefix in (("validation", "val"), ("test", "test")):
            result = evaluate_sts(Encoder(model, self.specs.encode.settings), data.splits[split], n_worst=0)
            out |= {f"{prefix}/{data.name}/{name}": float(result.metrics[name]) for name in GUARD_METRICS}
        self.metrics.update({f"{k}_{stage}": v for k, v in out.items()})
        return out

    def before_fit(self, model: Any, module: Any, loggers: list[Any]) -> None:
        self.module.model.to(model.device)  # the probes run on the run's device (build_model put it there)
        self.metrics[f"{self.key}/perplexity_before"] = self.perplexity()
        model.eval()
        self.embed_and_plot(model, "before", loggers)
        if self.probe_data is not None:
            self.before = self.probe(model, "before")
            # the guard may have to put the pre-update encoder back: keep a copy of its weights
            self.previous = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def after_fit(self, module: Any, trainer: Any) -> None:
        self.steps = int(trainer.global_step)

    def embed_and_plot(self, encoder: Any, stage: str, loggers: list[Any]) -> None:
        """Held-out embeddings -> k-NN accuracy and a t-SNE PNG, for labelled corpora."""
        from embedlab.viz.tsne import log_image_to_loggers, tsne_plot

        corpus, seed, labels = self.corpus, self.specs.run.seed, self.corpus.heldout_labels
        if labels is None:
            return
        emb = encoder.encode(
            corpus.heldout_texts, batch_size=self.batch, convert_to_numpy=True, show_progress_bar=False
        )  # (N, D)
        self.metrics[f"val/{corpus.name}/knn_accuracy_{stage}"] = knn_accuracy(emb, labels, seed=seed)
        title = f"{corpus.name}: held-out embeddings, {STAGE_TITLES.get(stage, stage)} ({len(labels)} texts)"
        path = tsne_plot(emb, labels, self.out / "plots" / f"tsne_{stage}.png", title=title, seed=seed)
        log_image_to_loggers(loggers, f"val/{corpus.name}/tsne_{stage}", path)
        self.plots[stage] = str(path)

    def evaluate(self, encoder: Encoder, loggers: list[Any]) -> EvalOutput:
        from embedlab.modules.mlm import copy_backbone_to_encoder

        model, m, key, corpus, dm = encoder.model, self.metrics, self.key, self.corpus, self.datamodule
        self.module.model.to(model.device)  # Lightning left it on the CPU
        m[f"{key}/perplexity_after"] = self.perplexity()
        copied = copy_backbone_to_encoder(self.module.model, model)  # into the encoder on the run's device
        model.eval()
        self.embed_and_plot(model, "after", loggers)
        guard, finetune = self.guard(model), None
        if self.finetune is not None:
            finetune = self.finetune_stage(model, bool(guard and guard["guard_triggered"]), loggers)
            if guard is not None:
                guard["saved"] += ", then fine-tuned"
        counts = {"train_texts": len(corpus.train_idx), "heldout_texts": len(corpus.heldout_idx)}
        counts |= {"truncated_train_texts": dm.train_tokens.n_truncated}
        counts |= {"truncated_heldout_texts": dm.val_tokens.n_truncated}
        if self.replay_meta is not None:
            counts["replay_texts"] = self.replay_meta["n_replay"]
        m.update({f"{key}/n_{k}": float(v) for k, v in counts.items()})
        report, probe = self.module.head_report, self.probe_data
        mlm = {"head_newly_initialised": list(report.new_head_keys), "steps": self.steps}
        mlm |= {
            "missing_backbone_keys": list(report.missing_backbone_keys),
            "backbone_tensors_copied": copied.n_tensors,
        }
        pairs = {k: len(v) for k, v in probe.splits.items()} if probe else {}
        general = {"name": probe.name, "fingerprint": probe.fingerprint(), "pairs": pairs} if probe else None
        extra = {"mlm": mlm, "plots": self.plots, "guard": guard, "replay": self.replay_meta}
        extra |= {"finetune": finetune, "general_probe": general}
        new_head = " (the MLM head started at random)" if report.head_is_new else ""
        log.info(
            f"Perplexity on {len(corpus.heldout_idx)} held-out texts: {m[f'{key}/perplexity_before']:.2f}"
            f" before, {m[f'{key}/perplexity_after']:.2f} after {self.steps} steps{new_head}"
        )
        return EvalOutput(m, data_meta=corpus.meta(), extra_meta=extra)

    def guard(self, model: Any) -> dict[str, Any] | None:
        """Probe after the update; with a guard, decide on the validation probe and, on a too-large
        drop, put the pre-update weights back. None: no guard."""
        if self.probe_data is None:
            return None
        after, name = self.probe(model, "after"), self.probe_data.name
        val, test = (f"{split}/{name}/spearman_cosine" for split in ("val", "test"))
        log.info(
            f"General quality ({name} cosine Spearman): validation {self.before[val]:.4f} -> {after[val]:.4f}, "
            f"test {self.before[test]:.4f} -> {after[test]:.4f}"
        )
        if self.guard_cfg is None:
            return None
        metric = f"val/{name}/{self.guard_cfg.get('metric', 'spearman_cosine')}"
        d = GuardDecision(metric, self.before[metric], after[metric], float(self.guard_cfg["tolerance"]))
        change = f"{metric} fell from {d.before:.4f} to {d.after:.4f} (drop {d.drop:.4f}"
        if d.triggered:
            assert self.previous is not None
            model.load_state_dict(self.previous)
            log.warning(
                f"FORGETTING GUARD TRIGGERED: {change} > tolerance {d.tolerance:.4f}). The update is rejected: "
                f"{self.out / 'model'} holds the PREVIOUS (pre-update) encoder; the after-metrics in "
                "results.json describe the rejected update."
            )
        else:
            log.info(
                f"Forgetting guard passed: {metric} {d.before:.4f} -> {d.after:.4f} (drop {d.drop:.4f} <= "
                f"tolerance {d.tolerance:.4f}); the updated encoder is saved."
            )
        self.metrics[f"val/{name}/guard_triggered"] = float(d.triggered)
        return d.as_dict() | {"saved": "previous encoder" if d.triggered else "updated encoder"}

    def finetune_stage(self, model: Any, kept_previous: bool, loggers: list[Any]) -> dict[str, Any]:
        """Fine-tune the kept encoder (and, to compare, the pre-update one) on the probe's train pairs;
        probe both: ``<probe key>_after_finetune`` (the kept encoder), ``..._finetuned_without_mlm``."""
        st, probe, seed = self.finetune, self.probe_data, self.specs.run.seed
        assert st is not None and probe is not None and self.previous is not None
        spec = general_probe_spec(self.probe_root, max_pairs=st.max_pairs, seed=seed)
        record: dict[str, Any] = {**asdict(st), "pairs_from": spec.name}
        stages = [
            ("with_mlm", "after_finetune", model, "kept (pre-update)" if kept_previous else "MLM-updated")
        ]
        if st.compare_without_mlm and kept_previous:
            log.info(
                "The guard kept the pre-update encoder: fine-tuning it IS the without-MLM baseline; run once."
            )
            record["without_mlm"] = "same as with_mlm: the guard rejected the MLM update"
        elif st.compare_without_mlm:
            baseline = copy.deepcopy(model)
            baseline.load_state_dict(self.previous)
            stages.append(("without_mlm", "finetuned_without_mlm", baseline, "pre-update"))
        for key, stage, encoder, label in stages:
            # "with_mlm" holds the encoder the guard kept: pre-update if it rejected the update
            record[key] = self.finetune_on_pairs(encoder, spec, label) | {"encoder": label}
            self.embed_and_plot(encoder, stage, loggers)
            general = self.probe(encoder, stage)
            val, test = (general[f"{split}/{probe.name}/spearman_cosine"] for split in ("val", "test"))
            log.info(
                f"Fine-tuned {label} encoder: val/{probe.name}/spearman_cosine {val:.4f}, test {test:.4f}"
            )
        return record

    def finetune_on_pairs(self, encoder: Any, spec: STSSpec, label: str) -> dict[str, Any]:
        """Fine-tune ``encoder`` in place on the train split of ``spec``; returns a record of the step."""
        import lightning as L

        from embedlab.data.datamodules import PairDataModule
        from embedlab.modules.siamese import SiameseModule

        seed, st = self.specs.run.seed, self.finetune
        assert st is not None
        L.seed_everything(seed, workers=True)  # both fine-tunes (with / without MLM) draw the same dropout
        datamodule = PairDataModule(spec, batch_size=st.batch_size, eval_batch_size=64, seed=seed)
        datamodule.setup()
        module = SiameseModule(
            encoder, loss=st.loss, lr=st.lr, warmup_ratio=st.warmup_ratio, dataset_name=spec.name
        )
        # No validation loop and no checkpoints: the run's probes score the result afterwards.
        quiet = {"enable_checkpointing": False, "limit_val_batches": 0, "num_sanity_val_steps": 0}
        kw = {"max_epochs": st.epochs, "callbacks": [], "logger": False, "enable_progress_bar": False}
        trainer = self.specs.run.trainer.build(**kw, **quiet)
        n = len(datamodule.split("train"))
        log.info(
            f"Fine-tuning the {label} encoder on {n} {spec.name} train pairs: {st.epochs} epoch(s), "
            f"batch {st.batch_size}, lr {st.lr:g}, loss {st.loss}."
        )
        start, device = time.perf_counter(), encoder.device
        encoder.train()
        trainer.fit(module, datamodule=datamodule)
        encoder.to(device)  # back where the probes run: Lightning leaves it on the CPU
        encoder.eval()
        return {"pairs": n, "steps": int(trainer.global_step), "seconds": time.perf_counter() - start}

    def objects(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "plots": self.plots}
