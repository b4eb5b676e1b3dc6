"""Forgetting around a continual MLM update: the general-quality probe (STS-B validation and test
Spearman; the embedded Lee ratings when STS-B is absent), the guard that keeps the previous encoder on
a too-large drop, k-NN accuracy, and the optional siamese fine-tune after the update (with
``compare_without_mlm`` also of the pre-update encoder, so one results.json says what MLM adds).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.data.sts import STSData, STSSpec
from embedlab.data.text_corpus import stsb_spec
from embedlab.encode.encoder import Encoder, EncodeSettings
from embedlab.errors import ConfigError

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

    counts = np.unique(labels, return_counts=True)[1]
    folds = int(min(5, counts.min()))
    if folds < 2:
        return float("nan")
    clf = KNeighborsClassifier(n_neighbors=min(k, len(labels) - len(labels) // folds - 1), metric="cosine")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, np.asarray(embeddings), labels, cv=cv, n_jobs=1).mean())


def general_probe_spec(root: str | Path | None, *, max_pairs: int | None = None, seed: int = 42) -> STSSpec:
    """STS-B under ``root`` when it is there; otherwise the embedded Lee ratings (gensim, offline;
    its scores are not comparable with STS-B's)."""
    path = Path(root).expanduser() if root else None
    if path is not None and all((path / f).is_file() for f in ("sts-dev.csv", "sts-test.csv")):
        return stsb_spec(path, max_pairs=max_pairs, seed=seed)
    log.warning(
        "General-quality probe: STS-B not found at %s (sts-dev.csv, sts-test.csv); using the embedded "
        "Lee document-similarity ratings (gensim) instead. Set EMBEDLAB_DATA to the folder holding stsb/ "
        "to probe on STS-B.",
        path,
    )
    return STSSpec(
        name="lee",
        format="lee",
        score_range=(0.0, 1.0),
        split_fractions=(0.7, 0.15, 0.15),
        split_seed=42,
        max_pairs_per_split=max_pairs,
    )


def probe_general(model: Any, data: STSData, *, settings: EncodeSettings) -> dict[str, float]:
    """Cosine Spearman / Pearson on the probe's validation and test splits, keyed split/name/metric;
    ``model`` encodes as ``settings`` say (the run's ``encode`` config)."""
    from embedlab.eval.sts import evaluate_sts

    out: dict[str, float] = {}
    for split, prefix in (("validation", "val"), ("test", "test")):
        result = evaluate_sts(Encoder(model, settings), data.splits[split], n_worst=0)
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


def guard_settings(extra: Any) -> tuple[dict | None, dict | None, dict | None]:
    """(general_probe, guard, replay) from ``objective``; absent or null sections are off."""
    probe, guard, replay = extra.get("general_probe"), extra.get("guard"), extra.get("replay")
    if guard is not None and guard.get("tolerance") is None:
        guard = None
    if guard is not None:
        if probe is None:
            raise ConfigError(
                "objective.guard needs the general-quality probe it decides on: set objective.general_probe "
                "(e.g. root=${paths.data_dir}/stsb) or turn the guard off with objective.guard.tolerance=null."
            )
        if guard.get("metric", "spearman_cosine") not in GUARD_METRICS:
            raise ConfigError(
                f"objective.guard.metric must be one of {GUARD_METRICS}, got {guard['metric']!r}."
            )
    if replay is not None and not float(replay.get("fraction") or 0.0):
        replay = None
    return probe, guard, replay


def apply_guard(
    guard: dict,
    before: dict[str, float],
    after: dict[str, float],
    probe_name: str,
    encoder: Any,
    previous: dict[str, Any],
    saved_to: Path,
) -> GuardDecision:
    """Decide on the validation probe; on a too-large drop put the pre-update weights back."""
    metric = f"val/{probe_name}/{guard.get('metric', 'spearman_cosine')}"
    decision = GuardDecision(metric, before[metric], after[metric], float(guard["tolerance"]))
    d = decision
    if d.triggered:
        encoder.load_state_dict(previous)
        log.warning(
            f"FORGETTING GUARD TRIGGERED: {metric} fell from {d.before:.4f} to {d.after:.4f} (drop {d.drop:.4f} > "
            f"tolerance {d.tolerance:.4f}). The update is rejected: {saved_to} holds the PREVIOUS (pre-update) "
            "encoder; the after-metrics in results.json describe the rejected update."
        )
    else:
        log.info(
            f"Forgetting guard passed: {metric} {d.before:.4f} -> {d.after:.4f} (drop {d.drop:.4f} <= tolerance "
            f"{d.tolerance:.4f}); the updated encoder is saved."
        )
    return decision


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
    known = {k: ft[k] for k in FinetuneSettings.__dataclass_fields__ if ft.get(k) is not None}
    s = FinetuneSettings(**known)
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


def finetune_on_pairs(
    encoder: Any, spec: STSSpec, settings: FinetuneSettings, specs: RunSpecs, *, label: str
) -> dict[str, Any]:
    """Fine-tune ``encoder`` in place on the train split of ``spec``; returns a record of the step."""
    import lightning as L

    from embedlab.data.pair_datamodule import PairDataModule
    from embedlab.modules.siamese import SiameseModule

    seed, st = specs.run.seed, settings
    L.seed_everything(seed, workers=True)  # both fine-tunes (with / without MLM) draw the same dropout
    datamodule = PairDataModule(spec, batch_size=st.batch_size, eval_batch_size=64, seed=seed)
    datamodule.setup()
    module = SiameseModule(
        encoder, loss=st.loss, lr=st.lr, warmup_ratio=st.warmup_ratio, dataset_name=spec.name
    )
    # No validation loop and no checkpoints: the run's probes score the result afterwards.
    quiet = {"enable_checkpointing": False, "limit_val_batches": 0, "num_sanity_val_steps": 0}
    kw = {"max_epochs": st.epochs, "callbacks": [], "logger": False, "enable_progress_bar": False}
    trainer = specs.run.trainer.build(**kw, **quiet)
    n = len(datamodule.split("train"))
    log.info(
        f"Fine-tuning the {label} encoder on {n} {spec.name} train pairs: {st.epochs} epoch(s), "
        f"batch {st.batch_size}, lr {st.lr:g}, loss {st.loss}."
    )
    start = time.perf_counter()
    encoder.train()
    trainer.fit(module, datamodule=datamodule)
    encoder.to("cpu")
    encoder.eval()
    return {"pairs": n, "steps": int(trainer.global_step), "seconds": time.perf_counter() - start}
