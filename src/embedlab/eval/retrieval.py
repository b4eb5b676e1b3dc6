"""Retrieval metrics (Accuracy, Precision, Recall, MRR, nDCG, MAP at k) from scores or rankings.

pytrec_eval computes them after embedlab's input checks (:func:`prepare_judgements`: one report per
mistake whatever the ranking came from, every skip counted), mapped to sentence-transformers'
``InformationRetrievalEvaluator`` (tests/eval/test_retrieval_metrics.py): accuracy = success, precision
= P (always / k), ndcg = ndcg_cut (``ndcg_gain`` "binary" as ST, "graded" as BEIR/MTEB), mrr@k =
recip_rank if the first hit is within k, map@k = map_cut * R / min(k, R). Ties go to the lowest doc index.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from embedlab.errors import DataError
from embedlab.eval.arrays import as_numpy, ranked_to_array, topk_dot, topk_from_scores

log = logging.getLogger(__name__)

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 100)
METRIC_NAMES: tuple[str, ...] = ("accuracy", "precision", "recall", "mrr", "ndcg", "map")
# our metric -> trec_eval measure (with cut-offs); mrr and map are derived, see the module doc
_TREC = {"accuracy": "success", "precision": "P", "recall": "recall", "ndcg": "ndcg_cut", "map": "map_cut"}


Qrels = Mapping[str, Mapping[str, int]]
MissingDocPolicy = Literal["error", "drop", "keep"]
NdcgGain = Literal["binary", "graded"]
COUNTS = (  # the skip counts every RetrievalMetrics carries
    "n_queries_skipped_no_qrels",
    "n_queries_skipped_no_relevant",
    "n_qrels_queries_unknown",
    "n_judgements_missing_doc",
    "n_judgements_identical",
)


@dataclass(frozen=True)
class RankingOptions:
    """How to score: cut-offs, identical-id and missing-document policies, nDCG gains."""

    ks: tuple[int, ...]
    ignore_identical_ids: bool = False
    missing_doc_policy: MissingDocPolicy = "error"
    ndcg_gain: NdcgGain = "binary"
    per_query: bool = False  # also keep every query's metrics

    def __post_init__(self) -> None:
        if self.missing_doc_policy not in ("error", "drop", "keep"):
            raise ValueError(
                f"missing_doc_policy must be 'error', 'drop' or 'keep', got {self.missing_doc_policy!r}"
            )
        if self.ndcg_gain not in ("binary", "graded"):
            raise ValueError(f"ndcg_gain must be 'binary' or 'graded', got {self.ndcg_gain!r}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ValueError(f"ks must be a non-empty list of positive integers, got {list(self.ks)}")


@dataclass
class Judged:
    """The scored queries' trec qrels, their rows, the exclusions, and the skip counts."""

    query_ids: list[str]
    doc_ids: list[str]
    exclude: np.ndarray | None  # (Q,) doc index equal to the query id, or -1
    ks_clamped: tuple[int, ...]
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (Qs,) scored rows
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # doc id -> gain (0 = not relevant)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    missing_examples: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[str]:
        """The ids of the scored queries, in input order."""
        return [self.query_ids[p] for p in self.positions]


def _check_unique(ids: Sequence[str], what: str) -> None:
    dups = [i for i, n in Counter(ids).items() if n > 1]
    if dups:
        raise DataError(f"Duplicate {what} ids ({len(dups)} repeats, e.g. {dups[:3]}); ids must be unique.")


def _gain(relevance: Any, mode: NdcgGain) -> int:
    """trec_eval gain of one judgement: 0 if not relevant, 1 (binary) or the relevance (graded)."""
    r = float(relevance)
    if r <= 0 or mode == "binary":
        return int(r > 0)
    if r != int(r):
        raise DataError(f"Graded nDCG needs integer relevance levels (trec_eval), got {relevance!r}.")
    return int(r)


def _judgements(
    qid: str, judged: Mapping[str, Any], doc_index: Mapping[str, int], opts: RankingOptions, prep: Judged
) -> dict[str, int]:
    """One query's trec qrels after the identical-id and missing-document policies."""
    out: dict[str, int] = {}
    for did, r in judged.items():
        did = str(did)
        if opts.ignore_identical_ids and did == qid:
            prep.counts["n_judgements_identical"] += 1
            continue
        if did not in doc_index:
            prep.counts["n_judgements_missing_doc"] += 1
            if len(prep.missing_examples) < 3:
                prep.missing_examples.append(f"{qid}->{did}")
            if opts.missing_doc_policy == "drop":
                continue
        out[did] = _gain(r, opts.ndcg_gain)
    return out


