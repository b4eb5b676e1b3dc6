"""``python -m embedlab.visualise <run dir>``: t-SNE of a run's evaluation texts with its saved model."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from embedlab.config import build_specs, load_run_specs
from embedlab.errors import ConfigError
from embedlab.visualise import evaluation_texts, main, score_bins, visualise_run

PNG = b"\x89PNG\r\n\x1a\n"


def test_score_bins_cover_the_range() -> None:
    assert score_bins([0.0, 0.99, 1.0, 2.5, 4.99, 5.0], (0, 5)) == [
        "[0, 1)", "[0, 1)", "[1, 2)", "[2, 3)", "[4, 5]", "[4, 5]",
    ]  # fmt: skip
    assert score_bins([0.05, 0.5, 1.0], (0.0, 1.0), n_bins=2) == ["[0, 0.5)", "[0.5, 1]", "[0.5, 1]"]
    with pytest.raises(ValueError, match="low < high"):
        score_bins([1.0], (1, 1))


def test_sts_run_is_plotted_by_gold_bin_and_logged_offline(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    run = tmp_path / "sts_run"
    train(
        make_cfg("model=tiny_bert", "data=lee", "debug=fast", "logger=none", "callbacks=none", output_dir=run)
    )
    assert (run / "model" / "modules.json").is_file() and not (run / ".hydra").exists()
    texts = evaluation_texts(load_run_specs(run))  # from results.json's resolved config
    assert len(texts.texts) == len(set(texts.texts)) > 5 and "test" in texts.what
    assert texts.labels is not None and set(texts.labels) <= set(
        score_bins([0.1, 0.3, 0.5, 0.7, 0.9], (0, 1))
    )
    png = visualise_run(run, max_points=40, wandb_mode="offline")
    assert png == run / "plots" / "tsne_eval_saved_model.png" and png.read_bytes()[:8] == PNG
    offline_runs = list((run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and any(offline_runs[0].rglob("*.wandb"))


def test_corpus_run_is_coloured_by_condition(make_cfg, tmp_path: Path, data_dir: Path) -> None:
    from embedlab.jobs import train

    run = tmp_path / "mlm_run"
    train(make_cfg("model=tiny_bert", "experiment=mlm_medical", "data.max_texts=60", "debug=fast", "logger=none",
                   "callbacks=none", "objective.general_probe=null", "objective.guard.tolerance=null",
                   output_dir=run))  # fmt: skip
    # a Hydra run folder keeps the unresolved config in .hydra/: the CLI reads that first
    (run / ".hydra").mkdir()
    cfg = OmegaConf.load(run / "results.json").meta.config  # type: ignore[union-attr]
    cfg.paths.output_dir = "${hydra:runtime.output_dir}"
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    texts = evaluation_texts(load_run_specs(run))
    assert texts.labels is not None and "neoplasms" in set(texts.labels) and "held-out" in texts.what
    out = tmp_path / "map.png"
    assert main([str(run), "--wandb", "disabled", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG and not (run / "wandb").exists()


def test_bad_folders_and_unsupported_runs_are_explained(tmp_path: Path, make_cfg) -> None:
    assert main([str(tmp_path), "--wandb", "disabled"]) == 2  # no config in it: exit code 2, error logged
    with pytest.raises(ConfigError, match="is not a run folder"):
        load_run_specs(tmp_path)
    with pytest.raises(ConfigError, match="a t-SNE map needs labelled texts"):
        evaluation_texts(build_specs(make_cfg("model=tiny_bert", "data=retrieval_mock", task="evaluate")))
