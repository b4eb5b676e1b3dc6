"""Retrieval metrics (Accuracy, Precision, Recall, MRR, nDCG, MAP at k) from scores or rankings.

pytrec_eval computes them; this module ranks (``eval/topk.py``), checks inputs (``eval/qrels.py``)
and maps trec's measures to sentence-transformers' ``InformationRetrievalEvaluator`` (ST), pinned in
tests/eval/test_retrieval_metrics.py. Relevant: relevance > 0. accuracy = success, precision = P
(always / k), recall, ndcg = ndcg_cut (ideal DCG over all judgements; ``ndcg_gain="binary"`` as ST,
``"graded"`` as BEIR/MTEB), mrr@k = recip_rank if the first hit is within k, map@k = map_cut * R /
min(k, R) (ST divides by min(k, R), trec by R). Ties go to the lowest doc index, so chunk sizes never
change a result. Bad input raises; every skip is counted in the result (see ``eval/qrels.py``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Unpack

import numpy as np

from embedlab.errors import DataError
from embedlab.eval.arrays import as_numpy, unit_rows
from embedlab.eval.qrels import Judged, Qrels, RankingKwargs, RankingOptions, prepare_judgements
from embedlab.eval.topk import ranked_to_array, topk_dot, topk_from_scores

log = logging.getLogger(__name__)

BitextMatch = Literal["index", "text"]

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_NAMES: tuple[str, ...] = ("accuracy", "precision", "recall", "mrr", "ndcg", "map")
# our metric -> trec_eval measure (with cut-offs); mrr and map are derived, see the module doc
_TREC = {"accuracy": "success", "precision": "P", "recall": "recall", "ndcg": "ndcg_cut", "map": "map_cut"}


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
    ks_clamped: tuple[int, ...]  # ks larger than the corpus: depth clamped, precision still / k
    ignore_identical_ids: bool  # query's own id removed from its ranking and judgements (BEIR/MTEB)
    missing_doc_policy: str  # judgements naming missing docs: "error", "drop" or "keep" (trec, ST)
    ndcg_gain: str
    per_query: dict[str, dict[str, float]] | None = field(default=None, repr=False)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def as_dict(self) -> dict[str, Any]:
        """Metrics and counts in one flat dict (for a results file); no per-query values."""
        out: dict[str, Any] = dict(self.metrics)
        for key, value in asdict(self).items():
            if key not in ("metrics", "per_query"):
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


def _metric_values(prep: Judged, ranked: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-query metrics (Qs,) under ST's names and conventions (see the module doc) from trec_eval's
    measures; ranked: (Qs, >= 0) doc indices best first, -1 = none."""
    import pytrec_eval

    cut, qids = ",".join(map(str, ks)), prep.scored
    names = np.asarray(prep.doc_ids, dtype=object)
    rank_scores = [float(max(ks) - r) for r in range(max(ks))]  # strictly decreasing: trec keeps our order
    run = {
        q: dict(zip(names[row[row >= 0]].tolist(), rank_scores, strict=False))
        for q, row in zip(qids, ranked[:, : max(ks)], strict=True)
    }
    measures = {f"{m}.{cut}" for m in _TREC.values()} | {"recip_rank"}
    trec = pytrec_eval.RelevanceEvaluator(prep.qrels, measures).evaluate(run)

    def col(measure: str) -> np.ndarray:  # an empty ranking is missing from trec: 0 everywhere
        return np.asarray([trec.get(q, {}).get(measure, 0.0) for q in qids], dtype=np.float64)

    rr = col("recip_rank")
    first = np.where(rr > 0, np.round(1.0 / np.where(rr > 0, rr, 1.0)), 0)  # rank of the first relevant doc
    n_rel = np.asarray([sum(g > 0 for g in prep.qrels[q].values()) for q in qids])
    out = {}
    for m in METRIC_NAMES:
        for k in ks:
            if m == "mrr":
                out[f"mrr@{k}"] = np.where((first > 0) & (first <= k), rr, 0.0)
            elif m == "map":
                out[f"map@{k}"] = col(f"map_cut_{k}") * n_rel / np.minimum(k, n_rel)
            else:
                out[f"{m}@{k}"] = col(f"{_TREC[m]}_{k}")
    return out