def _report(prep: Judged, opts: RankingOptions) -> None:
    """Raise on what cannot be scored; log what was skipped."""
    c = prep.counts
    if c["n_judgements_missing_doc"] and opts.missing_doc_policy == "error":
        raise DataError(
            f"{c['n_judgements_missing_doc']} judgements name documents that are not in the corpus "
            f"(e.g. {prep.missing_examples}). Usually the corpus or the qrels split is wrong. Fix: pass the full "
            "corpus, or set missing_doc_policy='drop' (forget those judgements) or 'keep' (count them as "
            "relevant but unretrievable, as trec_eval and sentence-transformers do)."
        )
    if c["n_judgements_missing_doc"]:
        msg = "%d judgements name documents missing from the corpus (e.g. %s); policy=%s"
        log.warning(msg, c["n_judgements_missing_doc"], prep.missing_examples, opts.missing_doc_policy)
    if c["n_queries_skipped_no_qrels"]:
        log.info("Skipped %d queries without judgements", c["n_queries_skipped_no_qrels"])
    if c["n_queries_skipped_no_relevant"]:
        log.warning("Skipped %d queries without any relevant judgement", c["n_queries_skipped_no_relevant"])
    if not len(prep.positions):
        raise DataError(
            f"No query can be scored: {len(prep.query_ids)} queries, {c['n_queries_skipped_no_qrels']} without "
            f"judgements, {c['n_queries_skipped_no_relevant']} without a relevant one. Check that the query ids "
            "match the qrels ids."
        )
    if prep.ks_clamped:
        n = len(prep.doc_ids) - (1 if prep.exclude is not None and (prep.exclude >= 0).any() else 0)
        msg = (
            "k=%s exceed the %d retrievable documents: ranking depth clamped; precision@k still divides by k"
        )
        log.warning(msg, list(prep.ks_clamped), n)


def prepare_judgements(
    query_ids: Sequence[str], doc_ids: Sequence[str], qrels: Qrels, opts: RankingOptions
) -> Judged:
    """Check ids and policies, build the trec qrels of every scorable query, count the rest."""
    qids, dids = [str(q) for q in query_ids], [str(d) for d in doc_ids]
    if not dids:
        raise DataError("Empty corpus: no documents to retrieve from.")
    _check_unique(qids, "query")
    _check_unique(dids, "document")
    doc_index = {d: i for i, d in enumerate(dids)}
    n_eligible = len(dids) - (opts.ignore_identical_ids and bool(set(qids) & set(dids)))
    prep = Judged(
        qids,
        dids,
        exclude=np.asarray([doc_index.get(q, -1) for q in qids]) if opts.ignore_identical_ids else None,
        ks_clamped=tuple(sorted({k for k in opts.ks if k > n_eligible})),
    )
    positions = []
    for pos, qid in enumerate(qids):
        judged = qrels.get(qid)
        gains = _judgements(qid, judged, doc_index, opts, prep) if judged else {}
        if not judged:
            prep.counts["n_queries_skipped_no_qrels"] += 1
        elif not any(gains.values()):
            prep.counts["n_queries_skipped_no_relevant"] += 1
        else:
            positions.append(pos)
            prep.qrels[qid] = gains
    prep.positions = np.asarray(positions, dtype=np.int64)
    prep.counts["n_qrels_queries_unknown"] = len(set(map(str, qrels)) - set(qids))
    _report(prep, opts)
    return prep


@dataclass(frozen=True)
class RetrievalMetrics:
    """Mean metrics over scored queries, plus how many inputs were skipped and why."""

    metrics: dict[str, float]  # flat keys: "ndcg@10", "recall@5", ...
    n_queries_scored: int
    n_queries_skipped_no_qrels: int
    n_queries_skipped_no_relevant: int  # judgements exist but none is > 0 (after drops)
    n_qrels_queries_unknown: int  # qrels for query ids that were not passed in
    n_judgements_missing_doc: int
    n_judgements_identical: int  # doc id == query id, dropped if ignore_identical_ids (BEIR/MTEB)
    n_queries_short_ranking: int  # ranking shorter than min(max k, eligible docs)
    n_docs: int
    ks: tuple[int, ...]
    ks_clamped: tuple[int, ...]  # ks larger than the corpus: depth clamped, precision still / k
    ignore_identical_ids: bool
    missing_doc_policy: str  # "error", "drop" or "keep" (as trec and ST)
    ndcg_gain: str
    per_query: dict[str, dict[str, float]] | None = field(default=None, repr=False)  # query id -> metrics

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def as_dict(self) -> dict[str, Any]:
        """Metrics and counts in one flat dict (for a results file); no per-query values."""
        out: dict[str, Any] = dict(self.metrics)
        for key, value in asdict(self).items():
            if key not in ("metrics", "per_query"):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


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
    derived: dict[str, Callable[[int], np.ndarray]] = {
        "mrr": lambda k: np.where((first > 0) & (first <= k), rr, 0.0),
        "map": lambda k: col(f"map_cut_{k}") * n_rel / np.minimum(k, n_rel),
    }
    return {
        f"{m}@{k}": derived[m](k) if m in derived else col(f"{_TREC[m]}_{k}")
        for m in METRIC_NAMES
        for k in ks
    }


