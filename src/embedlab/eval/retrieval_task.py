"""Retrieval and bitext evaluations of an encoder: encode (or read from the cache) once, then score
exact search, reduced dimensions, an embedding precision and a FAISS index from the same embeddings.
Metric keys carry the cell tags of ``eval/variants.py`` (``ndcg@10@128``, ``ndcg@10@pca128``,
``index_latency_p50_ms@hnsw``...), plus ``answer_hit@5`` for sets with gold answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedlab.data.retrieval import load_tatoeba
from embedlab.errors import ConfigError, DataError
from embedlab.eval.arrays import as_numpy, topk_dot, unit_rows
from embedlab.eval.index import IndexSpec, benchmark_index, build_index, search
from embedlab.eval.pca import fitted_pca, pca_key
from embedlab.eval.precision import evaluate_precision
from embedlab.eval.retrieval import retrieval_metrics_from_embeddings, retrieval_metrics_from_ranked
from embedlab.eval.variants import Cell, variant_grid

if TYPE_CHECKING:
    from embedlab.data.retrieval import RetrievalSet
    from embedlab.encode.encoder import Encoder

log = logging.getLogger(__name__)

BitextMatch = Literal["index", "text"]


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


@dataclass(frozen=True)
class AnswerHitRate:
    """Fraction of questions whose top-k retrieved texts contain a gold answer string."""

    metrics: dict[str, float]  # "answer_hit@k"
    n_queries_scored: int
    n_queries_skipped_no_answer: int


@dataclass(frozen=True)
class BitextAccuracy:
    """Nearest-neighbour translation retrieval accuracy in both directions."""

    src2tgt: float
    tgt2src: float
    mean: float
    n: int
    match: str  # "index" or "text"


@dataclass
class RetrievalEvalResult:
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)  # what the metrics' suffixes mean: meta["cells"]


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
    encoder: Encoder, data: RetrievalSet, settings: RetrievalEvalSettings
) -> RetrievalEvalResult:
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
    docs, queries = unit_rows(docs), unit_rows(queries)
    common = dict(ignore_identical_ids=data.ignore_identical_ids, ndcg_gain=settings.ndcg_gain)
    details: dict[str, Any] = {
        "n_docs": len(doc_ids),
        "n_queries": len(query_ids),
        "data_stats": dict(data.stats),
    }
    exact = retrieval_metrics_from_embeddings(
        query_ids, doc_ids, data.qrels, queries, docs, settings.ks, **common
    )
    metrics: dict[str, float] = dict(exact.metrics)
    details["exact"] = {k: v for k, v in exact.as_dict().items() if k not in exact.metrics}

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
    for cell in grid:
        if cell.dim_tag not in reduced:
            reduced[cell.dim_tag] = _reduce(cell, docs, queries, doc_texts, encoder, metrics)
        metrics.update(_cell_metrics(cell, settings, data, *reduced[cell.dim_tag], common, details))
    metrics["bytes_per_vector@float32"] = float(4 * docs.shape[1])
    if data.answers:
        _, top = topk_dot(queries, docs, max(settings.answer_ks))
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


def _cell_metrics(
    cell: Cell,
    settings: RetrievalEvalSettings,
    data: RetrievalSet,
    docs: np.ndarray,
    queries: np.ndarray,
    common: dict,
    details: dict,
) -> dict[str, float]:
    """Metrics of one cell, ``docs`` and ``queries`` already reduced: through the benchmarked index,
    at a lower precision, or exact at a reduced dimension (the full exact cell is scored before)."""
    ids = (data.query_ids, data.doc_ids, data.qrels)
    out: dict[str, float] = {}  # the index's benchmark, then the cell's metrics, then its storage
    size: float | None = None
    if cell.index is not None:
        assert settings.index is not None
        b = benchmark_index(
            settings.index, docs, queries, settings.index_k, n_latency_queries=settings.n_latency_queries
        )
        details[f"index{cell.tag}"] = asdict(b)
        t = cell.tag
        out = {
            f"index_build_s{t}": b.build_s,
            f"index_bytes_per_vector{t}": b.bytes_per_vector,
            f"index_total_mb{t}": b.total_bytes / 2**20,
            f"index_latency_p50_ms{t}": b.latency_ms_p50,
            f"index_latency_p95_ms{t}": b.latency_ms_p95,
            f"index_latency_p99_ms{t}": b.latency_ms_p99,
            f"index_qps_batched{t}": b.qps_batched,
            f"index_recall@{settings.index_k}{t}": b.recall_at_k,
        }
        depth = max(settings.ks) + (1 if data.ignore_identical_ids else 0)
        ranked = search(build_index(settings.index, docs), queries, min(depth, len(data.corpus)))
        scored = retrieval_metrics_from_ranked(*ids, ranked, settings.ks, **common)
    elif cell.precision != "float32":
        pe = evaluate_precision(
            *ids, queries, docs, cell.precision, settings.ks, rescore_multiplier=cell.rescore, **common
        )
        scored, size = pe.metrics, pe.bytes_per_vector
    elif cell.dim_tag:
        scored = retrieval_metrics_from_embeddings(*ids, queries, docs, settings.ks, **common)
        size = 4 * docs.shape[1]
    else:
        return {}
    out.update({cell.key(k): v for k, v in scored.metrics.items()})
    if size is not None:
        out[cell.bytes_key] = float(size)
    return out


def parse_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Sorted distinct cut-offs of a config's ``data.ks``, checked positive."""
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1:
        raise ConfigError(f"data.ks must be positive integers, got {list(ks)}.")
    return out


