"""Whole runs: a short real fine-tune whose saved model reproduces its logged score, and
the published numbers on the shared benchmark data (markers: slow, replication)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_short_finetune_improves_and_saved_model_reproduces_score(make_cfg, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from embedlab.encode.encoder import Encoder, EncodeSettings
    from embedlab.eval.sts import evaluate_sts
    from embedlab.jobs import evaluate, train

    before, _ = evaluate(make_cfg("model=minilm", "data=lee", "logger=none", output_dir=tmp_path / "before"))
    metrics, objects = train(
        make_cfg(
            "model=minilm", "data=lee", "logger=csv", "trainer.max_epochs=1", output_dir=tmp_path / "after"
        )
    )
    results = json.loads((tmp_path / "after" / "results.json").read_text())
    assert results["metrics"]["test/lee/spearman_cosine"] == pytest.approx(
        metrics["test/lee/spearman_cosine"]
    )
    # The Lee set is small and noisy; fine-tuning on its train pairs must help on held-out pairs.
    assert metrics["val/lee/spearman_cosine"] > before["val/lee/spearman_cosine"]
    reloaded = SentenceTransformer(str(tmp_path / "after" / "model"), device="cpu")
    test_split = objects["datamodule"].split("test")
    fast = EncodeSettings(backend="fast", batch_size=32)  # the run's default encoder (encode=fast, bf16)
    again = evaluate_sts(Encoder(reloaded, fast), test_split).metrics["spearman_cosine"]
    assert again == pytest.approx(results["metrics"]["test/lee/spearman_cosine"], abs=1e-6)
    assert (tmp_path / "after" / "csv" / "metrics.csv").exists()


@pytest.mark.replication
@pytest.mark.parametrize(("encoder", "tolerance"), [("reference", 0.0005), ("fast", 0.003)])
def test_minilm_stsb_test_matches_mteb(make_cfg, data_dir: Path, encoder: str, tolerance: float) -> None:
    """MTEB publishes 82.03 cosine Spearman for all-MiniLM-L6-v2 on STS-B test, in float32.
    The reference path reproduces it; the default fast bf16 path may lose at most 0.3 points
    (issue #6's bound; measured 82.04)."""
    from embedlab.jobs import evaluate

    metrics, _ = evaluate(
        make_cfg(
            "model=minilm",
            "data=stsb",
            f"encode={encoder}",
            "logger=none",
            f"paths.data_dir={data_dir}",
            task="evaluate",
        )  # fmt: skip
    )
    assert metrics["test/stsb/spearman_cosine"] == pytest.approx(0.8203, abs=tolerance)


@pytest.mark.replication
def test_sbert_recipe_on_stsb(make_cfg, data_dir: Path, tmp_path: Path) -> None:
    """4 epochs, batch 16, lr 2e-5, 10% warm-up, cosine loss: sentence-transformers' own
    trainer reaches 0.855 test Spearman with this recipe on this machine."""
    from sentence_transformers import SentenceTransformer

    from embedlab.encode.encoder import Encoder, EncodeSettings
    from embedlab.eval.sts import evaluate_sts
    from embedlab.jobs import train

    metrics, objects = train(make_cfg("experiment=stsb_sbert", "logger=none", f"paths.data_dir={data_dir}"))
    assert metrics["test/stsb/spearman_cosine"] >= 0.852
    reloaded = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    fast = Encoder(reloaded, EncodeSettings(backend="fast"))  # the run's default encoder (encode=fast, bf16)
    again = evaluate_sts(fast, objects["datamodule"].split("test")).metrics["spearman_cosine"]
    assert again == pytest.approx(metrics["test/stsb/spearman_cosine"], abs=1e-6)


@pytest.mark.replication
def test_minilm_scifact_ndcg_matches_mteb(make_cfg, data_dir: Path, tmp_path: Path) -> None:
    """MTEB publishes nDCG@10 64.51 for all-MiniLM-L6-v2 on SciFact (test), in float32: checked
    with the reference encode path (the default fast bf16 path gives 0.6442, see benchmarks/NOTES.md)."""
    from embedlab.jobs import evaluate

    cfg = make_cfg("model=minilm", "data=scifact", "index=hnsw", "logger=none", f"paths.data_dir={data_dir}",
                   "encode=reference",
                   f"paths.cache_dir={tmp_path / 'cache'}", task="evaluate")  # fmt: skip
    metrics, _ = evaluate(cfg)
    assert metrics["test/scifact/ndcg@10"] == pytest.approx(0.6451, abs=0.001)
    assert metrics["test/scifact/n_texts_from_cache"] == 0
    again, _ = evaluate(cfg.copy())  # same model and texts: nothing is encoded again
    assert again["test/scifact/n_texts_encoded"] == 0
    assert again["test/scifact/ndcg@10"] == metrics["test/scifact/ndcg@10"]
