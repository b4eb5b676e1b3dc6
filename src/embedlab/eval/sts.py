"""STS evaluation: cosine Spearman / Pearson, as sentence-transformers'
``EmbeddingSimilarityEvaluator`` computes them, at full and reduced dimensions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from embedlab.eval.encode import EncodeStats, encode

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embedlab.data.sts import PairSplit


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.einsum("nd,nd->n", a, b)


def sts_metrics(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation between gold scores and cosine similarity."""
    from scipy.stats import pearsonr, spearmanr

    cos = paired_cosine(emb1, emb2)
    gold_arr = np.asarray(gold, dtype=np.float64)
    return {
        "spearman_cosine": float(spearmanr(gold_arr, cos).statistic),
        "pearson_cosine": float(pearsonr(gold_arr, cos).statistic),
    }


@dataclass(frozen=True)
class STSResult:
    metrics: dict[str, float]  # "spearman_cosine", "pearson_cosine", and "...@<dim>" variants
    worst_pairs: list[dict[str, object]]
    encode_stats: EncodeStats


def worst_pairs(split: PairSplit, predicted: np.ndarray, n: int = 20) -> list[dict[str, object]]:
    """The pairs whose predicted rank differs most from their gold rank (rank error in [0, 1])."""
    from scipy.stats import rankdata

    gold = np.asarray(split.scores, dtype=np.float64)
    error = np.abs(rankdata(predicted) - rankdata(gold)) / len(gold)
    rows = []
    for i in np.argsort(-error, kind="stable")[:n]:
        rows.append(
            {
                "sentence1": split.sentence1[i],
                "sentence2": split.sentence2[i],
                "gold": float(gold[i]),
                "cosine": float(predicted[i]),
                "rank_error": float(error[i]),
            }
        )
    return rows


def evaluate_sts(
    model: SentenceTransformer,
    split: PairSplit,
    *,
    dims: Sequence[int] = (),
    batch_size: int = 64,
    n_worst: int = 20,
) -> STSResult:
    """Encode both sides once and score the full embedding and each truncated ``dim``."""
    n = len(split)
    emb, stats = encode(
        model, list(split.sentence1) + list(split.sentence2), batch_size=batch_size, what="sentences"
    )
    a, b = emb[:n], emb[n:]
    metrics = sts_metrics(a, b, split.scores)
    full = a.shape[1]
    for d in dims:
        if d < full:  # Matryoshka-style truncation; renormalised inside the cosine
            for key, value in sts_metrics(a[:, :d], b[:, :d], split.scores).items():
                metrics[f"{key}@{d}"] = value
    return STSResult(metrics, worst_pairs(split, paired_cosine(a, b), n_worst), stats)
