"""STS evaluation equals sentence-transformers' EmbeddingSimilarityEvaluator on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedlab.data.sts import STSSpec, load_sts
from embedlab.encode.encoder import Encoder, reference_encode
from embedlab.eval.sts import evaluate_sts, sts_metrics


def _parity(model, split) -> None:
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    ours = evaluate_sts(Encoder(model), split).metrics
    ref = EmbeddingSimilarityEvaluator(
        list(split.sentence1), list(split.sentence2), list(split.normalized_scores()), name="ref"
    )(model)
    assert ours["spearman_cosine"] == pytest.approx(ref["ref_spearman_cosine"], abs=1e-6)
    assert ours["pearson_cosine"] == pytest.approx(ref["ref_pearson_cosine"], abs=1e-6)


def test_parity_on_lee(minilm) -> None:
    data = load_sts(
        STSSpec(name="lee", format="lee", score_range=(0.0, 1.0), split_fractions=(0.7, 0.15, 0.15))
    )
    _parity(minilm, data.splits["test"])


def test_parity_on_stsb_dev_subset(minilm, data_dir: Path) -> None:
    spec = STSSpec(
        name="stsb",
        format="stsb_tsv",
        score_range=(0.0, 5.0),
        root=str(data_dir / "stsb"),
        files={"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"},
        max_pairs_per_split=300,
    )
    _parity(minilm, load_sts(spec, ["validation"]).splits["validation"])


def test_truncated_dimensions_and_worst_pairs(minilm) -> None:
    data = load_sts(STSSpec(name="lee", format="lee", score_range=(0.0, 1.0), max_pairs_per_split=60))
    result = evaluate_sts(Encoder(minilm), data.splits["test"], dims=[128, 384, 999], n_worst=5)
    assert "spearman_cosine@128" in result.metrics
    assert "spearman_cosine@384" not in result.metrics  # full size is the unsuffixed key
    assert len(result.worst_pairs) == 5
    errors = [r["rank_error"] for r in result.worst_pairs]
    assert errors == sorted(errors, reverse=True)


def test_sts_metrics_hand_checked() -> None:
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # cos = 1, 0.707, 0
    m = sts_metrics(a, b, [3.0, 2.0, 1.0])
    assert m["spearman_cosine"] == pytest.approx(1.0)
    assert m["pearson_cosine"] == pytest.approx(np.corrcoef([3, 2, 1], [1, 2**-0.5, 0])[0, 1])


def test_truncation_is_counted(minilm) -> None:
    long = "embedding " * 400  # ~800 tokens, over the 256 limit
    emb, stats = reference_encode(minilm, ["short text", long, long])
    assert stats.n_truncated == 1 and stats.n_encoded == 2 and stats.max_tokens > 256
    assert emb.shape == (3, 384)
    np.testing.assert_array_equal(emb[1], emb[2])


def test_empty_texts_are_rejected(minilm) -> None:
    from embedlab.errors import DataError

    with pytest.raises(DataError, match=r"2 of 3 texts are empty or whitespace \(positions \[1, 2\]\)"):
        reference_encode(minilm, ["fine", "", "  \n"])


def test_sts_job_records_intervals_and_per_pair_predictions(make_cfg, tmp_path) -> None:
    """results.json: bootstrap intervals of Spearman and Pearson per split and cell; per_query.csv.gz:
    every pair's gold score and predicted similarity, which reproduce the reported Spearman."""
    import gzip
    import json

    from scipy.stats import spearmanr

    from embedlab.jobs import evaluate

    cfg = make_cfg(
        "model=tiny_bert",
        "data=lee",
        "logger=none",
        "dimension.size=16",
        "dimension.name=d16",
        task="evaluate",
    )
    metrics, _ = evaluate(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    for key in ("test/lee/spearman_cosine", "test/lee/pearson_cosine", "test/lee/spearman_cosine@16"):
        iv = results["intervals"][key]
        assert iv["low"] <= metrics[key] <= iv["high"] and iv["value"] == pytest.approx(metrics[key])
        assert iv["n"] == metrics["test/lee/n_pairs"] and iv["resamples"] == 1000
    with gzip.open(tmp_path / results["meta"]["files"]["per_query"], "rt") as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    test = [(float(g), float(p)) for cell, split, _, g, p in rows if cell == "" and split == "test"]
    assert len(test) == metrics["test/lee/n_pairs"]
    rho = spearmanr(*zip(*test, strict=True)).statistic
    assert rho == pytest.approx(metrics["test/lee/spearman_cosine"], abs=1e-4)
