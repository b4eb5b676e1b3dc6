"""One retrieval evaluation: encode (or read from the cache) once, then score exact search,
truncated dimensions, an embedding precision and a FAISS index from the same embeddings.

Metric names (without the ``split/dataset/`` prefix that run.py adds):
``ndcg@10`` exact float32 search at full dimension; ``ndcg@10@128`` truncated to 128
dims; ``ndcg@10@pca128`` projected on 128 principal components fitted on the corpus
documents (``eval/pca.py``; never on the queries); ``ndcg@10@int8`` at another
embedding precision; ``ndcg@10@hnsw`` through the index; ``index_latency_p50_ms@hnsw``,
``index_recall@10@hnsw`` ...; ``answer_hit@5`` (a retrieved paragraph contains a gold
answer) for sets with answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from embedlab.eval.variants import Cell, index_tag, variant_grid

if TYPE_CHECKING:
    from embedlab.data.retrieval import RetrievalSet
    from embedlab.encode.encoder import Encoder
    from embedlab.eval.index import IndexSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalEvalSettings:
    ks: tuple[int, ...] = (1, 3, 5, 10, 100)
    dims: tuple[int, ...] = ()
    pca_dims: tuple[int, ...] = ()  # PCA fitted on the corpus documents (what the index holds)
    precision: str = "float32"
    rescore_multiplier: int = 0
    index: IndexSpec | None = None
    index_k: int = 10
    n_latency_queries: int = 200
    answer_ks: tuple[int, ...] = (1, 5, 10)
    ndcg_gain: str = "graded"  # trec_eval / BEIR / MTEB convention (identical for binary qrels)


@dataclass
class RetrievalEvalResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)  # what the metrics' suffixes mean: meta["cells"]


def rows_of_known_texts(
    texts: Sequence[str], known_texts: Sequence[str], known: np.ndarray
) -> np.ndarray | None:
    """Rows of ``known`` (embeddings of ``known_texts``) for ``texts``, or None if any text is new.

    Queries and documents go through the same encoder call (no role prompts), so a query
    that is also a document has the document's embedding; encoding it again is wasted time.
    """
    row = {t: i for i, t in enumerate(known_texts)}
    idx = [row.get(t, -1) for t in texts]
    if not texts or -1 in idx:
        return None
    return known[np.asarray(idx)]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def evaluate_retrieval(
    encoder: Encoder, data: RetrievalSet, settings: RetrievalEvalSettings
) -> RetrievalEvalResult:
    from embedlab.eval.retrieval import (
        answer_hit_rate_at_k,
        retrieval_metrics_from_embeddings,
    )

    doc_ids, query_ids = data.doc_ids, data.query_ids
    doc_texts = [data.corpus[d] for d in doc_ids]
    docs, stats_d = encoder.encode_cached(doc_texts, what="documents")
    query_texts = [data.queries[q] for q in query_ids]
    queries = rows_of_known_texts(query_texts, doc_texts, docs)
    reused, stats_q = queries is not None, None
    if queries is None:
        queries, stats_q = encoder.encode_cached(query_texts, what="queries")
    else:  # question-to-question sets (squad_qq): every query is also a document
        log.info(
            "All %d queries are documents too: their embeddings are reused, not re-encoded.", len(queries)
        )
    docs, queries = _normalise(docs), _normalise(queries)
    common = dict(ignore_identical_ids=data.ignore_identical_ids, ndcg_gain=settings.ndcg_gain)
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {
        "n_docs": len(doc_ids),
        "n_queries": len(query_ids),
        "data_stats": dict(data.stats),
    }

    exact = retrieval_metrics_from_embeddings(
        query_ids, doc_ids, data.qrels, queries, docs, settings.ks, **common
    )
    metrics.update(exact.metrics)
    details["exact"] = {k: v for k, v in exact.as_dict().items() if k not in exact.metrics}

    # Every precision / index cell is scored on the full embeddings and on each reduced
    # dimension, so a job that sets both gets the combined key (ndcg@10@128@int8): the
    # deployed system pays both losses at once.
    grid = variant_grid(docs.shape[1], dims=settings.dims, pca_dims=settings.pca_dims,
                        precisions=(settings.precision,), rescore=settings.rescore_multiplier,
                        index=_index_name(settings.index))  # fmt: skip
    reduced: dict[str, tuple[np.ndarray, np.ndarray]] = {"": (docs, queries)}  # dim tag -> (docs, queries)
    for cell in grid:
        if cell.dim_tag not in reduced:
            reduced[cell.dim_tag] = _reduce(cell, docs, queries, doc_texts, encoder, metrics)
        metrics.update(_cell_metrics(cell, settings, data, *reduced[cell.dim_tag], common, details))
    metrics["bytes_per_vector@float32"] = float(4 * docs.shape[1])
    if data.answers:
        from embedlab.eval.retrieval import topk_dot

        k_max = max(settings.answer_ks)
        _, top = topk_dot(queries, docs, k_max)
        retrieved = [[data.corpus[doc_ids[j]] for j in row if j >= 0] for row in top]
        gold = [data.answers.get(q, []) for q in query_ids]
        metrics.update(answer_hit_rate_at_k(retrieved, gold, settings.answer_ks).metrics)

    if reused:
        details["encode_queries"] = {"reused_from_documents": len(query_ids)}
    for name, st in (("documents", stats_d), ("queries", stats_q)):
        if st is not None:
            metrics[f"encode_{name}_per_s"] = st.n_encoded / max(st.seconds, 1e-9)
            metrics[f"n_truncated_{name}"] = float(st.n_truncated)
            details[f"encode_{name}"] = st.as_dict()
    return RetrievalEvalResult(metrics, details, grid)


def _cell_metrics(cell: Cell, settings, data, docs, queries, common: dict, details: dict) -> dict[str, float]:
    """Retrieval metrics of one non-exact cell: through the index, at a lower precision, or
    exact at a reduced dimension (``docs`` and ``queries`` already reduced)."""
    from embedlab.eval.retrieval import retrieval_metrics_from_embeddings

    if cell.index is not None:
        return _index_metrics(settings, data, docs, queries, cell.tag, common, details)
    ids = (data.query_ids, data.doc_ids, data.qrels)
    if cell.precision != "float32":
        from embedlab.eval.precision import evaluate_precision

        pe = evaluate_precision(*ids, queries, docs, cell.precision, settings.ks,  # type: ignore[arg-type]
                                rescore_multiplier=cell.rescore, **common)  # fmt: skip
        return {
            **{cell.key(k): v for k, v in pe.metrics.metrics.items()},
            cell.bytes_key: float(pe.bytes_per_vector),
        }
    if not cell.dim_tag:
        return {}  # the exact full-dimension cell: scored before the grid
    sub = retrieval_metrics_from_embeddings(*ids, queries, docs, settings.ks, **common)
    return {**{cell.key(k): v for k, v in sub.metrics.items()}, cell.bytes_key: float(4 * docs.shape[1])}


def _index_name(spec: IndexSpec | None) -> str | None:
    """The index's tag in the grid (``ivf_pq+rescore32`` for re-ranked IVF-PQ), None for no index."""
    if spec is None:
        return None
    return index_tag(spec.kind, {"rescore_multiplier": getattr(spec, "rescore_multiplier", 0)})


