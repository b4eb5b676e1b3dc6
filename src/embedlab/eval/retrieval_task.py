"""A retrieval evaluation: encode (or read from the cache) once, then score exact search, reduced
dimensions, an embedding precision, a FAISS index and a hybrid with BM25 from the same embeddings.
Metric keys carry the cell tags of ``eval/variants.py`` (``ndcg@10@128``, ``index_latency_p50_ms@hnsw``,
``ndcg@10@flat@rrf``, the lexical part ``@bm25``), plus ``answer_hit@5`` for sets with gold answers.
Each cell keeps its per-query values and each deployed cell its top-k ranking."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from embedlab.encode.cache import entry_key
from embedlab.errors import ConfigError
from embedlab.eval.arrays import topk_dot, unit_rows
from embedlab.eval.fusion import FusionSpec, Ranking, choose_weight, fuse
from embedlab.eval.index import IndexSpec, benchmark_index, search
from embedlab.eval.index_store import index_key, ready_index
from embedlab.eval.lexical import BM25Settings, bm25_rank
from embedlab.eval.pca import fitted_pca, pca_key
from embedlab.eval.precision import evaluate_precision
from embedlab.eval.retrieval import answer_hit_rate_at_k, retrieval_metrics
from embedlab.eval.variants import Cell, deployed, variant_grid

if TYPE_CHECKING:
    from embedlab.data.retrieval import RetrievalSet
    from embedlab.encode.encoder import Encoder

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
    index_save: bool = True  # read the index saved in the encoder's cache, else build and save it there
    index_device: str = "cpu"  # where the index searches: cpu | cuda | auto (eval/index_store.py)
    answer_ks: tuple[int, ...] = (1, 5, 10)
    ndcg_gain: str = "graded"  # trec_eval / BEIR / MTEB convention (identical for binary qrels)
    fusion: FusionSpec | None = None  # hybrid with BM25 (``bm25``'s settings) of the exact ranking
    bm25: BM25Settings = BM25Settings()

    @property
    def depth(self) -> int:
        """Ranking depth kept per query: the largest cut-off, and the fused rankings' depth."""
        return max(max(self.ks), self.fusion.depth if self.fusion else 0)


@dataclass
class RetrievalEvalResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)  # what the metrics' suffixes mean: meta["cells"]
    per_query: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # tag -> query -> metric
    rankings: dict[str, Ranking] = field(default_factory=dict)  # deployed cell tag -> top-k (scores, ids)


def rows_of_known_texts(
    texts: Sequence[str], known_texts: Sequence[str], known: np.ndarray
) -> np.ndarray | None:
    """Rows of ``known`` (embeddings of ``known_texts``) for ``texts``, or None if any text is new: queries
    and documents share one encoder call (no role prompts), so re-encoding a document as a query is waste."""
    row = {t: i for i, t in enumerate(known_texts)}
    idx = [row.get(t, -1) for t in texts]
    if not texts or -1 in idx:
        return None
    return known[np.asarray(idx)]


