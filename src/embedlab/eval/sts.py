"""STS evaluation: cosine Spearman / Pearson as sentence-transformers' ``EmbeddingSimilarityEvaluator``
computes them, for every (dimension x embedding precision) cell of ``eval/variants.py`` from one float32
encode (``spearman_cosine@128@int8``...), with ``bytes_per_vector@...`` for each cell's storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from embedlab.eval.pca import PCAProjection, fitted_pca, pca_key
from embedlab.eval.precision import bytes_per_vector, pair_similarity_inputs
from embedlab.eval.variants import Cell, variant_grid

if TYPE_CHECKING:
    from embedlab.data.sts import PairSplit
    from embedlab.encode.encoder import Encoder
    from embedlab.encode.stats import EncodeStats


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise float32 cosine of two (N, D) arrays with ST's ``pairwise_cos_sim``, the function its
    evaluator scores with, so the order of near-tied pairs (common with binary codes) is ST's."""
    from sentence_transformers.util import pairwise_cos_sim

    a, b = np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)
    return pairwise_cos_sim(a, b).detach().cpu().numpy()


def sts_metrics(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation between gold scores and cosine similarity."""
    return correlations(paired_cosine(emb1, emb2), gold)


def correlations(predicted: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    g = np.asarray(gold, dtype=np.float64)
    return {
        "spearman_cosine": float(spearmanr(g, predicted).statistic),
        "pearson_cosine": float(pearsonr(g, predicted).statistic),
    }


def sts_variant_metrics(
    emb1: np.ndarray,
    emb2: np.ndarray,
    gold: Sequence[float],
    *,
    dims: Sequence[int] = (),
    pca: PCAProjection | None = None,
    precisions: Sequence[str] = (),
    predictions: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Every cell of :func:`sts_grid` from one pair of float32 (N, D) embeddings; each cell's predicted
    similarities go to ``predictions`` (cell tag -> (N,)) when given."""
    metrics: dict[str, float] = {}
    reduced: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # dimension tag -> float32 pair
    for cell in sts_grid(emb1.shape[1], dims, pca, precisions):
        if cell.dim_tag not in reduced:  # truncation is renormalised inside the cosine
            if pca is not None and cell.dim_method == "pca":
                reduced[cell.dim_tag] = pca.transform(emb1), pca.transform(emb2)
            else:
                reduced[cell.dim_tag] = emb1[:, : cell.dim], emb2[:, : cell.dim]
        a, b = reduced[cell.dim_tag]
        size = bytes_per_vector("float32", a.shape[1])
        if cell.precision != "float32":
            a, b, size = pair_similarity_inputs(a, b, cell.precision)  # type: ignore[arg-type]
        cos = paired_cosine(a, b)
        if predictions is not None:
            predictions[cell.tag] = cos
        metrics.update({cell.key(k): v for k, v in correlations(cos, gold).items()})
        metrics[cell.bytes_key] = float(size)
    if pca is not None:
        metrics[f"pca_explained_variance@{pca.tag}"] = float(pca.explained_variance_ratio.sum())
    return metrics


def sts_grid(
    full_dim: int, dims: Sequence[int], pca: PCAProjection | None, precisions: Sequence[str]
) -> list[Cell]:
    """The cells an STS evaluation scores (pairs have no candidates to rescore, no index)."""
    pca_dims = (pca.n_components,) if pca is not None else ()
    return variant_grid(full_dim, dims=dims, pca_dims=pca_dims, precisions=precisions)


@dataclass(frozen=True)
class STSResult:
    metrics: dict[str, float]  # "spearman_cosine", "pearson_cosine", and "...@<variant>" keys
    worst_pairs: list[dict[str, object]]
    encode_stats: EncodeStats | None  # on a cache hit: as recorded when encoded (None if not stored)
    cells: list[Cell] = field(default_factory=list)  # what the metrics' suffixes mean: meta["cells"]
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # cell tag -> predicted similarity


def worst_pairs(split: PairSplit, predicted: np.ndarray, n: int = 20) -> list[dict[str, object]]:
    """The pairs whose predicted rank differs most from their gold rank (rank error in [0, 1])."""
    from scipy.stats import rankdata

    gold = np.asarray(split.scores, dtype=np.float64)
    error = np.abs(rankdata(predicted) - rankdata(gold)) / len(gold)
    return [
        {
            "sentence1": split.sentence1[i],
            "sentence2": split.sentence2[i],
            "gold": float(gold[i]),
            "cosine": float(predicted[i]),
            "rank_error": float(error[i]),
        }
        for i in np.argsort(-error, kind="stable")[:n]
    ]


def split_texts(split: PairSplit) -> list[str]:
    """Both sides of a split in one list (sentence1 then sentence2): one encode, one cache entry."""
    return list(split.sentence1) + list(split.sentence2)


def sts_embeddings(encoder: Encoder, split: PairSplit) -> tuple[np.ndarray, np.ndarray, EncodeStats | None]:
    emb, stats = encoder.encode_cached(split_texts(split), what="sentences")  # through the encoder's cache
    return emb[: len(split)], emb[len(split) :], stats


def evaluate_sts(
    encoder: Encoder,
    split: PairSplit,
    *,
    dims: Sequence[int] = (),
    precisions: Sequence[str] = (),
    pca: PCAProjection | None = None,
    n_worst: int = 20,
) -> STSResult:
    """Encode both sides once (or read them from the encoder's cache) and score every variant."""
    a, b, stats = sts_embeddings(encoder, split)
    predicted: dict[str, np.ndarray] = {}
    metrics = sts_variant_metrics(
        a, b, split.scores, dims=dims, pca=pca, precisions=precisions, predictions=predicted
    )
    cells = sts_grid(a.shape[1], dims, pca, precisions)
    return STSResult(metrics, worst_pairs(split, predicted[""], n_worst), stats, cells, predicted)


def fit_sts_pca(
    encoder: Encoder, train: PairSplit, n_components: int, *, dataset: str = "sts"
) -> PCAProjection:
    """PCA fitted on the distinct sentences of an STS train split (never the scored splits), cached
    under (encoder, train sentences, k): a later job with the same model encodes nothing."""
    texts = split_texts(train)
    first = list({t: i for i, t in reversed(list(enumerate(texts)))}.values())  # one row per distinct text
    if len(first) < n_components:
        raise ValueError(
            f"PCA to {n_components} dimensions is fitted on the train split of data={dataset}, which holds "
            f"{len(first)} distinct sentences; it needs at least {n_components}. Use a smaller PCA dimension "
            f"(dimension.size) or more training pairs (data.max_pairs_per_split)."
        )

    def embeddings() -> np.ndarray:
        a, b, _ = sts_embeddings(encoder, train)
        return np.concatenate([a, b])[sorted(first)]

    key = pca_key(encoder.key, texts, n_components)
    return fitted_pca(embeddings, n_components, cache=encoder.cache, key=key)