def _reduce(cell: Cell, docs, queries, doc_texts, encoder: Encoder, metrics: dict) -> tuple:
    """(docs, queries) of a reduced dimension: truncated and renormalised, or projected on
    principal components fitted on the corpus documents (never on the queries)."""
    if cell.dim_method != "pca":
        return _normalise(docs[:, : cell.dim]), _normalise(queries[:, : cell.dim])
    from embedlab.eval.pca import fitted_pca, pca_key

    pca = fitted_pca(
        lambda: docs, cell.dim, cache=encoder.cache, key=pca_key(encoder.key, doc_texts, cell.dim)
    )
    metrics[f"pca_explained_variance@{pca.tag}"] = float(pca.explained_variance_ratio.sum())
    return pca.transform(docs), pca.transform(queries)


def _index_metrics(settings, data, docs, queries, tag: str, common: dict, details: dict) -> dict[str, float]:
    """Benchmark the configured index on these embeddings and score retrieval through it."""
    from embedlab.eval.index import benchmark_index, build_index, search
    from embedlab.eval.retrieval import retrieval_metrics_from_ranked

    bench = benchmark_index(
        settings.index, docs, queries, k=settings.index_k, n_latency_queries=settings.n_latency_queries
    )
    out = {
        f"index_build_s{tag}": bench.build_s,
        f"index_bytes_per_vector{tag}": bench.bytes_per_vector,
        f"index_total_mb{tag}": bench.total_bytes / 2**20,
        f"index_latency_p50_ms{tag}": bench.latency_ms_p50,
        f"index_latency_p95_ms{tag}": bench.latency_ms_p95,
        f"index_latency_p99_ms{tag}": bench.latency_ms_p99,
        f"index_qps_batched{tag}": bench.qps_batched,
        f"index_recall@{settings.index_k}{tag}": bench.recall_at_k,
    }
    details[f"index{tag}"] = bench.as_dict()
    built = build_index(settings.index, docs)
    depth = max(settings.ks) + (1 if data.ignore_identical_ids else 0)
    ranked = search(built, queries, min(depth, len(data.corpus)))
    via_index = retrieval_metrics_from_ranked(
        data.query_ids, data.doc_ids, data.qrels, ranked, settings.ks, **common
    )
    out.update({f"{k}{tag}": v for k, v in via_index.metrics.items()})
    return out


def parse_ks(ks: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1:
        from embedlab.errors import ConfigError

        raise ConfigError(f"data.ks must be positive integers, got {list(ks)}.")
    return out