def evaluate_retrieval(
    encoder: Encoder,
    data: RetrievalSet,
    settings: RetrievalEvalSettings,
    *,
    train: RetrievalSet | None = None,
) -> RetrievalEvalResult:
    """Every cell of the grid from one encode; with ``settings.fusion`` also BM25 and the hybrid
    (a convex weight left open is chosen on ``train``'s queries, never on ``data``'s)."""
    doc_ids, query_ids = data.doc_ids, data.query_ids
    doc_texts = [data.corpus[d] for d in doc_ids]
    docs, queries, stats = _embeddings(encoder, data)
    common = dict(
        ignore_identical_ids=data.ignore_identical_ids, ndcg_gain=settings.ndcg_gain, per_query=True
    )
    details: dict[str, Any] = {
        "n_docs": len(doc_ids),
        "n_queries": len(query_ids),
        "data_stats": dict(data.stats),
    }
    exact = retrieval_metrics(
        query_ids, doc_ids, data.qrels, ks=settings.ks, query_emb=queries, doc_emb=docs, **common
    )
    metrics: dict[str, float] = dict(exact.metrics)
    details["exact"] = {k: v for k, v in exact.as_dict().items() if k not in exact.metrics}
    result = RetrievalEvalResult(metrics, details, per_query={"": exact.per_query or {}})

    # Precision and index cells are scored at every dimension, so a job that sets both gets the
    # combined key (ndcg@10@128@int8): the deployed system pays both losses at once.
    grid = variant_grid(
        docs.shape[1],
        dims=settings.dims,
        pca_dims=settings.pca_dims,
        precisions=(settings.precision,),
        rescore=settings.rescore_multiplier,
        index=None if settings.index is None else settings.index.tag,
    )
    reduced = {"": (docs, queries)}  # dim tag -> (docs, queries)
    store = encoder.cache if settings.index and settings.index_save and encoder.cache.root else None
    docs_key = entry_key(encoder.key, doc_texts) if store else ""  # the indexes' key: the embeddings'
    for cell in grid:
        if cell.dim_tag not in reduced:
            reduced[cell.dim_tag] = _reduce(cell, docs, queries, doc_texts, encoder, metrics)
        _score_cell(cell, settings, data, *reduced[cell.dim_tag], common, result, (store, docs_key))
    for cell in deployed(grid):  # the ranking a run file records (exact cells: ranked here)
        if cell.tag not in result.rankings:
            result.rankings[cell.tag] = topk_dot(*reduced[cell.dim_tag][::-1], _depth(settings, data))
    if settings.fusion is not None:
        train_dense = _train_dense(encoder, train, settings)
        grid.append(_score_fusion(settings, data, result, deployed(grid)[0], train_dense=train_dense))
    result.cells = grid
    metrics["bytes_per_vector@float32"] = float(4 * docs.shape[1])
    if data.answers:
        _score_answers(data, settings, result, topk_dot(queries, docs, max(settings.answer_ks))[1], "")
    for name, st in stats.items():
        if st is None:
            details[f"encode_{name}"] = {"reused_from_documents": len(query_ids)}
        else:
            metrics[f"encode_{name}_per_s"] = st.n_encoded / max(st.seconds, 1e-9)
            metrics[f"n_truncated_{name}"] = float(st.n_truncated)
            details[f"encode_{name}"] = st.as_dict()
    return result


def _embeddings(encoder: Encoder, data: RetrievalSet) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Unit-row (docs, queries) and each side's encode stats (queries: None when reused from docs)."""
    doc_texts = [data.corpus[d] for d in data.doc_ids]
    docs, stats_d = encoder.encode_cached(doc_texts, what="documents")
    query_texts = [data.queries[q] for q in data.query_ids]
    queries = rows_of_known_texts(query_texts, doc_texts, docs)
    stats = {"documents": stats_d}
    if queries is None:
        queries, stats["queries"] = encoder.encode_cached(query_texts, what="queries")
    else:  # question-to-question sets (squad_qq): every query is also a document
        log.info(
            "All %d queries are documents too: their embeddings are reused, not re-encoded.", len(queries)
        )
        stats["queries"] = None
    return unit_rows(docs), unit_rows(queries), stats


def _depth(settings: RetrievalEvalSettings, data: RetrievalSet) -> int:
    """Ranking depth: one more when the query's own document is dropped afterwards."""
    return min(settings.depth + int(data.ignore_identical_ids), len(data.corpus))


def _reduce(
    cell: Cell, docs: np.ndarray, queries: np.ndarray, doc_texts: list[str], encoder: Encoder, metrics: dict
) -> tuple[np.ndarray, np.ndarray]:
    """(docs, queries) at a reduced dimension: truncated and renormalised, or projected on principal
    components fitted on the corpus documents (never on the queries)."""
    if cell.dim_method != "pca":
        return unit_rows(docs[:, : cell.dim]), unit_rows(queries[:, : cell.dim])
    key = pca_key(encoder.key, doc_texts, cell.dim)
    pca = fitted_pca(lambda: docs, cell.dim, cache=encoder.cache, key=key)
    metrics[f"pca_explained_variance@{pca.tag}"] = float(pca.explained_variance_ratio.sum())
    return pca.transform(docs), pca.transform(queries)