def _evaluate(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    opts: RankingOptions,
    rank: Callable[[Judged, np.ndarray | None], np.ndarray],
) -> RetrievalMetrics:
    """Check inputs, rank the scored queries (``rank(prep, exclude)`` -> (Qs, K) doc indices), score."""
    prep = prepare_judgements(query_ids, doc_ids, qrels, opts)
    exclude = None if prep.exclude is None else prep.exclude[prep.positions]
    ranked = rank(prep, exclude)
    ks = tuple(sorted(set(opts.ks)))
    values = _metric_values(prep, ranked, ks)
    # A ranking is short when it holds fewer docs than it could (max k, or what the corpus allows).
    n_eligible = len(prep.doc_ids) - (0 if exclude is None else exclude >= 0)
    n_short = int(((ranked[:, : max(ks)] >= 0).sum(axis=1) < np.minimum(max(ks), n_eligible)).sum())
    if n_short:
        log.warning(
            "%d of %d rankings hold fewer than min(k=%d, corpus) documents", n_short, len(ranked), max(ks)
        )
    per_q = {q: {key: float(v[i]) for key, v in values.items()} for i, q in enumerate(prep.scored)}
    return RetrievalMetrics(
        metrics={key: float(v.mean()) for key, v in values.items()},
        n_queries_scored=len(prep.scored),
        n_queries_short_ranking=n_short,
        n_docs=len(prep.doc_ids),
        ks=ks,
        ks_clamped=prep.ks_clamped,
        ignore_identical_ids=opts.ignore_identical_ids,
        missing_doc_policy=opts.missing_doc_policy,
        ndcg_gain=opts.ndcg_gain,
        per_query=per_q if opts.per_query else None,
        **prep.counts,
    )


def retrieval_metrics_from_scores(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    scores: Any,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    chunk_size: int = 1024,
    **options: Unpack[RankingKwargs],
) -> RetrievalMetrics:
    """Metrics from a (Q, D) score matrix (numpy or torch); only judged rows are ranked."""
    s = as_numpy(scores)

    def rank(prep: Judged, exclude: np.ndarray | None) -> np.ndarray:
        if s.shape != (len(query_ids), len(doc_ids)):
            raise ValueError(
                f"scores shape {s.shape} != (n_queries, n_docs) = ({len(query_ids)}, {len(doc_ids)})"
            )
        return topk_from_scores(s, max(ks), rows=prep.positions, exclude=exclude, chunk_size=chunk_size)[1]

    return _evaluate(query_ids, doc_ids, qrels, RankingOptions(tuple(map(int, ks)), **options), rank)


def retrieval_metrics_from_embeddings(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    query_emb: Any,
    doc_emb: Any,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    chunk_size: int = 1024,
    **options: Unpack[RankingKwargs],
) -> RetrievalMetrics:
    """Metrics from exact dot-product search (cosine for unit rows), ``chunk_size`` queries at a time."""

    def rank(prep: Judged, exclude: np.ndarray | None) -> np.ndarray:
        q = as_numpy(query_emb, np.float32)
        if len(q) != len(query_ids) or len(as_numpy(doc_emb)) != len(doc_ids):
            raise ValueError("Embedding rows must match query_ids and doc_ids one to one.")
        return topk_dot(q[prep.positions], doc_emb, max(ks), exclude=exclude, chunk_size=chunk_size)[1]

    return _evaluate(query_ids, doc_ids, qrels, RankingOptions(tuple(map(int, ks)), **options), rank)


def retrieval_metrics_from_ranked(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    ranked: tuple[Any, Any] | Sequence[Sequence[tuple[int, float]]],
    ks: Sequence[int] = DEFAULT_KS,
    **options: Unpack[RankingKwargs],
) -> RetrievalMetrics:
    """Metrics from faiss-style ``(scores, ids)`` (Q, K) arrays (-1 padded) or per-query lists of
    ``(doc_index, score)``; rows are re-sorted by (-score, doc index). With ``ignore_identical_ids``
    the query's own document is removed here, so retrieve max(ks) + 1 to keep full depth."""

    def rank(prep: Judged, exclude: np.ndarray | None) -> np.ndarray:
        ids = ranked_to_array(ranked, len(query_ids), len(doc_ids))[prep.positions]
        if exclude is not None:  # drop the query's own id; the freed slot moves to the row's end
            ids = np.where(ids == exclude[:, None], -1, ids)
            ids = np.take_along_axis(ids, np.argsort(ids < 0, axis=1, kind="stable"), axis=1)
        return ids

    return _evaluate(query_ids, doc_ids, qrels, RankingOptions(tuple(map(int, ks)), **options), rank)


_WS = re.compile(r"\s+")


def normalise_answer_text(text: str) -> str:
    """Case-fold and collapse whitespace, so line breaks and spacing never hide a match."""
    return _WS.sub(" ", text).strip().casefold()


def answer_hit_rate_at_k(
    retrieved_texts: Sequence[Sequence[str]],
    gold_answers: Sequence[Sequence[str]],
    ks: Sequence[int] = (1, 5, 10),
) -> AnswerHitRate:
    """Share of questions where one of the top-k retrieved passages (best first) contains a gold answer.

    Substring match after :func:`normalise_answer_text` only (no SQuAD-style punctuation or article
    stripping: a reader model sees the raw passage). Questions without gold answers are skipped.
    """
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
