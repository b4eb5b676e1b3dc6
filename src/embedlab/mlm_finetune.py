"""Siamese fine-tuning after a continual MLM update: the "adapt, then fine-tune" recipe.

A domain MLM update is rarely the last step: the usual recipe (as in TSDAE / GPL style
domain adaptation) fine-tunes the adapted encoder on labelled pairs afterwards. This
module runs that second step inside ``run_mlm`` when ``objective.finetune`` is set: the
encoder the guard kept is fine-tuned with :class:`SiameseModule` on the train split of
the general probe's pair set (STS-B; the embedded Lee ratings offline), and the run
measures the same probes again (domain k-NN, general STS-B).

With ``objective.finetune.compare_without_mlm=true`` the *pre-update* encoder is
fine-tuned the same way (same pairs, seed, steps), so one results.json says what the MLM
step adds on top of fine-tuning alone, the question a chooser actually has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from embedlab.errors import ConfigError

if TYPE_CHECKING:
    from embedlab.data.sts import STSSpec

log = logging.getLogger(__name__)

PAIR_LOSSES: tuple[str, ...] = ("cosine", "cosent")


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


def finetune_settings(cfg: DictConfig) -> FinetuneSettings | None:
    """The fine-tuning step's settings, or None when ``objective.finetune`` is null / off."""
    ft = cfg.objective.get("finetune")
    if ft is None or not ft.get("enabled", True):
        return None
    if cfg.objective.get("general_probe") is None:
        raise ConfigError(
            "objective.finetune trains on the general probe's pair set (STS-B train pairs): set "
            "objective.general_probe (e.g. root=${paths.data_dir}/stsb) or turn fine-tuning off with "
            "objective.finetune=null."
        )
    defaults = FinetuneSettings()
    settings = FinetuneSettings(
        loss=str(ft.get("loss", defaults.loss)),
        epochs=int(ft.get("epochs", defaults.epochs)),
        batch_size=int(ft.get("batch_size", defaults.batch_size)),
        lr=float(ft.get("lr", defaults.lr)),
        warmup_ratio=float(ft.get("warmup_ratio", defaults.warmup_ratio)),
        max_pairs=None if ft.get("max_pairs") is None else int(ft.max_pairs),
        compare_without_mlm=bool(ft.get("compare_without_mlm", defaults.compare_without_mlm)),
    )
    if settings.loss not in PAIR_LOSSES:
        raise ConfigError(
            f"objective.finetune.loss={settings.loss!r}: fine-tuning on scored pairs takes one of {PAIR_LOSSES}."
        )
    if settings.epochs < 1 or settings.batch_size < 2:
        raise ConfigError(
            f"objective.finetune needs epochs >= 1 and batch_size >= 2 (got {settings.epochs}, "
            f"{settings.batch_size})."
        )
    devices = cfg.trainer.get("devices", 1)
    if cfg.trainer.get("num_nodes", 1) != 1 or (isinstance(devices, int) and devices > 1):
        raise ConfigError(
            "objective.finetune runs in one process after the MLM update; with trainer=ddp run the update "
            "alone (objective.finetune=null), then fine-tune the saved model: train.py experiment=stsb_sbert "
            "model=saved model.name_or_path=<mlm run>/model trainer=ddp."
        )
    return settings


def finetune_on_pairs(
    encoder: Any, spec: STSSpec, settings: FinetuneSettings, cfg: DictConfig, *, seed: int, label: str
) -> dict[str, Any]:
    """Fine-tune ``encoder`` in place on the train split of ``spec``; returns a record of the step."""
    import lightning as L
    from hydra.utils import instantiate

    from embedlab.data.pair_datamodule import PairDataModule
    from embedlab.modules.siamese import SiameseModule

    L.seed_everything(seed, workers=True)  # both fine-tunes (with / without MLM) draw the same dropout
    datamodule = PairDataModule(spec, batch_size=settings.batch_size, eval_batch_size=64, seed=seed)
    datamodule.setup()
    module = SiameseModule(
        encoder,
        loss=settings.loss,
        lr=settings.lr,
        warmup_ratio=settings.warmup_ratio,
        dataset_name=spec.name,
    )
    # No validation loop and no checkpoints: the run's probes score the result afterwards.
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        max_epochs=settings.epochs,
        callbacks=[],
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
    )
    log.info(
        "Fine-tuning the %s encoder on %d %s train pairs: %d epoch(s), batch %d, lr %g, loss %s.",
        label, len(datamodule.split("train")), spec.name, settings.epochs,
        settings.batch_size, settings.lr, settings.loss,
    )  # fmt: skip
    start = time.perf_counter()
    encoder.train()
    trainer.fit(module, datamodule=datamodule)
    encoder.to("cpu")
    encoder.eval()
    return {
        "pairs": len(datamodule.split("train")),
        "steps": int(trainer.global_step),
        "seconds": time.perf_counter() - start,
    }