def normalise_answer_text(text: str) -> str:
    """Case-fold and collapse whitespace, so line breaks and spacing never hide a match."""
    return " ".join(text.split()).casefold()


def answer_hit_rate_at_k(
    retrieved_texts: Sequence[Sequence[str]],
    gold_answers: Sequence[Sequence[str]],
    ks: Sequence[int] = (1, 5, 10),
) -> AnswerHitRate:
    """Share of questions where one of the top-k retrieved passages (best first) contains a gold answer:
    substring match after :func:`normalise_answer_text` only (a reader model sees the raw passage, so no
    SQuAD-style punctuation or article stripping). Questions without gold answers are skipped."""
    if len(retrieved_texts) != len(gold_answers):
        raise ValueError(f"{len(retrieved_texts)} rankings but {len(gold_answers)} answer lists")
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    first_hits: list[int] = []  # rank (1-based) of the first passage holding an answer, 0 = none
    for passages, answers in zip(retrieved_texts, gold_answers, strict=True):
        golds = [a for a in map(normalise_answer_text, answers) if a]
        if golds:
            hits = (
                r
                for r, p in enumerate(passages[: ks[-1]], 1)
                if any(g in normalise_answer_text(p) for g in golds)
            )
            first_hits.append(next(hits, 0))
    skipped = len(gold_answers) - len(first_hits)
    if skipped:
        log.warning("answer_hit_rate_at_k: skipped %d questions without a gold answer", skipped)
    if not first_hits:
        raise DataError("No question has a gold answer; cannot compute the answer hit rate.")
    fh = np.asarray(first_hits)
    metrics = {f"answer_hit@{k}": float(((fh > 0) & (fh <= k)).mean()) for k in ks}
    return AnswerHitRate(metrics=metrics, n_queries_scored=len(fh), n_queries_skipped_no_answer=skipped)


def bitext_retrieval_accuracy(
    src_emb: Any,
    tgt_emb: Any,
    *,
    match: BitextMatch = "index",
    src_texts: Sequence[str] | None = None,
    tgt_texts: Sequence[str] | None = None,
    chunk_size: int = 1024,
) -> BitextAccuracy:
    """Share of lines whose cosine nearest neighbour is their aligned line, both ways; ties to the
    lowest index. ``match="index"``: the exact line (MTEB / LASER Tatoeba). ``"text"``: a line with
    the aligned line's text also counts (ST's ``TranslationEvaluator``); needs the texts."""
    s = as_numpy(src_emb, np.float32)
    t = as_numpy(tgt_emb, np.float32)
    if s.shape != t.shape or s.ndim != 2 or len(s) == 0:
        raise ValueError(
            f"Aligned embeddings must have equal non-empty 2-D shapes, got {s.shape} and {t.shape}"
        )
    if match == "text" and (src_texts is None or tgt_texts is None):
        raise ValueError("match='text' needs src_texts and tgt_texts")
    if match not in ("index", "text"):
        raise ValueError(f"match must be 'index' or 'text', got {match!r}")
    s, t = unit_rows(s), unit_rows(t)

    def accuracy(a: np.ndarray, b: np.ndarray, b_texts: Sequence[str] | None) -> float:
        nn = topk_dot(a, b, 1, chunk_size=chunk_size)[1][:, 0]
        if match == "index":
            return float((nn == np.arange(len(nn))).mean())
        assert b_texts is not None
        return float(np.mean([b_texts[j] == b_texts[i] for i, j in enumerate(nn)]))

    s2t, t2s = accuracy(s, t, tgt_texts), accuracy(t, s, src_texts)
    return BitextAccuracy(src2tgt=s2t, tgt2src=t2s, mean=(s2t + t2s) / 2, n=len(s), match=match)


def evaluate_bitext(
    encoder: Encoder, langs: Sequence[str], root: str
) -> tuple[dict[str, float], dict[str, str]]:
    """Tatoeba bitext retrieval for each language paired with English, both ways (the exact aligned line
    must win, as LASER/MTEB): ``src2eng_accuracy@<lang>``... and their means; returns (metrics, revisions)."""
    metrics: dict[str, float] = {}
    revisions: dict[str, str] = {}
    for lang in langs:
        bt = load_tatoeba(lang, root)
        src, _ = encoder.encode_cached(bt.sentences, what=lang)
        eng, _ = encoder.encode_cached(bt.english, what="eng")
        acc = bitext_retrieval_accuracy(src, eng)
        metrics[f"src2eng_accuracy@{lang}"] = acc.src2tgt
        metrics[f"eng2src_accuracy@{lang}"] = acc.tgt2src
        metrics[f"accuracy@{lang}"] = acc.mean
        revisions[lang] = bt.revision
    for name in ("src2eng_accuracy", "eng2src_accuracy", "accuracy"):
        values = [metrics[f"{name}@{lang}"] for lang in langs]
        metrics[name] = sum(values) / len(values)
    return metrics, revisions
