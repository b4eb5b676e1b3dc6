"""Continual MLM update: the general-quality probe, the forgetting guard and replay."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from embedlab.data.text_corpus import mix_replay
from embedlab.errors import ConfigError, DataError
from embedlab.tasks.mlm import GuardDecision

FAST = ("model=tiny_bert", "objective=mlm", "data=mlm_lee", "data.max_texts=40", "debug=fast",
        "logger=none", "callbacks=none", "objective.general_probe.max_pairs=40")  # fmt: skip
PROBE_TEXTS = ["A man is playing a guitar.", "The central bank raised interest rates again."]


def test_guard_decision_compares_the_drop_with_the_tolerance() -> None:
    assert GuardDecision("val/stsb/spearman_cosine", 0.80, 0.78, 0.01).triggered  # dropped 0.02
    assert not GuardDecision("m", 0.80, 0.795, 0.01).triggered  # dropped 0.005
    assert not GuardDecision("m", 0.80, 0.85, 0.0).triggered  # improved
    assert GuardDecision("m", 0.80, 0.85, -1.0).triggered  # a tolerance of -1 forces it
    assert GuardDecision("m", 0.80, float("nan"), 10.0).triggered  # collapsed embeddings
    record = GuardDecision("m", 0.8, 0.7, 0.05).as_dict()
    assert record["guard_triggered"] is True and record["drop"] == pytest.approx(0.1)


def test_replay_mixes_the_stated_fraction() -> None:
    domain = [f"domain text {i}" for i in range(90)]
    general = [f"general sentence {i}" for i in range(200)]
    mix = mix_replay(domain, general, 0.25, seed=0)
    assert (mix.n_domain, mix.n_replay, len(mix.texts)) == (90, 30, 120)
    assert mix.fraction == pytest.approx(0.25)
    assert list(mix.texts[:90]) == domain and set(mix.texts[90:]) <= set(general)
    assert len(set(mix.texts[90:])) == 30  # drawn without replacement
    assert mix.texts == mix_replay(domain, general, 0.25, seed=0).texts  # seeded
    assert mix_replay(domain, general, 0.0, seed=0).n_replay == 0
    with pytest.raises(DataError, match=r"replay.fraction must be in \[0, 1\)"):
        mix_replay(domain, general, 1.0, seed=0)
    with pytest.raises(DataError, match="needs 810 general texts.*only 200"):
        mix_replay(domain, general, 0.9, seed=0)


def _run(make_cfg, out: Path, *overrides: str):
    from embedlab.jobs import train

    metrics, objects = train(make_cfg(*FAST, *overrides, output_dir=out))
    return metrics, objects, json.loads((out / "results.json").read_text())


def _embed(path_or_model, texts=PROBE_TEXTS) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = (
        SentenceTransformer(str(path_or_model), device="cpu")
        if isinstance(path_or_model, Path)
        else path_or_model
    )
    return model.encode(texts, convert_to_numpy=True)


def _initial_encoder(cfg_fn) -> np.ndarray:
    from embedlab.config import build_specs
    from embedlab.models.encoder import build_encoder

    encoder, _ = build_encoder(build_specs(cfg_fn(*FAST)).model)
    return _embed(encoder)


def test_forced_guard_keeps_the_previous_encoder(
    make_cfg, tmp_path: Path, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="embedlab.tasks.mlm"):
        metrics, objects, results = _run(make_cfg, tmp_path / "forced", "objective.guard.tolerance=-1")
    assert objects["trainer"].global_step == 1  # fast_dev_run: one training step happened
    key = "val/stsb/spearman_cosine"
    assert math.isfinite(metrics[f"{key}_before"]) and math.isfinite(metrics[f"{key}_after"])
    assert math.isfinite(metrics["test/stsb/spearman_cosine_after"])
    assert metrics["val/stsb/guard_triggered"] == 1.0
    guard = results["meta"]["guard"]
    assert guard["guard_triggered"] is True and guard["saved"] == "previous encoder"
    assert guard["before"] == pytest.approx(metrics[f"{key}_before"])
    assert guard["after"] == pytest.approx(metrics[f"{key}_after"])
    assert "FORGETTING GUARD TRIGGERED" in caplog.text
    # the saved folder holds the pre-update weights: it embeds exactly as the initial encoder
    np.testing.assert_allclose(_embed(tmp_path / "forced" / "model"), _initial_encoder(make_cfg), atol=1e-6)


def test_lenient_guard_keeps_the_update(
    make_cfg, tmp_path: Path, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="embedlab.tasks.mlm"):
        metrics, _, results = _run(make_cfg, tmp_path / "lenient", "objective.guard.tolerance=100",
                                   "objective.lr=1e-2")  # fmt: skip
    assert metrics["val/stsb/guard_triggered"] == 0.0
    assert results["meta"]["guard"]["guard_triggered"] is False
    assert "Forgetting guard passed" in caplog.text and "TRIGGERED" not in caplog.text
    assert not np.allclose(_embed(tmp_path / "lenient" / "model"), _initial_encoder(make_cfg), atol=1e-6)


def test_replay_through_the_run_and_no_guard(make_cfg, tmp_path: Path, data_dir: Path) -> None:
    metrics, objects, results = _run(make_cfg, tmp_path / "replay", "objective.replay.fraction=0.2",
                                     "objective.guard.tolerance=null")  # fmt: skip
    n_domain = len(objects["corpus"].train_idx)
    replay = results["meta"]["replay"]
    assert replay["n_domain"] == n_domain and replay["n_replay"] == round(0.2 * n_domain / 0.8)
    assert metrics["val/lee_background/n_replay_texts"] == replay["n_replay"]
    assert len(objects["datamodule"].train_texts) == n_domain + replay["n_replay"]
    assert "sts-train.csv" in replay["source"]
    assert results["meta"]["guard"] is None and "val/stsb/guard_triggered" not in metrics
    assert "val/stsb/spearman_cosine_after" in metrics  # the probe still runs without the guard


def test_probe_falls_back_to_lee_without_stsb(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-data" / "stsb"
    with caplog.at_level(logging.WARNING, logger="embedlab.tasks.mlm"):
        metrics, _, results = _run(make_cfg, tmp_path / "offline", f"objective.general_probe.root={missing}")
    assert "STS-B not found" in caplog.text and "Lee" in caplog.text
    assert results["meta"]["general_probe"]["name"] == "lee"
    assert "val/lee/guard_triggered" in metrics and "val/lee/spearman_cosine_before" in metrics


def test_replay_from_missing_stsb_says_how_to_fix(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    cfg = make_cfg(*FAST, "objective.replay.fraction=0.2", f"objective.general_probe.root={tmp_path}/none")
    with pytest.raises(DataError, match="replay.source=wiki"):
        train(cfg)


def test_guard_without_probe_is_rejected(make_cfg) -> None:
    from embedlab.jobs import train

    with pytest.raises(ConfigError, match="objective.guard needs the general-quality probe"):
        train(make_cfg(*FAST[:-1], "objective.general_probe=null"))