def retrieval_metrics(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    scores: Any = None,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    query_emb: Any = None,
    doc_emb: Any = None,
    ranked: tuple[Any, Any] | Sequence[Sequence[tuple[int, float]]] | None = None,
    chunk_size: int = 1024,
    ignore_identical_ids: bool = False,
    missing_doc_policy: MissingDocPolicy = "error",
    ndcg_gain: NdcgGain = "binary",
    per_query: bool = False,
) -> RetrievalMetrics:
    """Metrics from one ranking source: a (Q, D) ``scores`` matrix (numpy or torch), exact dot-product
    search of ``query_emb`` in ``doc_emb`` (cosine for unit rows), or ``ranked``: faiss-style (scores, ids)
    (Q, K) arrays (-1 padded) or per-query ``(doc_index, score)`` lists, re-sorted by (-score, doc index);
    there the query's own document is dropped afterwards, so retrieve max(ks) + 1 to keep full depth.
    Only judged rows are ranked, ``chunk_size`` at a time; ``per_query`` also keeps each query's metrics."""
    sources = (scores is not None, query_emb is not None, ranked is not None)
    if sum(sources) != 1 or (query_emb is None) != (doc_emb is None):
        raise ValueError("Pass exactly one ranking source: scores, query_emb with doc_emb, or ranked.")
    opts = RankingOptions(tuple(map(int, ks)), ignore_identical_ids, missing_doc_policy, ndcg_gain, per_query)
    prep = prepare_judgements(query_ids, doc_ids, qrels, opts)
    exclude = None if prep.exclude is None else prep.exclude[prep.positions]
    n_q, n_d, depth = len(query_ids), len(doc_ids), max(opts.ks)
    if scores is not None:
        s = as_numpy(scores)
        if s.shape != (n_q, n_d):
            raise ValueError(f"scores shape {s.shape} != (n_queries, n_docs) = ({n_q}, {n_d})")
        ids = topk_from_scores(s, depth, rows=prep.positions, exclude=exclude, chunk_size=chunk_size)[1]
    elif ranked is None:
        q = as_numpy(query_emb, np.float32)
        if len(q) != n_q or len(as_numpy(doc_emb)) != n_d:
            raise ValueError("Embedding rows must match query_ids and doc_ids one to one.")
        ids = topk_dot(q[prep.positions], doc_emb, depth, exclude=exclude, chunk_size=chunk_size)[1]
    else:
        ids = ranked_to_array(ranked, n_q, n_d)[prep.positions]
        if exclude is not None:  # drop the query's own id; the freed slot moves to the row's end
            ids = np.where(ids == exclude[:, None], -1, ids)
            ids = np.take_along_axis(ids, np.argsort(ids < 0, axis=1, kind="stable"), axis=1)
    return _score(prep, ids, opts, exclude)


def _score(
    prep: Judged, ranked: np.ndarray, opts: RankingOptions, exclude: np.ndarray | None
) -> RetrievalMetrics:
    """Score (Qs, K) ranked doc indices of the judged queries, counting short rankings."""
    ks = tuple(sorted(set(opts.ks)))
    values = _metric_values(prep, ranked, ks)
    # A ranking is short when it holds fewer docs than it could (max k, or what the corpus allows).
    n_eligible = len(prep.doc_ids) - (0 if exclude is None else exclude >= 0)
    n_short = int(((ranked[:, : max(ks)] >= 0).sum(axis=1) < np.minimum(max(ks), n_eligible)).sum())
    if n_short:
        msg = "%d of %d rankings hold fewer than min(k=%d, corpus) documents"
        log.warning(msg, n_short, len(ranked), max(ks))
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


@dataclass(frozen=True)
class AnswerHitRate:
    """Fraction of questions whose top-k retrieved texts contain a gold answer string."""

    metrics: dict[str, float]  # "answer_hit@k"
    n_queries_scored: int
    n_queries_skipped_no_answer: int
    first_hit: dict[int, int] = field(default_factory=dict, repr=False)  # question row -> rank (0: none)


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
    first_hits: dict[int, int] = {}  # question row -> rank (1-based) of the first answer passage, 0 = none
    for row, (passages, answers) in enumerate(zip(retrieved_texts, gold_answers, strict=True)):
        golds = [a for a in map(normalise_answer_text, answers) if a]
        if golds:
            hits = (
                r
                for r, p in enumerate(passages[: ks[-1]], 1)
                if any(g in normalise_answer_text(p) for g in golds)
            )
            first_hits[row] = next(hits, 0)
    skipped = len(gold_answers) - len(first_hits)
    if skipped:
        log.warning("answer_hit_rate_at_k: skipped %d questions without a gold answer", skipped)
    if not first_hits:
        raise DataError("No question has a gold answer; cannot compute the answer hit rate.")
    fh = np.asarray(list(first_hits.values()))
    metrics = {f"answer_hit@{k}": float(((fh > 0) & (fh <= k)).mean()) for k in ks}
    return AnswerHitRate(metrics, len(fh), skipped, first_hits)
