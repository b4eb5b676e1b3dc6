"""Retrieval metrics (Accuracy, Precision, Recall, MRR, nDCG, MAP at k) from scores or rankings.

Pure numpy; no model, no Hydra. Three entry points feed one metric core:

- :func:`retrieval_metrics_from_scores`: a (Q, D) score matrix you already hold.
- :func:`retrieval_metrics_from_embeddings`: query and document embeddings; the (Q, D)
  matrix is never built, queries are scored chunk by chunk (memory-bounded).
- :func:`retrieval_metrics_from_ranked`: per-query top-k results from any index
  (faiss ``(scores, ids)`` with ``-1`` padding, or lists of ``(doc_index, score)``).

Conventions follow sentence-transformers' ``InformationRetrievalEvaluator`` (ST), which
we checked against its source and pin in tests/eval/test_retrieval_metrics.py:

- A document is relevant when its qrels relevance is > 0 (trec_eval's
  ``relevance_level=1``); a judgement of 0 marks a judged non-relevant document.
- ``accuracy@k``: 1 if any relevant document is in the top k (trec ``success_k``).
- ``precision@k``: relevant in top k / k, always divided by k even when fewer than k
  documents exist (ST and trec ``P_k``).
- ``recall@k``: relevant in top k / all relevant judged documents (trec ``recall_k``).
- ``mrr@k``: 1 / rank of the first relevant document within the top k, else 0
  (trec ``recip_rank`` on a run cut at k).
- ``ndcg@k``: DCG = sum gain_i / log2(i + 1) over ranks i = 1..k, divided by the DCG of
  the ideal ordering of *all* judged relevant documents. ``ndcg_gain="binary"`` (the
  default, as ST) uses gain 1 for every relevant document; ``"graded"`` uses the qrels
  relevance as a linear gain, which equals trec_eval's ``ndcg_cut_k`` (what BEIR and
  MTEB report). On binary qrels (SciFact, SQuAD) the two coincide.
- ``map@k``: ST's definition, sum over relevant documents at ranks r <= k of
  precision@r, divided by ``min(k, n_relevant)``. trec_eval's ``map_cut_k`` divides
  the same sum by ``n_relevant``; so ``map@k = map_cut_k * n_rel / min(k, n_rel)`` and
  the two agree whenever n_relevant <= k.
- Ties in score are broken by ascending document index (position in ``doc_ids``), so
  results do not depend on chunk sizes. (ST breaks them by ascending doc id string;
  trec_eval by descending doc id string. Real embedding scores rarely tie.)

Bad input is reported, not silently absorbed; every count ends up in the result:

- duplicate query or document ids, empty corpus, NaN scores, shape mismatches: error.
- queries without judgements: skipped, counted in ``n_queries_skipped_no_qrels``;
  queries whose judgements are all 0: skipped, ``n_queries_skipped_no_relevant``.
- judgements naming documents missing from the corpus: ``missing_doc_policy``
  ``"error"`` (default: usually a wrong corpus or split), ``"drop"`` (remove those
  judgements), or ``"keep"`` (they stay relevant but cannot be retrieved, lowering
  recall and nDCG: the ST and trec_eval behaviour). Counted in
  ``n_judgements_missing_doc``.
- k larger than the corpus: the ranking depth is clamped to the corpus size (with a
  warning, listed in ``ks_clamped``); the metric keeps its ``@k`` name and precision
  still divides by k.
- ``ignore_identical_ids=True`` removes a document whose id equals the query id from
  that query's ranking (BEIR/MTEB convention for sets such as question-to-question
  matching, where queries are also documents; ST does not do this). We also drop
  judgements naming the query itself, since they could never be retrieved (BEIR keeps
  them); counted in ``n_judgements_identical``. The result records the flag.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from embedlab.errors import DataError

log = logging.getLogger(__name__)

Qrels = Mapping[str, Mapping[str, int]]
MissingDocPolicy = Literal["error", "drop", "keep"]
NdcgGain = Literal["binary", "graded"]
BitextMatch = Literal["index", "text"]

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_NAMES: tuple[str, ...] = ("accuracy", "precision", "recall", "mrr", "ndcg", "map")


@dataclass(frozen=True)
class RetrievalMetrics:
    """Mean metrics over scored queries, plus how many inputs were skipped and why."""

    metrics: dict[str, float]  # flat keys: "ndcg@10", "recall@5", ...
    n_queries_scored: int
    n_queries_skipped_no_qrels: int  # query has no judgements at all
    n_queries_skipped_no_relevant: int  # judgements exist but none is > 0 (after drops)
    n_qrels_queries_unknown: int  # qrels for query ids that were not passed in
    n_judgements_missing_doc: int  # judgements naming a document not in the corpus
    n_judgements_identical: int  # judgements doc id == query id, dropped if ignore_identical_ids
    n_queries_short_ranking: int  # ranking shorter than min(max k, eligible docs)
    n_docs: int
    ks: tuple[int, ...]
    ks_clamped: tuple[int, ...]  # ks larger than the corpus
    ignore_identical_ids: bool
    missing_doc_policy: str
    ndcg_gain: str
    per_query: dict[str, dict[str, float]] | None = field(default=None, repr=False)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def as_dict(self) -> dict[str, Any]:
        """Metrics and counts in one flat dict (for a results file); no per-query values."""
        out: dict[str, Any] = dict(self.metrics)
        for key, value in asdict(self).items():
            if key in ("metrics", "per_query"):
                continue
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


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


# --- top-k selection -------------------------------------------------------------------


def _as_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to CPU first."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if dtype is None and str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def _topk_block(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k of each row, sorted by (-score, column index). block: (B, D), k <= D."""
    n_rows, n_cols = block.shape
    if k == n_cols:
        idx = np.broadcast_to(np.arange(n_cols), block.shape).copy()
    else:
        idx = np.argpartition(-block, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(block, idx, axis=1)
        # argpartition breaks ties at the k-th score arbitrarily; reselect those rows so
        # that the lowest column indices win, as in the final (-score, index) order.
        thr = vals.min(axis=1)
        tied_rows = np.flatnonzero((block >= thr[:, None]).sum(axis=1) > k)
        for r in tied_rows:
            row = block[r]
            above = np.flatnonzero(row > thr[r])
            at = np.flatnonzero(row == thr[r])[: k - len(above)]
            idx[r] = np.concatenate([above, at])
    vals = np.take_along_axis(block, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=-1)
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _finalise_block(
    vals: np.ndarray, idx: np.ndarray, k: int, exclude: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Drop excluded documents (one per row at most) and pad or cut to k with (-inf, -1)."""
    vals = vals.astype(np.float32, copy=False)
    if exclude is not None:
        hit = idx == exclude[:, None]  # (B, depth)
        idx = np.where(hit, -1, idx)
        vals = np.where(hit, -np.inf, vals).astype(np.float32)
        order = np.argsort(hit, axis=1, kind="stable")  # removed slot to the end, order kept
        idx = np.take_along_axis(idx, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
    out_v = np.full((len(vals), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(idx), k), -1, dtype=np.int64)
    w = min(k, vals.shape[1])
    out_v[:, :w] = vals[:, :w]
    out_i[:, :w] = idx[:, :w]
    return out_v, out_i


def _iter_topk(
    get_block: Any, n_queries: int, n_docs: int, k: int, exclude: np.ndarray | None, chunk_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield top-k per chunk of ``chunk_size`` queries; get_block(a, b) returns their (B, D) scores."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    depth = min(k + (1 if exclude is not None else 0), n_docs)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        block = np.asarray(get_block(start, stop))  # (B, D)
        if np.isnan(block).any():
            raise DataError(f"Scores for queries {start}..{stop - 1} contain NaN (zero-norm embeddings?).")
        vals, idx = _topk_block(block, depth)
        yield _finalise_block(vals, idx, k, None if exclude is None else exclude[start:stop])


def _collect(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def topk_from_scores(
    scores: Any,
    k: int,
    *,
    rows: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, doc indices) per row of a (Q, D) score matrix, best first.

    Rows are processed ``chunk_size`` at a time so the temporaries stay bounded;
    ``rows`` selects a subset of rows without copying the whole matrix. ``exclude[i]``
    (a doc index or -1) is left out of the i-th selected row's ranking. Rows with fewer
    than k eligible documents are padded with score -inf and index -1 (as faiss does).
    """
    s = _as_numpy(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (queries, docs), got shape {s.shape}")
    if s.shape[1] == 0:
        raise DataError("Empty corpus: the score matrix has no document columns.")
    sel = np.arange(s.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    parts = list(_iter_topk(lambda a, b: s[sel[a:b]], len(sel), s.shape[1], k, exclude, chunk_size))
    return _collect(parts, k)


def topk_dot(
    query_emb: Any,
    doc_emb: Any,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product (= cosine for unit-norm embeddings), best first.

    Never builds the (Q, D) matrix: each chunk of ``chunk_size`` queries is scored
    against all documents, so peak memory is chunk_size * D floats.
    """
    q = _as_numpy(query_emb, np.float32)
    d = _as_numpy(doc_emb, np.float32)
    if d.ndim != 2 or d.shape[0] == 0:
        raise DataError(f"Empty corpus or bad doc embedding shape {d.shape}.")
    if q.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"Query embeddings {q.shape} do not match doc embeddings {d.shape}.")
    parts = list(_iter_topk(lambda a, b: q[a:b] @ d.T, q.shape[0], d.shape[0], k, exclude, chunk_size))
    return _collect(parts, k)


# --- input checks and qrels preparation ------------------------------------------------


def _check_unique(ids: Sequence[str], what: str) -> None:
    if len(set(ids)) != len(ids):
        dups = [i for i, n in Counter(ids).items() if n > 1]
        raise DataError(f"Duplicate {what} ids ({len(dups)} repeats, e.g. {dups[:3]}); ids must be unique.")


@dataclass
class _Prepared:
    positions: np.ndarray  # (Qs,) rows of the input that are scored
    rel: list[dict[int, float]]  # per scored query: doc index -> judged relevance (0s included)
    n_rel: np.ndarray  # (Qs,) relevant judgements, including unretrievable kept ones
    ideal_gains: list[np.ndarray]  # per scored query: sorted gains of all relevant judgements
    exclude: np.ndarray | None  # (Q,) doc index equal to the query id, or -1
    counts: dict[str, int]
    ks_clamped: tuple[int, ...]


def _prepare(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    ks: Sequence[int],
    ignore_identical_ids: bool,
    missing_doc_policy: MissingDocPolicy,
    ndcg_gain: NdcgGain,
) -> _Prepared:
    if missing_doc_policy not in ("error", "drop", "keep"):
        raise ValueError(f"missing_doc_policy must be 'error', 'drop' or 'keep', got {missing_doc_policy!r}")
    if ndcg_gain not in ("binary", "graded"):
        raise ValueError(f"ndcg_gain must be 'binary' or 'graded', got {ndcg_gain!r}")
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of positive integers, got {list(ks)}")
    query_ids = [str(q) for q in query_ids]
    doc_ids = [str(d) for d in doc_ids]
    if not doc_ids:
        raise DataError("Empty corpus: no documents to retrieve from.")
    _check_unique(query_ids, "query")
    _check_unique(doc_ids, "document")
    doc_index = {d: i for i, d in enumerate(doc_ids)}

    counts = dict(
        n_queries_skipped_no_qrels=0,
        n_queries_skipped_no_relevant=0,
        n_qrels_queries_unknown=len(set(map(str, qrels)) - set(query_ids)),
        n_judgements_missing_doc=0,
        n_judgements_identical=0,
    )
    missing_examples: list[str] = []
    positions: list[int] = []
    rel: list[dict[int, float]] = []
    n_rel: list[int] = []
    ideal: list[np.ndarray] = []
    for pos, qid in enumerate(query_ids):
        judged = qrels.get(qid)
        if not judged:
            counts["n_queries_skipped_no_qrels"] += 1
            continue
        in_corpus: dict[int, float] = {}
        gains: list[float] = []
        for did, r in judged.items():
            did = str(did)
            r = float(r)
            if ignore_identical_ids and did == qid:
                counts["n_judgements_identical"] += 1
                continue
            i = doc_index.get(did)
            if i is None:
                counts["n_judgements_missing_doc"] += 1
                if len(missing_examples) < 3:
                    missing_examples.append(f"{qid}->{did}")
                if missing_doc_policy == "drop":
                    continue
            else:
                in_corpus[i] = r
            if r > 0:
                gains.append(1.0 if ndcg_gain == "binary" else r)
        if not gains:
            counts["n_queries_skipped_no_relevant"] += 1
            continue
        positions.append(pos)
        rel.append(in_corpus)
        n_rel.append(len(gains))
        ideal.append(np.sort(np.asarray(gains))[::-1])

    if counts["n_judgements_missing_doc"] and missing_doc_policy == "error":
        raise DataError(
            f"{counts['n_judgements_missing_doc']} judgements name documents that are not in the corpus "
            f"(e.g. {missing_examples}). Usually the corpus or the qrels split is wrong. Fix: pass the full "
            "corpus, or set missing_doc_policy='drop' (forget those judgements) or 'keep' (count them as "
            "relevant but unretrievable, as trec_eval and sentence-transformers do)."
        )
    if counts["n_judgements_missing_doc"]:
        log.warning(
            "%d judgements name documents missing from the corpus (e.g. %s); policy=%s",
            counts["n_judgements_missing_doc"],
            missing_examples,
            missing_doc_policy,
        )
    if counts["n_queries_skipped_no_qrels"]:
        log.info("Skipped %d queries without judgements", counts["n_queries_skipped_no_qrels"])
    if counts["n_queries_skipped_no_relevant"]:
        log.warning(
            "Skipped %d queries without any relevant judgement", counts["n_queries_skipped_no_relevant"]
        )
    if not positions:
        raise DataError(
            f"No query can be scored: {len(query_ids)} queries, "
            f"{counts['n_queries_skipped_no_qrels']} without judgements, "
            f"{counts['n_queries_skipped_no_relevant']} without a relevant one. Check that the query ids "
            "match the qrels ids."
        )

    n_eligible = len(doc_ids) - (1 if ignore_identical_ids and set(query_ids) & set(doc_ids) else 0)
    ks_clamped = tuple(sorted({int(k) for k in ks if int(k) > n_eligible}))
    if ks_clamped:
        log.warning(
            "k=%s exceed the %d retrievable documents: ranking depth clamped to %d; precision@k still "
            "divides by k",
            list(ks_clamped),
            n_eligible,
            n_eligible,
        )
    exclude = None
    if ignore_identical_ids:
        exclude = np.asarray([doc_index.get(q, -1) for q in query_ids], dtype=np.int64)
    return _Prepared(
        positions=np.asarray(positions, dtype=np.int64),
        rel=rel,
        n_rel=np.asarray(n_rel, dtype=np.float64),
        ideal_gains=ideal,
        exclude=exclude,
        counts=counts,
        ks_clamped=ks_clamped,
    )


# --- metric core -----------------------------------------------------------------------


def _compute(
    prep: _Prepared,
    ranked_idx: np.ndarray,  # (Qs, K) doc indices of the scored queries, -1 = none
    query_ids: Sequence[str],
    n_docs: int,
    ks: Sequence[int],
    ignore_identical_ids: bool,
    missing_doc_policy: str,
    ndcg_gain: NdcgGain,
    per_query: bool,
) -> RetrievalMetrics:
    ks = tuple(sorted({int(k) for k in ks}))
    kmax = max(ks)
    n_q = len(prep.positions)
    width = ranked_idx.shape[1] if ranked_idx.ndim == 2 else 0
    gains = np.zeros((n_q, kmax), dtype=np.float64)  # (Qs, K) relevance of retrieved docs
    for row, judged in enumerate(prep.rel):
        if not judged:
            continue
        for col in range(min(width, kmax)):
            d = int(ranked_idx[row, col])
            if d >= 0:
                r = judged.get(d)
                if r is not None and r > 0:
                    gains[row, col] = r
    hits = gains > 0
    if ndcg_gain == "binary":
        gains = hits.astype(np.float64)
    ideal = np.zeros((n_q, kmax), dtype=np.float64)
    for row, g in enumerate(prep.ideal_gains):
        m = min(kmax, len(g))
        ideal[row, :m] = g[:m]

    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    cum_hits = np.cumsum(hits, axis=1)
    prec_at_rank = cum_hits / ranks  # (Qs, K)
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)

    values: dict[str, np.ndarray] = {}
    for k in ks:
        n_hit = cum_hits[:, k - 1].astype(np.float64)
        values[f"accuracy@{k}"] = (n_hit > 0).astype(np.float64)
        values[f"precision@{k}"] = n_hit / k
        values[f"recall@{k}"] = n_hit / prep.n_rel
        values[f"mrr@{k}"] = np.where((first_hit > 0) & (first_hit <= k), 1.0 / np.maximum(first_hit, 1), 0.0)
        dcg = (gains[:, :k] * discount[:k]).sum(axis=1)
        idcg = (ideal[:, :k] * discount[:k]).sum(axis=1)
        values[f"ndcg@{k}"] = dcg / idcg
        values[f"map@{k}"] = (prec_at_rank[:, :k] * hits[:, :k]).sum(axis=1) / np.minimum(k, prep.n_rel)

    order = [f"{m}@{k}" for m in METRIC_NAMES for k in ks]
    metrics = {key: float(values[key].mean()) for key in order}
    per_q = None
    if per_query:
        qids = [str(query_ids[p]) for p in prep.positions]
        per_q = {qid: {key: float(values[key][i]) for key in order} for i, qid in enumerate(qids)}

    # A ranking is short when it holds fewer docs than it could (max k, or what the corpus allows).
    n_eligible = np.full(n_q, n_docs)
    if prep.exclude is not None:
        n_eligible -= prep.exclude[prep.positions] >= 0
    expected = np.minimum(kmax, n_eligible)
    lengths = (ranked_idx[:, :kmax] >= 0).sum(axis=1) if width else np.zeros(n_q, dtype=np.int64)
    n_short = int((lengths < expected).sum())
    if n_short:
        log.warning("%d of %d rankings hold fewer than min(k=%d, corpus) documents", n_short, n_q, kmax)

    return RetrievalMetrics(
        metrics=metrics,
        n_queries_scored=n_q,
        n_queries_short_ranking=n_short,
        n_docs=n_docs,
        ks=ks,
        ks_clamped=prep.ks_clamped,
        ignore_identical_ids=ignore_identical_ids,
        missing_doc_policy=missing_doc_policy,
        ndcg_gain=ndcg_gain,
        per_query=per_q,
        **prep.counts,
    )


# --- public entry points ---------------------------------------------------------------


def retrieval_metrics_from_scores(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    scores: Any,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ignore_identical_ids: bool = False,
    missing_doc_policy: MissingDocPolicy = "error",
    ndcg_gain: NdcgGain = "binary",
    per_query: bool = False,
    chunk_size: int = 1024,
) -> RetrievalMetrics:
    """Metrics from a (Q, D) score matrix (numpy or torch); row q scores ``query_ids[q]``.

    Only the rows of queries with judgements are ranked, ``chunk_size`` rows at a time.
    """
    prep = _prepare(query_ids, doc_ids, qrels, ks, ignore_identical_ids, missing_doc_policy, ndcg_gain)
    s = _as_numpy(scores)
    if s.shape != (len(query_ids), len(doc_ids)):
        raise ValueError(
            f"scores shape {s.shape} != (n_queries, n_docs) = ({len(query_ids)}, {len(doc_ids)})"
        )
    exclude = None if prep.exclude is None else prep.exclude[prep.positions]
    _, idx = topk_from_scores(s, max(ks), rows=prep.positions, exclude=exclude, chunk_size=chunk_size)
    return _compute(
        prep,
        idx,
        query_ids,
        len(doc_ids),
        ks,
        ignore_identical_ids,
        missing_doc_policy,
        ndcg_gain,
        per_query,
    )


def retrieval_metrics_from_embeddings(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    query_emb: Any,
    doc_emb: Any,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ignore_identical_ids: bool = False,
    missing_doc_policy: MissingDocPolicy = "error",
    ndcg_gain: NdcgGain = "binary",
    per_query: bool = False,
    chunk_size: int = 1024,
) -> RetrievalMetrics:
    """Metrics from exact dot-product search (cosine when embeddings are unit-norm).

    Memory-bounded: queries are scored ``chunk_size`` at a time against all documents.
    """
    prep = _prepare(query_ids, doc_ids, qrels, ks, ignore_identical_ids, missing_doc_policy, ndcg_gain)
    q = _as_numpy(query_emb, np.float32)
    if len(q) != len(query_ids) or len(_as_numpy(doc_emb)) != len(doc_ids):
        raise ValueError("Embedding rows must match query_ids and doc_ids one to one.")
    exclude = None if prep.exclude is None else prep.exclude[prep.positions]
    _, idx = topk_dot(q[prep.positions], doc_emb, max(ks), exclude=exclude, chunk_size=chunk_size)
    return _compute(
        prep,
        idx,
        query_ids,
        len(doc_ids),
        ks,
        ignore_identical_ids,
        missing_doc_policy,
        ndcg_gain,
        per_query,
    )


def _ranked_to_array(ranked: Any, n_queries: int, n_docs: int) -> np.ndarray:
    """(Q, K) doc indices best first, -1 padded, from (scores, ids) arrays or (idx, score) lists."""
    if isinstance(ranked, tuple) and len(ranked) == 2 and hasattr(ranked[1], "shape"):
        scores, ids = _as_numpy(ranked[0], np.float64), _as_numpy(ranked[1]).astype(np.int64)
        if scores.shape != ids.shape or ids.ndim != 2:
            raise ValueError(
                f"(scores, ids) must be two arrays of equal 2-D shape, got {scores.shape}, {ids.shape}"
            )
        # sort by (-score, index) with padding (-1) last, so callers may pass unsorted rows
        key_pad = ids < 0
        order = np.lexsort((ids, -np.where(key_pad, -np.inf, scores), key_pad), axis=-1)
        ids = np.take_along_axis(ids, order, axis=1)
    else:
        width = max((len(r) for r in ranked), default=0)
        ids = np.full((len(ranked), width), -1, dtype=np.int64)
        for q, row in enumerate(ranked):
            rows = sorted(((float(s), int(i)) for i, s in row if int(i) >= 0), key=lambda t: (-t[0], t[1]))
            ids[q, : len(rows)] = [i for _, i in rows]
    if len(ids) != n_queries:
        raise ValueError(f"ranked results hold {len(ids)} rows, expected one per query ({n_queries})")
    if ids.size and ids.max() >= n_docs:
        raise ValueError(f"ranked doc index {int(ids.max())} out of range for {n_docs} documents")
    return ids


def retrieval_metrics_from_ranked(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    ranked: tuple[Any, Any] | Sequence[Sequence[tuple[int, float]]],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ignore_identical_ids: bool = False,
    missing_doc_policy: MissingDocPolicy = "error",
    ndcg_gain: NdcgGain = "binary",
    per_query: bool = False,
) -> RetrievalMetrics:
    """Metrics from per-query results: faiss-style ``(scores, ids)`` (Q, K) arrays with
    -1 padding, or one list of ``(doc_index, score)`` per query. Rows are re-sorted by
    (-score, doc index). With ``ignore_identical_ids`` the query's own document is
    removed here, so retrieve max(ks) + 1 to keep full depth.
    """
    prep = _prepare(query_ids, doc_ids, qrels, ks, ignore_identical_ids, missing_doc_policy, ndcg_gain)
    ids = _ranked_to_array(ranked, len(query_ids), len(doc_ids))[prep.positions]
    if prep.exclude is not None:
        ex = prep.exclude[prep.positions]
        ids = np.where(ids == ex[:, None], -1, ids)
        # compact: move the removed slot to the end of the row, keeping order
        order = np.argsort(ids < 0, axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
    return _compute(
        prep,
        ids,
        query_ids,
        len(doc_ids),
        ks,
        ignore_identical_ids,
        missing_doc_policy,
        ndcg_gain,
        per_query,
    )


# --- RAG and bitext helpers ------------------------------------------------------------

_WS = re.compile(r"\s+")


def normalise_answer_text(text: str) -> str:
    """Case-fold and collapse whitespace, so line breaks and spacing never hide a match."""
    return _WS.sub(" ", text).strip().casefold()


def answer_hit_rate_at_k(
    retrieved_texts: Sequence[Sequence[str]],
    gold_answers: Sequence[Sequence[str]],
    ks: Sequence[int] = (1, 5, 10),
) -> AnswerHitRate:
    """Share of questions where one of the top-k retrieved passages contains a gold answer.

    Matching is substring containment after :func:`normalise_answer_text` (case and
    whitespace only; no punctuation or article stripping as in SQuAD's F1, since a
    reader model sees the raw passage). Questions without gold answers are skipped and
    counted. ``retrieved_texts[i]`` is question i's ranking, best first.
    """
    if len(retrieved_texts) != len(gold_answers):
        raise ValueError(f"{len(retrieved_texts)} rankings but {len(gold_answers)} answer lists")
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    first_hits: list[int] = []  # rank (1-based) of the first passage holding an answer, 0 = none
    skipped = 0
    for passages, answers in zip(retrieved_texts, gold_answers, strict=True):
        golds = [a for a in (normalise_answer_text(x) for x in answers) if a]
        if not golds:
            skipped += 1
            continue
        first = 0
        for rank, passage in enumerate(passages[: ks[-1]], start=1):
            p = normalise_answer_text(passage)
            if any(g in p for g in golds):
                first = rank
                break
        first_hits.append(first)
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
    """Translation retrieval accuracy: line i's cosine nearest neighbour is line i.

    Computed both ways (src->tgt and tgt->src); ties go to the lowest index, as
    ``np.argmax`` does. ``match="index"`` requires the exact aligned line (MTEB bitext
    mining / LASER Tatoeba convention). ``match="text"`` also accepts a neighbour whose
    *text* equals the aligned line's (sentence-transformers' ``TranslationEvaluator``,
    which forgives duplicates such as two identical English sentences); it needs the
    texts.
    """
    s = _as_numpy(src_emb, np.float32)
    t = _as_numpy(tgt_emb, np.float32)
    if s.shape != t.shape or s.ndim != 2 or len(s) == 0:
        raise ValueError(
            f"Aligned embeddings must have equal non-empty 2-D shapes, got {s.shape} and {t.shape}"
        )
    if match == "text" and (src_texts is None or tgt_texts is None):
        raise ValueError("match='text' needs src_texts and tgt_texts")
    if match not in ("index", "text"):
        raise ValueError(f"match must be 'index' or 'text', got {match!r}")
    s = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    n = len(s)
    gold = np.arange(n)

    def accuracy(a: np.ndarray, b: np.ndarray, b_texts: Sequence[str] | None) -> float:
        _, nn = topk_dot(a, b, 1, chunk_size=chunk_size)
        nn = nn[:, 0]
        if match == "index":
            return float((nn == gold).mean())
        assert b_texts is not None
        return float(np.mean([b_texts[j] == b_texts[i] for i, j in enumerate(nn)]))

    s2t = accuracy(s, t, tgt_texts)
    t2s = accuracy(t, s, src_texts)
    return BitextAccuracy(src2tgt=s2t, tgt2src=t2s, mean=(s2t + t2s) / 2, n=n, match=match)