def _score_cell(
    cell: Cell,
    settings: RetrievalEvalSettings,
    data: RetrievalSet,
    docs: np.ndarray,
    queries: np.ndarray,
    common: dict,
    result: RetrievalEvalResult,
    saved: tuple[Any, str],
) -> None:
    """Metrics of one cell, ``docs`` and ``queries`` already reduced: through the benchmarked index
    (``saved``: the cache it is kept in, or None, and the embeddings' key), at a lower precision, or
    exact at a reduced dimension (the full exact cell is scored before)."""
    ids = (data.query_ids, data.doc_ids, data.qrels)
    out = result.metrics  # the index's benchmark, then the cell's metrics, then its storage
    size: float | None = None
    if cell.index is not None:
        assert settings.index is not None
        key = index_key(saved[1], cell.tag, settings.index) if saved[0] else ""
        built, how = ready_index(settings.index, docs, cache=saved[0], key=key, device=settings.index_device)
        b = benchmark_index(  # built (or read) once: benchmarked, then searched
            built, docs, queries, settings.index_k, n_latency_queries=settings.n_latency_queries
        )
        result.details[f"index{cell.tag}"] = asdict(b) | how
        t = cell.tag
        out |= {
            f"index_build_s{t}": b.build_s,
            f"index_bytes_per_vector{t}": b.bytes_per_vector,
            f"index_total_mb{t}": b.total_bytes / 2**20,
            f"index_latency_p50_ms{t}": b.latency_ms_p50,
            f"index_latency_p95_ms{t}": b.latency_ms_p95,
            f"index_latency_p99_ms{t}": b.latency_ms_p99,
            f"index_qps_batched{t}": b.qps_batched,
            f"index_recall@{settings.index_k}{t}": b.recall_at_k,
        }
        ranked = search(built, queries, _depth(settings, data))
        scored = retrieval_metrics(*ids, ks=settings.ks, ranked=ranked, **common)
        result.rankings[cell.tag] = ranked
        shallow_ks = tuple(k for k in settings.ks if k <= settings.index_k)
        if shallow_ks and settings.index_k < max(settings.ks):
            # Cutoffs up to index.k come from the k=index.k search the benchmark times: a deeper search
            # widens HNSW's ef and the rescoring candidates, and would flatter the deployed index.
            k = min(settings.index_k + int(data.ignore_identical_ids), len(data.corpus))
            shallow = retrieval_metrics(*ids, ks=shallow_ks, ranked=search(built, queries, k), **common)
            per_query = {
                q: v | (shallow.per_query or {}).get(q, {}) for q, v in (scored.per_query or {}).items()
            }
            scored = replace(scored, metrics=scored.metrics | shallow.metrics, per_query=per_query)
    elif cell.precision != "float32":
        pe = evaluate_precision(
            *ids, queries, docs, cell.precision, settings.ks, rescore_multiplier=cell.rescore, **common
        )
        scored, size = pe.metrics, pe.bytes_per_vector
        result.rankings[cell.tag] = (pe.scores, pe.ids)
    elif cell.dim_tag:
        scored = retrieval_metrics(*ids, ks=settings.ks, query_emb=queries, doc_emb=docs, **common)
        size = 4 * docs.shape[1]
    else:
        return
    out.update({cell.key(k): v for k, v in scored.metrics.items()})
    result.per_query[cell.tag] = scored.per_query or {}
    if size is not None:
        out[cell.bytes_key] = float(size)


def _score_ranking(
    ranking: Ranking,
    tag: str,
    data: RetrievalSet,
    settings: RetrievalEvalSettings,
    result: RetrievalEvalResult,
) -> None:
    """Score a ranking of ``data``'s queries under ``tag``: metrics, per-query values, the ranking."""
    opts = dict(ignore_identical_ids=data.ignore_identical_ids, ndcg_gain=settings.ndcg_gain, per_query=True)
    scored = retrieval_metrics(
        data.query_ids, data.doc_ids, data.qrels, ks=settings.ks, ranked=ranking, **opts
    )
    result.metrics.update({f"{k}{tag}": v for k, v in scored.metrics.items()})
    result.per_query[tag] = scored.per_query or {}
    result.rankings[tag] = ranking
    if data.answers:
        _score_answers(data, settings, result, ranking[1], tag)


