"""STS at lower embedding precision and through the embedding cache.

Our scores equal sentence-transformers' ``EmbeddingSimilarityEvaluator(precision=...,
truncate_dim=...)`` on the same embeddings, and a second STS run with another
dimension or precision encodes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedlab.data.sts import STSSpec, load_sts
from embedlab.encode.encoder import Encoder
from embedlab.eval.sts import evaluate_sts, sts_variant_metrics

QUANTIZED = ("int8", "uint8", "binary", "ubinary")


@pytest.fixture(scope="module")
def stsb_dev(data_dir: Path):
    spec = STSSpec(
        name="stsb",
        format="stsb_tsv",
        score_range=(0.0, 5.0),
        root=str(data_dir / "stsb"),
        files={"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"},
        max_pairs_per_split=200,
    )
    return load_sts(spec, ["validation"]).splits["validation"]


def _reference(model, split, precision: str, dim: int | None) -> dict[str, float]:
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    ev = EmbeddingSimilarityEvaluator(
        list(split.sentence1), list(split.sentence2), list(split.normalized_scores()),
        main_similarity="cosine", name="ref", precision=precision, truncate_dim=dim, write_csv=False,
    )  # fmt: skip
    return ev(model)


@pytest.mark.parametrize("precision", QUANTIZED)
def test_same_embeddings_equal_sentence_transformers(minilm, stsb_dev, precision: str) -> None:
    """Embeddings made by the very encode() calls ST's evaluator makes (int8/uint8: both
    sides in one call, calibrated together; binary: one call per side), scored by us."""
    s1, s2 = list(stsb_dev.sentence1), list(stsb_dev.sentence2)
    if precision in ("int8", "uint8"):
        both = minilm.encode(s1 + s2, batch_size=16, convert_to_numpy=True)
        a, b = both[: len(s1)], both[len(s1) :]
    else:
        a = minilm.encode(s1, batch_size=16, convert_to_numpy=True)
        b = minilm.encode(s2, batch_size=16, convert_to_numpy=True)
    ours = sts_variant_metrics(a, b, stsb_dev.scores, dims=[128], precisions=[precision])
    for dim in (None, 128):
        ref = _reference(minilm, stsb_dev, precision, dim)
        tag = (f"@{dim}" if dim else "") + f"@{precision}"
        assert ours[f"spearman_cosine{tag}"] == pytest.approx(ref["ref_spearman_cosine"], abs=1e-6)
        assert ours[f"pearson_cosine{tag}"] == pytest.approx(ref["ref_pearson_cosine"], abs=1e-6)
    # storage: 384 float32 = 1536 B; int8 384 B; binary 48 B; truncated 128: 128 B / 16 B
    expected = {"int8": 384, "uint8": 384, "binary": 48, "ubinary": 48}[precision]
    assert ours[f"bytes_per_vector@{precision}"] == expected
    assert ours[f"bytes_per_vector@128@{precision}"] == expected // 3
    assert ours["bytes_per_vector@float32"] == 1536


def test_evaluate_sts_matches_sentence_transformers(minilm, stsb_dev) -> None:
    """End to end through our own encode (one pass over unique texts, batch 64): Spearman
    equals ST's; Pearson moves by float32 rounding of the embeddings only (< 1e-5)."""
    ours = evaluate_sts(Encoder(minilm), stsb_dev, precisions=QUANTIZED).metrics
    for precision in QUANTIZED:
        ref = _reference(minilm, stsb_dev, precision, None)
        assert ours[f"spearman_cosine@{precision}"] == pytest.approx(ref["ref_spearman_cosine"], abs=1e-6)
        assert ours[f"pearson_cosine@{precision}"] == pytest.approx(ref["ref_pearson_cosine"], abs=1e-5)
    # binary and ubinary hold the same bits; int8 and uint8 differ (the offset changes angles)
    assert ours["spearman_cosine@binary"] == ours["spearman_cosine@ubinary"]
    assert ours["spearman_cosine@int8"] != ours["spearman_cosine@uint8"]
    assert ours["spearman_cosine@binary"] < ours["spearman_cosine"]


def test_pair_inputs_reject_bad_shapes() -> None:
    from embedlab.eval.precision import pair_similarity_inputs

    with pytest.raises(ValueError, match="one shape"):
        pair_similarity_inputs(np.ones((3, 4)), np.ones((2, 4)), "int8")
    with pytest.raises(ValueError, match="Unknown precision"):
        pair_similarity_inputs(np.ones((3, 4)), np.ones((3, 4)), "fp8")  # type: ignore[arg-type]


def _run(make_cfg, out: Path, *overrides: str) -> dict[str, float]:
    from embedlab.jobs import evaluate

    cfg = make_cfg("model=minilm", "data=lee", "data.max_pairs_per_split=40", "logger=none", *overrides,
                   task="evaluate", output_dir=out)  # fmt: skip
    metrics, _ = evaluate(cfg)
    assert json.loads((out / "results.json").read_text())["metrics"].keys() == metrics.keys()
    return metrics


def test_sts_runs_share_the_embedding_cache(make_cfg, tmp_path: Path) -> None:
    """Another dimension and precision of the same model re-encode nothing; the headline
    key the report picks for each cell exists."""
    from embedlab.report.cells import quality_of
    from embedlab.report.scan import read_job

    own_cache = f"paths.cache_dir={tmp_path / 'cache'}"
    first = _run(make_cfg, tmp_path / "a", own_cache)
    n_texts = first["test/lee/n_texts_encoded"]
    assert n_texts > 0 and first["test/lee/n_texts_from_cache"] == 0
    assert not any(k.endswith("n_texts_encoded") and not k.startswith("test/") for k in first)
    second = _run(make_cfg, tmp_path / "b", own_cache, "dimension=d128", "quantization=binary")
    assert second["test/lee/n_texts_encoded"] == 0
    assert second["test/lee/n_texts_from_cache"] == n_texts
    assert second["test/lee/spearman_cosine"] == first["test/lee/spearman_cosine"]
    # throughput of a cached cell: the one recorded with the entry (or absent for old entries)
    speed = first["test/lee/encode_texts_per_s"]
    assert second.get("test/lee/encode_texts_per_s", speed) == speed
    for split in ("val", "test"):
        for key in ("spearman_cosine@128", "spearman_cosine@binary", "spearman_cosine@128@binary"):
            assert -1.0 <= second[f"{split}/lee/{key}"] <= 1.0
    record = read_job(tmp_path / "b")
    assert quality_of(record) == (
        "test/lee/spearman_cosine@128@binary",
        second["test/lee/spearman_cosine@128@binary"],
    )


def test_quantized_sts_needs_a_known_precision(make_cfg) -> None:
    from embedlab.config import check_config
    from embedlab.errors import ConfigError

    check_config(make_cfg("data=lee", "quantization=int8", task="evaluate"))  # allowed now
    with pytest.raises(ConfigError, match="embedding precision fp8"):
        check_config(make_cfg("data=lee", "quantization.embeddings=fp8", task="evaluate"))
