"""Adapt, then fine-tune: siamese fine-tuning after a continual MLM update (objective.finetune)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from embedlab.errors import ConfigError

FAST = ("model=tiny_bert", "objective=mlm", "data=mlm_lee", "data.max_texts=40", "debug=fast",
        "logger=none", "callbacks=none", "objective.general_probe.max_pairs=40",
        "objective.finetune.enabled=true", "objective.finetune.max_pairs=32",
        "objective.finetune.batch_size=8")  # fmt: skip
PROBE_TEXTS = ["A man is playing a guitar.", "The central bank raised interest rates again."]


def _run(make_cfg, out: Path, *overrides: str):
    from embedlab.jobs import train

    metrics, objects = train(make_cfg(*FAST, *overrides, output_dir=out))
    return metrics, objects, json.loads((out / "results.json").read_text())


def _embed(model) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    if isinstance(model, Path):
        model = SentenceTransformer(str(model), device="cpu")
    return model.encode(PROBE_TEXTS, convert_to_numpy=True)


def test_finetune_after_mlm_scores_both_encoders_and_saves_the_finetuned_one(
    make_cfg, tmp_path: Path, data_dir: Path
) -> None:
    metrics, objects, results = _run(
        make_cfg,
        tmp_path / "ft",
        "objective.guard.tolerance=100",
        "objective.lr=1e-2",
        "data=medical",
        "data.max_texts=60",
        "data.val_fraction=0.5",
    )  # labelled: k-NN probe and t-SNE plots
    for stage in ("after", "after_finetune", "finetuned_without_mlm"):
        for split in ("val", "test"):
            assert math.isfinite(metrics[f"{split}/stsb/spearman_cosine_{stage}"]), (split, stage)
        assert f"val/medical/knn_accuracy_{stage}" in metrics
    # fine-tuning moved the encoder, and the two fine-tunes started from different weights
    # (Pearson: one small step may leave the ranks, and so Spearman, unchanged)
    assert metrics["val/stsb/pearson_cosine_after_finetune"] != metrics["val/stsb/pearson_cosine_after"]
    assert (
        metrics["val/stsb/pearson_cosine_after_finetune"]
        != metrics["val/stsb/pearson_cosine_finetuned_without_mlm"]
    )
    ft = results["meta"]["finetune"]
    assert ft["pairs_from"] == "stsb" and ft["with_mlm"]["pairs"] == 32
    assert ft["with_mlm"]["steps"] == 1 and ft["without_mlm"]["steps"] == 1  # fast_dev_run
    assert results["meta"]["guard"]["saved"] == "updated encoder, then fine-tuned"
    assert set(results["meta"]["plots"]) == {"before", "after", "after_finetune", "finetuned_without_mlm"}
    # the saved model is the fine-tuned encoder the run scored last
    np.testing.assert_allclose(_embed(tmp_path / "ft" / "model"), _embed(objects["encoder"]), atol=1e-5)


def test_rejected_update_is_finetuned_once(make_cfg, tmp_path: Path, data_dir: Path) -> None:
    metrics, _, results = _run(make_cfg, tmp_path / "rejected", "objective.guard.tolerance=-1")
    assert "val/stsb/spearman_cosine_after_finetune" in metrics
    assert "val/stsb/spearman_cosine_finetuned_without_mlm" not in metrics
    ft = results["meta"]["finetune"]
    assert "guard rejected" in ft["without_mlm"] and ft["with_mlm"]["encoder"] == "kept (pre-update)"
    assert results["meta"]["guard"]["saved"] == "previous encoder, then fine-tuned"


def test_offline_finetune_uses_the_embedded_lee_pairs(make_cfg, tmp_path: Path) -> None:
    """Without STS-B the probe and the fine-tuning both fall back to gensim's Lee ratings."""
    missing = tmp_path / "no-data" / "stsb"
    metrics, _, results = _run(make_cfg, tmp_path / "offline", f"objective.general_probe.root={missing}",
                               "objective.guard.tolerance=null")  # fmt: skip
    ft = results["meta"]["finetune"]
    assert ft["pairs_from"] == "lee" and 0 < ft["with_mlm"]["pairs"] <= 32
    assert math.isfinite(metrics["test/lee/spearman_cosine_after_finetune"])
    assert "test/lee/spearman_cosine_finetuned_without_mlm" in metrics


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("objective.finetune.loss=mnrl",), "takes one of"),
        (("objective.finetune.batch_size=1",), "batch_size >= 2"),
        (("objective.general_probe=null", "objective.guard.tolerance=null"), "general probe's pair set"),
        (("trainer.devices=2",), "runs in one process"),
    ],
)
def test_bad_finetune_settings_fail_before_training(make_cfg, overrides, message) -> None:
    from embedlab.config import build_specs
    from embedlab.tasks.mlm import finetune_settings

    with pytest.raises(ConfigError, match=message):
        finetune_settings(build_specs(make_cfg(*FAST, *overrides), check=False))


def test_finetune_is_off_by_default(make_cfg) -> None:
    from embedlab.config import build_specs
    from embedlab.tasks.mlm import finetune_settings

    assert finetune_settings(build_specs(make_cfg(*FAST[:8]), check=False)) is None