def evaluate_lexical(data: RetrievalSet, settings: RetrievalEvalSettings) -> RetrievalEvalResult:
    """BM25 alone: one cell (no dimension, precision or index), indexing time as its encode cost."""
    doc_texts = [data.corpus[d] for d in data.doc_ids]
    start = time.perf_counter()
    ranking = bm25_rank(
        doc_texts, [data.queries[q] for q in data.query_ids], _depth(settings, data), settings.bm25
    )
    seconds = time.perf_counter() - start
    details = {"n_docs": len(doc_texts), "n_queries": len(data.query_ids), "bm25": asdict(settings.bm25)}
    result = RetrievalEvalResult({}, details, [Cell()])
    _score_ranking(ranking, "", data, settings, result)
    # BM25's "encode" is tokenizing + indexing the corpus and scoring the queries: its cost per text.
    result.metrics["encode_documents_per_s"] = len(doc_texts) / max(seconds, 1e-9)
    result.metrics["bm25_index_and_search_s"] = seconds
    return result


def _train_dense(encoder: Encoder, train: RetrievalSet | None, settings: RetrievalEvalSettings) -> Any:
    """(training set, its exact dense ranking) for choosing a convex weight; None when not needed."""
    f = settings.fusion
    if f is None or f.name != "convex" or f.weight is not None:
        return None
    if train is None:
        raise ConfigError(
            "fusion=convex with fusion.weight=null chooses its weight on training queries, and this data has "
            "none (data.train_split is null). Fix: set fusion.weight=<0..1>, or use fusion=rrf (no tuning)."
        )
    docs, queries, _ = _embeddings(encoder, train)
    return train, topk_dot(queries, docs, _depth(settings, train))


def _score_fusion(
    settings: RetrievalEvalSettings,
    data: RetrievalSet,
    result: RetrievalEvalResult,
    base: Cell,
    *,
    train_dense: Any,
) -> Cell:
    """BM25 (under ``@bm25``) and its fusion (``@rrf`` / ``@convex`` added to ``base``'s tag) with the
    dense ranking of ``base``: the config allows fusion only with full-dimension float32 exact search."""
    f = settings.fusion
    assert f is not None and base.tag in result.rankings
    depth = _depth(settings, data)

    def lexical(rset: RetrievalSet) -> Ranking:
        texts = [rset.corpus[d] for d in rset.doc_ids]
        return bm25_rank(texts, [rset.queries[q] for q in rset.query_ids], depth, settings.bm25)

    weight = f.weight
    if train_dense is not None:
        train, dense_train = train_dense
        lex_train = lexical(train)

        def score(r: Ranking) -> float:
            opts = dict(ignore_identical_ids=train.ignore_identical_ids, ndcg_gain=settings.ndcg_gain)
            m = retrieval_metrics(
                train.query_ids, train.doc_ids, train.qrels, ks=settings.ks, ranked=r, **opts
            )
            return m.metrics[f.tune_metric]

        weight, tried = choose_weight(dense_train, lex_train, score, norm=f.norm)
        result.details["fusion_weight_search"] = {
            "queries": len(train.query_ids),
            "split": "train",
            "tried": tried,
        }
        log.info(
            "fusion=convex: dense weight %.2f chosen on %d training queries", weight, len(train.query_ids)
        )
    sparse = lexical(data)
    _score_ranking(sparse, "@bm25", data, settings, result)
    cell = replace(base, fusion=f.name)
    _score_ranking(
        fuse(f, result.rankings[base.tag], sparse, weight=weight), cell.tag, data, settings, result
    )
    result.details["fusion"] = {**asdict(f), "weight": weight}
    return cell


def _score_answers(
    data: RetrievalSet,
    settings: RetrievalEvalSettings,
    result: RetrievalEvalResult,
    top: np.ndarray,
    tag: str,
) -> None:
    """answer_hit@k of a ranking's doc indices ``top`` (Q, >= max k), kept per question too."""
    retrieved = [
        [data.corpus[data.doc_ids[j]] for j in row[: max(settings.answer_ks)] if j >= 0] for row in top
    ]
    hits = answer_hit_rate_at_k(
        retrieved, [data.answers.get(q, []) for q in data.query_ids], settings.answer_ks
    )
    result.metrics.update({f"{k}{tag}": v for k, v in hits.metrics.items()})
    per_query = result.per_query.setdefault(tag, {})
    for row, rank in hits.first_hit.items():
        values = {f"answer_hit@{k}": float(0 < rank <= k) for k in settings.answer_ks}
        per_query.setdefault(data.query_ids[row], {}).update(values)


def parse_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Sorted distinct cut-offs of a config's ``data.ks``, checked positive."""
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1:
        raise ConfigError(f"data.ks must be positive integers, got {list(ks)}.")
    return out
