"""Document similarity with sentence embeddings: similarity matrices, nearest neighbours, the most
similar pair, and the four similarity functions sentence-transformers' ``EmbeddingSimilarityEvaluator``
scores (so STS Spearman compares one to one with its numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedlab.eval.arrays import as_matrix, unit_rows

if TYPE_CHECKING:
    from embedlab.encode.encoder import Encoder
    from embedlab.encode.stats import EncodeStats

SimilarityFn = Literal["cosine", "dot", "euclidean", "manhattan"]
SIMILARITY_FUNCTIONS: tuple[SimilarityFn, ...] = ("cosine", "dot", "euclidean", "manhattan")


def paired_similarity(a: Any, b: Any, fn: SimilarityFn) -> np.ndarray:
    """Row-wise similarity of two (N, D) arrays; distances negated (as in sentence-transformers)."""
    x, y = as_matrix(a, "a"), as_matrix(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}.")
    if fn not in SIMILARITY_FUNCTIONS:
        raise ValueError(f"Unknown similarity function '{fn}'. Choose one of {SIMILARITY_FUNCTIONS}.")
    from sentence_transformers import SimilarityFunction

    return SimilarityFunction.to_similarity_pairwise_fn(fn)(x, y).numpy()


def similarity_spearman(
    a: Any, b: Any, gold: Sequence[float], fns: Sequence[SimilarityFn] = SIMILARITY_FUNCTIONS
) -> dict[str, float]:
    """Spearman correlation between gold scores and each similarity function, keyed ``spearman_<fn>``."""
    from scipy.stats import spearmanr

    if len(gold) != len(np.asarray(a)):
        raise ValueError(f"{len(gold)} gold scores for {len(np.asarray(a))} pairs.")
    return {f"spearman_{fn}": float(spearmanr(gold, paired_similarity(a, b, fn)).statistic) for fn in fns}


def similarity_matrix(embeddings: Any) -> np.ndarray:
    """(N, N) cosine similarity: symmetric, 1 on the diagonal (float rounding removed)."""
    x = unit_rows(as_matrix(embeddings))
    sim = x @ x.T  # (N, N)
    sim = (sim + sim.T) / 2  # BLAS may round the two triangles differently
    np.fill_diagonal(sim, 1.0)
    return np.clip(sim, -1.0, 1.0)


def _ranked(sim: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """(R, N-1): the other documents of each row in ``rows``, most similar first; ties by index."""
    scores = sim[rows].astype(np.float64)  # (R, N)
    scores[np.arange(len(rows)), rows] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :-1]


def nearest_neighbours(sim: np.ndarray, query: int, k: int = 5) -> list[tuple[int, float]]:
    """(index, cosine) of the ``k`` documents most similar to ``query`` (itself excluded), best first."""
    n = sim.shape[0]
    if sim.ndim != 2 or sim.shape[1] != n:
        raise ValueError(f"sim must be a square (N, N) matrix, got shape {sim.shape}.")
    if not 0 <= query < n:
        raise ValueError(f"query index {query} is outside the {n} documents (0..{n - 1}).")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    return [(int(j), float(sim[query, j])) for j in _ranked(sim, [query])[0, :k]]


def most_similar_pair(sim: np.ndarray) -> tuple[int, int, float]:
    """(i, j, similarity) of the most similar pair of distinct documents, i < j."""
    if (n := sim.shape[0]) < 2:
        raise ValueError("A most similar pair needs at least 2 documents.")
    upper = np.where(np.triu(np.ones((n, n), dtype=bool), k=1), sim, -np.inf)
    i, j = np.unravel_index(int(np.argmax(upper)), upper.shape)
    return int(i), int(j), float(sim[i, j])


def neighbour_label_agreement(sim: np.ndarray, labels: Sequence[str], k: int = 1) -> float:
    """Share of each document's ``k`` nearest neighbours that carry its label, over all documents."""
    if len(labels) != sim.shape[0]:
        raise ValueError(f"{len(labels)} labels for {sim.shape[0]} documents.")
    tags = np.asarray(labels, dtype=object)
    return float((tags[_ranked(sim, range(len(tags)))[:, :k]] == tags[:, None]).mean())


@dataclass(frozen=True)
class DocSimilarityReport:
    matrix: np.ndarray  # (N, N) cosine
    query: int
    neighbours: list[tuple[int, float]]  # (index, cosine)
    pair: tuple[int, int, float]
    encode_stats: EncodeStats
    texts: Sequence[str] = field(repr=False)
    labels: Sequence[str] | None = field(default=None, repr=False)

    def as_dict(self, snippet: int = 160) -> dict[str, object]:
        def doc(i: int) -> dict[str, object]:
            label = None if self.labels is None else self.labels[i]
            return {"index": i, "label": label, "text": self.texts[i][:snippet]}

        off_diag = self.matrix[~np.eye(len(self.matrix), dtype=bool)]
        agreement = {}  # how often the nearest documents share a label (a domain check)
        for k in (1, 5) if self.labels is not None else ():
            agreement[f"top{k}_same_label"] = neighbour_label_agreement(self.matrix, self.labels, k)
        return {
            "n_docs": len(self.texts),
            "query": doc(self.query),
            "neighbours": [{**doc(i), "cosine": score} for i, score in self.neighbours],
            "most_similar_pair": {"a": doc(self.pair[0]), "b": doc(self.pair[1]), "cosine": self.pair[2]},
            "off_diagonal_cosine": {k: float(getattr(off_diag, k)()) for k in ("mean", "std", "min", "max")},
            **agreement,
            "encode": self.encode_stats.as_dict(),
        }


def doc_similarity_report(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    labels: Sequence[str] | None = None,
    query: int = 0,
    k: int = 5,
) -> DocSimilarityReport:
    """Encode ``texts`` and report the neighbours of ``texts[query]`` and the most similar pair."""
    if len(texts) < 2:
        raise ValueError(f"Document similarity needs at least 2 documents, got {len(texts)}.")
    emb, stats = encoder.encode(list(texts), what="documents")  # (N, D)
    sim = similarity_matrix(emb)
    found = (nearest_neighbours(sim, query, k), most_similar_pair(sim))
    return DocSimilarityReport(
        sim, query, *found, stats, list(texts), None if labels is None else list(labels)
    )
